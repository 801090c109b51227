// The emulated device's stream queue: the one interface between the emulation's runtime
// (launches, copies, events, synchronisation) and the host libraries it emulates (cuBLAS,
// CUB device-wide, cuFFT). Work queued here runs in stream order, and only when the host
// synchronises (stream, event or device synchronize, a blocking copy), as on a GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>

namespace kfuse::emu {

// Queue `work` on `stream` (0 / cudaStreamLegacy: the legacy default stream,
// cudaStreamPerThread: the per-thread one). Returns cudaErrorInvalidResourceHandle for a
// stream that was never created or was destroyed.
cudaError_t enqueue(cudaStream_t stream, std::function<void()> work);

}  // namespace kfuse::emu
