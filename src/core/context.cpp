#include "kfuse/context.hpp"

#include <cstdint>
#include <optional>
#include <string>

#include "kfuse/error.hpp"
#include "src/core/backend.hpp"
#include "src/core/context_impl.hpp"
#include "src/core/device.hpp"
#include "src/core/env.hpp"

namespace kfuse {

const char* backend_name(Backend backend) noexcept {
  switch (backend) {
    case Backend::Cpu:
      return "cpu";
    case Backend::Cuda:
      return "cuda";
  }
  return "unknown";
}

int cuda_device_count() noexcept {
  return detail::device_count();
}

bool built_with_cuda() noexcept {
  return detail::kBuiltWithCuda;
}

namespace {
// KFUSE_DRAW_CACHE_BYTES when it is a whole byte count (digits only; past the range,
// no bound), else the default.
std::size_t initial_draw_cache_budget() {
  const std::optional<std::uint64_t> bytes = detail::env_whole_number("KFUSE_DRAW_CACHE_BYTES");
  return bytes ? static_cast<std::size_t>(*bytes) : Context::kDefaultDrawCacheBytes;
}
}  // namespace

Context::Impl::Impl() : draw_cache(initial_draw_cache_budget()) {}

Context::Impl::~Impl() {
  detail::destroy_cublas(device, cublas);
  allocator.reset();
  if (owns_stream) detail::destroy_stream(device, stream);
}

Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Context::Context(Context&&) noexcept = default;
Context& Context::operator=(Context&&) noexcept = default;
Context::~Context() = default;

Context Context::cpu() {
  return Context(std::make_unique<Impl>());
}

namespace {
void expect_device(int device) {
  const int count = detail::device_count();
  if (!built_with_cuda())
    throw Error(Status::Unsupported, "Context::cuda: kfuse was built without CUDA");
  if (count == 0)
    throw Error(Status::NoDevice,
                "Context::cuda: no usable CUDA device (driver missing or no GPU)");
  if (device < 0 || device >= count)
    throw Error(Status::InvalidArgument,
                "Context::cuda: argument 'device': expected 0 <= device < " +
                    std::to_string(count) + ", got " + std::to_string(device));
}
}  // namespace

Context Context::cuda(int device) {
  expect_device(device);
  auto impl = std::make_unique<Impl>();
  impl->backend = Backend::Cuda;
  impl->device = device;
  impl->stream = detail::create_stream(device);
  impl->owns_stream = true;
  impl->allocator = detail::make_stream_ordered_allocator(device);
  return Context(std::move(impl));
}

Context Context::cuda(int device, cudaStream stream) {
  expect_device(device);
  auto impl = std::make_unique<Impl>();
  impl->backend = Backend::Cuda;
  impl->device = device;
  impl->stream = stream;
  impl->owns_stream = false;
  impl->allocator = detail::make_stream_ordered_allocator(device);
  return Context(std::move(impl));
}

Context Context::best() {
  if (detail::device_count() > 0) {
    try {
      return cuda(0);
    } catch (const Error&) {
      // A device that is listed but cannot host a stream (exclusive mode taken,
      // driver/runtime mismatch) is no better than none.
    }
  }
  return cpu();
}

Backend Context::backend() const noexcept {
  return impl_->backend;
}
int Context::device() const noexcept {
  return impl_->device;
}
cudaStream Context::stream() const noexcept {
  return impl_->stream;
}
bool Context::owns_stream() const noexcept {
  return impl_->owns_stream;
}

cublasHandle Context::cublas() {
  if (impl_->backend != Backend::Cuda)
    throw Error(Status::Unsupported, "Context::cublas: a Cpu context has no cuBLAS handle");
  if (impl_->cublas == nullptr) impl_->cublas = detail::create_cublas(impl_->device, impl_->stream);
  return impl_->cublas;
}

void Context::set_allocator(std::shared_ptr<Allocator> allocator) {
  if (impl_->backend != Backend::Cuda)
    throw Error(Status::Unsupported,
                "Context::set_allocator: a Cpu context allocates no device memory");
  if (!allocator)
    throw Error(Status::InvalidArgument, "Context::set_allocator: argument 'allocator' is null");
  impl_->allocator = std::move(allocator);
}

Allocator& Context::allocator() {
  if (impl_->backend != Backend::Cuda)
    throw Error(Status::Unsupported,
                "Context::allocator: a Cpu context allocates no device memory");
  return *impl_->allocator;
}

void Context::set_draw_cache_budget(std::size_t bytes) {
  impl_->draw_cache.set_budget(bytes);
}
std::size_t Context::draw_cache_budget() const noexcept {
  return impl_->draw_cache.budget();
}
std::size_t Context::draw_cache_bytes() const noexcept {
  return impl_->draw_cache.bytes();
}
void Context::clear_draw_cache() noexcept {
  impl_->draw_cache.clear();
}

void Context::synchronize() const {
  if (impl_->backend == Backend::Cuda) detail::synchronize_stream(impl_->device, impl_->stream);
}

}  // namespace kfuse
