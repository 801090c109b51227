#include "buffers.hpp"

#include <stdexcept>
#include <string>

#include "kfuse/version.hpp"

#if KFUSE_BUILT_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace kfuse::support {

#if KFUSE_BUILT_WITH_CUDA
namespace {
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}
}  // namespace
void* device_alloc(std::size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}
void device_free(void* ptr) noexcept {
  (void)cudaFree(ptr);
}
// A cudaMemcpy from pageable memory may return before the copy lands, and it is on the
// legacy default stream, which a context's non-blocking stream does not wait for:
// synchronise it, so that the data is in place before any context's work runs.
void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize after cudaMemcpy H2D");
}
void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}
void device_fill_zero(void* ptr, std::size_t bytes) {
  check(cudaMemset(ptr, 0, bytes), "cudaMemset");  // asynchronous, as above
  check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize after cudaMemset");
}
#else
namespace {
[[noreturn]] void no_cuda() {
  throw std::logic_error("built without CUDA");
}
}  // namespace
void* device_alloc(std::size_t) {
  no_cuda();
}
void device_free(void*) noexcept {}
void copy_to_device(void*, const void*, std::size_t) {
  no_cuda();
}
void copy_to_host(void*, const void*, std::size_t) {
  no_cuda();
}
void device_fill_zero(void*, std::size_t) {
  no_cuda();
}
#endif

}  // namespace kfuse::support
