// Test-only stand-in for the emulated runtime's stream queue (kfuse::emu::enqueue): one FIFO
// per stream, run only when a test "synchronises", so that the library tests can check both
// the results and that nothing is computed before synchronisation. The runtime's real
// implementation replaces stream_stub.cpp when the libraries are linked into the emulation.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace kfuse::emu::stub {

// A new stream that enqueue accepts (the stub's handles are never dereferenced).
cudaStream_t create_stream();
// Later enqueues on `stream` fail with cudaErrorInvalidResourceHandle; queued work is dropped.
void destroy_stream(cudaStream_t stream);
// Work queued and not yet run, on all streams.
std::size_t pending();
// Runs the work queued on `stream`, in order (cudaStreamSynchronize).
void synchronize(cudaStream_t stream);
// Runs everything queued, each stream in order (cudaDeviceSynchronize).
void run_all();

}  // namespace kfuse::emu::stub
