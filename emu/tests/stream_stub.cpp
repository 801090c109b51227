// Test-only stand-in for the emulated runtime's stream queue, for building and testing the
// emulated libraries on their own (emu/tests/standalone): kfuse::emu::enqueue keeps one FIFO
// per stream, and the few runtime calls the library tests make (stream create/destroy, stream
// and device synchronize) run it. Nothing runs before a synchronisation, so the tests can
// check that the libraries compute nothing at call time. The runtime's real implementation
// replaces this file when the libraries are linked into the emulation: the tests then run
// against it unchanged.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "kfuse_emu/stream.hpp"

namespace kfuse::emu {
namespace {

using Fifo = std::deque<std::function<void()>>;

struct Queues {
  std::mutex mutex;
  std::map<cudaStream_t, Fifo> fifo;
  std::uintptr_t next_handle = 0x1000;
};

Queues& queues() {
  static Queues q;
  return q;
}

bool builtin(cudaStream_t s) {
  return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread;
}

// Pops the first item queued on `stream`, if any (run outside the lock: work may enqueue).
bool pop(cudaStream_t stream, std::function<void()>& work) {
  Queues& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  auto it = q.fifo.find(stream);
  if (it == q.fifo.end() || it->second.empty()) return false;
  work = std::move(it->second.front());
  it->second.pop_front();
  return true;
}

void run(cudaStream_t stream) {
  std::function<void()> work;
  while (pop(stream, work))
    work();
}

}  // namespace

cudaError_t enqueue(cudaStream_t stream, std::function<void()> work) {
  Queues& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  auto it = q.fifo.find(stream);
  if (it == q.fifo.end()) {
    if (!builtin(stream)) return cudaErrorInvalidResourceHandle;
    it = q.fifo.emplace(stream, Fifo{}).first;
  }
  it->second.push_back(std::move(work));
  return cudaSuccess;
}

}  // namespace kfuse::emu

using kfuse::emu::queues;

extern "C" {

cudaError_t CUDARTAPI cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int) {
  if (pStream == nullptr) return cudaErrorInvalidValue;
  auto& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  *pStream = reinterpret_cast<cudaStream_t>(q.next_handle);
  q.next_handle += 0x10;
  q.fifo.emplace(*pStream, kfuse::emu::Fifo{});
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaStreamCreate(cudaStream_t* pStream) {
  return cudaStreamCreateWithFlags(pStream, cudaStreamDefault);
}

// Like the runtime, destroying a stream lets its queued work complete first.
cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t stream) {
  if (kfuse::emu::builtin(stream)) return cudaErrorInvalidResourceHandle;
  kfuse::emu::run(stream);
  auto& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  return q.fifo.erase(stream) != 0 ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t stream) {
  {
    auto& q = queues();
    std::lock_guard<std::mutex> lock(q.mutex);
    if (q.fifo.count(stream) == 0 && !kfuse::emu::builtin(stream))
      return cudaErrorInvalidResourceHandle;
  }
  kfuse::emu::run(stream);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaDeviceSynchronize(void) {
  std::vector<cudaStream_t> streams;
  {
    auto& q = queues();
    std::lock_guard<std::mutex> lock(q.mutex);
    for (const auto& entry : q.fifo)
      streams.push_back(entry.first);
  }
  for (cudaStream_t s : streams)
    kfuse::emu::run(s);
  return cudaSuccess;
}

}  // extern "C"
