// A CPU-only build has no device to fill (kron_fuse's reference is GPU-only).
#include <cstddef>
#include <stdexcept>

#include "kfuse/context.hpp"

namespace kfuse::bench {

void fuse_fill_async(Context&, void*, std::size_t) {
  throw std::logic_error("fuse_fill_async: built without CUDA");
}

}  // namespace kfuse::bench
