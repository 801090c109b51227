// Kernel launches on the emulated device: the checks a real launch makes happen
// here, at once; the grid itself is queued on the stream and runs when the host
// synchronises (kfuse_emu/stream.hpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace kfuse::emu {

struct LaunchSpec {
  const void* kernel;  // identity for cudaFuncSetAttribute
  const char* name;    // the kernel expression as written at the launch site
  const char* file;
  int line;
  dim3 grid;
  dim3 block;
  std::size_t dynamic_smem;
  cudaStream_t stream;
  std::size_t param_bytes;  // the kernel's parameters laid out as the driver copies them
};

// The bytes of a kernel's parameter block: each parameter at its alignment, in order.
template <class... P>
constexpr std::size_t param_bytes() {
  std::size_t offset = 0;
  ((offset = (offset + alignof(P) - 1) / alignof(P) * alignof(P) + sizeof(P)), ...);
  return offset;
}

// Checks the configuration (sets the launch error that cudaGetLastError reports) and
// queues `body`, which every emulated thread of every block runs.
void submit_launch(const LaunchSpec& spec, std::function<void()> body);

template <class... P, class... A>
void launch(void (*kernel)(P...), const char* name, const char* file, int line, dim3 grid,
            dim3 block, std::size_t smem, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong argument count");
  // Arguments are copied at the launch, as the driver copies them into the launch.
  auto params = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(args)...);
  submit_launch(LaunchSpec{reinterpret_cast<const void*>(kernel), name, file, line, grid, block,
                           smem, stream, param_bytes<std::decay_t<P>...>()},
                [kernel, params] { std::apply(kernel, *params); });
}

}  // namespace kfuse::emu
