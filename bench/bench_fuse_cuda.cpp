// kron_fuse's write-bandwidth reference on a GPU: a memset on the context's stream.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kfuse/context.hpp"

namespace kfuse::bench {

void fuse_fill_async(Context& ctx, void* ptr, std::size_t bytes) {
  const cudaError_t err = cudaMemsetAsync(ptr, 0, bytes, ctx.stream());
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("cudaMemsetAsync: ") + cudaGetErrorString(err));
}

}  // namespace kfuse::bench
