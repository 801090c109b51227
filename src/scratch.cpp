#include "scratch.hpp"

#include <new>
#include <string>

#include "kfuse/error.hpp"

namespace kfuse::detail {

Scratch::Scratch(Context& ctx, std::size_t bytes) : ctx_(ctx), bytes_(bytes) {
  if (bytes == 0) return;
  if (ctx.backend() == Backend::Cuda) {
    ptr_ = ctx.allocator().allocate(bytes, ctx.stream());
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
