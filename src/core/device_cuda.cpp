// The CUDA interface of a CUDA build: device discovery that survives a missing
// driver, pointer classification, streams, cuBLAS handles, and the default
// stream-ordered workspace allocator.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "kernels/core/cuda_check.hpp"
#include "src/core/device.hpp"

namespace kfuse::detail {

int device_count() noexcept {
  static const int count = [] {
    int n = 0;
    // No driver (cudaErrorInsufficientDriver / NoDevice / InitializationError ...)
    // is "no device", never a crash.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

PointerKind pointer_kind(const void* ptr) noexcept {
  if (ptr == nullptr || device_count() == 0) return PointerKind::Unknown;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    (void)cudaGetLastError();
    return PointerKind::Unknown;
  }
  switch (attr.type) {
    case cudaMemoryTypeDevice:
    case cudaMemoryTypeManaged:
      return PointerKind::Device;
    case cudaMemoryTypeHost:
    case cudaMemoryTypeUnregistered:
      return PointerKind::Host;
  }
  return PointerKind::Unknown;
}

cudaStream create_stream(int device) {
  DeviceGuard guard(device);
  cudaStream_t stream = nullptr;
  KFUSE_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

void destroy_stream(int device, cudaStream stream) noexcept {
  if (stream == nullptr) return;
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  (void)cudaSetDevice(device);
  (void)cudaStreamDestroy(stream);
  (void)cudaSetDevice(previous);
}

void synchronize_stream(int device, cudaStream stream) {
  DeviceGuard guard(device);
  KFUSE_CUDA_TRY(cudaStreamSynchronize(stream));
}

cublasHandle create_cublas(int device, cudaStream stream) {
  DeviceGuard guard(device);
  cublasHandle_t handle = nullptr;
  KFUSE_CUBLAS_TRY(cublasCreate(&handle));
  const cublasStatus_t st = cublasSetStream(handle, stream);
  if (st != CUBLAS_STATUS_SUCCESS) {
    (void)cublasDestroy(handle);
    throw_cublas(st, "cublasSetStream", __FILE__, __LINE__);
  }
  return handle;
}

void destroy_cublas(int device, cublasHandle handle) noexcept {
  if (handle == nullptr) return;
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  (void)cudaSetDevice(device);
  (void)cublasDestroy(handle);
  (void)cudaSetDevice(previous);
}

namespace {

// cudaMallocAsync from the device's default memory pool: allocation and release
// are ordered on the stream, so a workspace never forces a host synchronisation.
class StreamOrderedAllocator final : public Allocator {
 public:
  explicit StreamOrderedAllocator(int device) : device_(device) {}
  void* allocate(std::size_t bytes, cudaStream stream) override {
    if (bytes == 0) return nullptr;
    DeviceGuard guard(device_);
    void* ptr = nullptr;
    const cudaError_t err = cudaMallocAsync(&ptr, bytes, stream);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      throw Error(err == cudaErrorMemoryAllocation ? Status::OutOfMemory : Status::CudaError,
                  "workspace allocation of " + std::to_string(bytes) +
                      " bytes failed: " + cudaGetErrorString(err));
    }
    return ptr;
  }
  void deallocate(void* ptr, std::size_t, cudaStream stream) noexcept override {
    if (ptr == nullptr) return;
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess) return;
    (void)cudaSetDevice(device_);
    (void)cudaFreeAsync(ptr, stream);
    (void)cudaSetDevice(previous);
  }

 private:
  int device_;
};

}  // namespace

std::shared_ptr<Allocator> make_stream_ordered_allocator(int device) {
  return std::make_shared<StreamOrderedAllocator>(device);
}

}  // namespace kfuse::detail
