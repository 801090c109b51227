// The CUDA interface of a CPU-only build: no device, and a clear error for any
// request that would need one.
#include "kfuse/error.hpp"
#include "src/core/device.hpp"

namespace kfuse::detail {
namespace {
[[noreturn]] void no_cuda() {
  throw Error(Status::Unsupported, "kfuse was built without CUDA (KFUSE_WITH_CUDA=OFF)");
}
}  // namespace

int device_count() noexcept {
  return 0;
}
PointerKind pointer_kind(const void*) noexcept {
  return PointerKind::Unknown;
}
cudaStream create_stream(int) {
  no_cuda();
}
void destroy_stream(int, cudaStream) noexcept {}
void synchronize_stream(int, cudaStream) {
  no_cuda();
}
cublasHandle create_cublas(int, cudaStream) {
  no_cuda();
}
void destroy_cublas(int, cublasHandle) noexcept {}
std::shared_ptr<Allocator> make_stream_ordered_allocator(int) {
  no_cuda();
}

}  // namespace kfuse::detail
