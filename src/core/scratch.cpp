#include "src/core/scratch.hpp"

#include <cstdint>
#include <new>
#include <string>

#include "kfuse/error.hpp"

namespace kfuse::detail {

std::size_t workspace_bytes(std::optional<std::int64_t> count, std::size_t element_bytes) {
  std::size_t bytes;
  if (!count || *count < 0 ||
      __builtin_mul_overflow(static_cast<std::size_t>(*count), element_bytes, &bytes) ||
      bytes > static_cast<std::size_t>(INT64_MAX))
    throw Error(Status::OutOfMemory, "a workspace's size overflows 64 bits");
  return bytes;
}

Scratch::Scratch(Context& ctx, std::size_t bytes) : ctx_(ctx), bytes_(bytes) {
  if (bytes == 0) return;
  if (ctx.backend() == Backend::Cuda) {
    ptr_ = ctx.allocator().allocate(bytes, ctx.stream());
    if (reinterpret_cast<std::uintptr_t>(ptr_) % kDeviceAlignment != 0) {
      ctx.allocator().deallocate(ptr_, bytes, ctx.stream());
      ptr_ = nullptr;
      throw Error(Status::InvalidArgument,
                  "the context's allocator returned memory aligned to less than " +
                      std::to_string(kDeviceAlignment) + " bytes");
    }
    return;
  }
  try {
    host_.reset(new unsigned char[bytes]);
  } catch (const std::bad_alloc&) {
    throw Error(Status::OutOfMemory,
                "scratch allocation of " + std::to_string(bytes) + " host bytes failed");
  }
  ptr_ = host_.get();
}

Scratch::~Scratch() {
  if (ptr_ != nullptr && ctx_.backend() == Backend::Cuda)
    ctx_.allocator().deallocate(ptr_, bytes_, ctx_.stream());
}

}  // namespace kfuse::detail
