// Checking every CUDA runtime and cuBLAS return code, and keeping the current
// device right while a context's work is enqueued. Host code only.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "kfuse/error.hpp"

namespace kfuse::detail {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
  // Clear a sticky-free error so that the next call does not report it again.
  (void)cudaGetLastError();
  const Status status = err == cudaErrorMemoryAllocation ? Status::OutOfMemory : Status::CudaError;
  throw Error(status, std::string(file) + ":" + std::to_string(line) + ": " + what + " failed: " +
                          cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

[[noreturn]] inline void throw_cublas(cublasStatus_t st, const char* what, const char* file,
                                      int line) {
  const Status status =
      st == CUBLAS_STATUS_ALLOC_FAILED ? Status::OutOfMemory : Status::CublasError;
  throw Error(status, std::string(file) + ":" + std::to_string(line) + ": " + what + " failed: " +
                          cublasGetStatusName(st) + " (" + cublasGetStatusString(st) + ")");
}

}  // namespace kfuse::detail

#define KFUSE_CUDA_TRY(call)                                              \
  do {                                                                    \
    const cudaError_t kfuse_err_ = (call);                                \
    if (kfuse_err_ != cudaSuccess)                                        \
      ::kfuse::detail::throw_cuda(kfuse_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports launch-configuration errors at once, without
// synchronising (execution errors surface at the next synchronising call).
#define KFUSE_CUDA_CHECK_LAUNCH(kernel)                                                  \
  do {                                                                                   \
    const cudaError_t kfuse_err_ = cudaGetLastError();                                   \
    if (kfuse_err_ != cudaSuccess)                                                       \
      ::kfuse::detail::throw_cuda(kfuse_err_, "launch of " #kernel, __FILE__, __LINE__); \
  } while (0)

#define KFUSE_CUBLAS_TRY(call)                                             \
  do {                                                                     \
    const cublasStatus_t kfuse_st_ = (call);                               \
    if (kfuse_st_ != CUBLAS_STATUS_SUCCESS)                                \
      ::kfuse::detail::throw_cublas(kfuse_st_, #call, __FILE__, __LINE__); \
  } while (0)

namespace kfuse::detail {

// Makes `device` current for the enqueueing thread and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    KFUSE_CUDA_TRY(cudaGetDevice(&previous_));
    if (previous_ != device) KFUSE_CUDA_TRY(cudaSetDevice(device));
  }
  ~DeviceGuard() {
    int now = previous_;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace kfuse::detail
