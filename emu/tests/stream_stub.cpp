// Test-only kfuse::emu::enqueue: a FIFO per stream, run by stub::synchronize / stub::run_all.
#include "stream_stub.hpp"

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

struct Queues {
  std::mutex mutex;
  std::map<cudaStream_t, std::deque<std::function<void()>>> fifo;
  std::uintptr_t next_handle = 0x1000;
};

Queues& queues() {
  static Queues q;
  return q;
}

bool builtin(cudaStream_t s) {
  return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread;
}

// Pops the first queued item of `stream`, if any (run outside the lock: work may enqueue).
bool pop(cudaStream_t stream, std::function<void()>& work) {
  Queues& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  auto it = q.fifo.find(stream);
  if (it == q.fifo.end() || it->second.empty()) return false;
  work = std::move(it->second.front());
  it->second.pop_front();
  return true;
}

}  // namespace

cudaError_t enqueue(cudaStream_t stream, std::function<void()> work) {
  Queues& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  auto it = q.fifo.find(stream);
  if (it == q.fifo.end()) {
    if (!builtin(stream)) return cudaErrorInvalidResourceHandle;
    it = q.fifo.emplace(stream, std::deque<std::function<void()>>{}).first;
  }
  it->second.push_back(std::move(work));
  return cudaSuccess;
}

namespace stub {

cudaStream_t create_stream() {
  Queues& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  auto* s = reinterpret_cast<cudaStream_t>(q.next_handle);
  q.next_handle += 0x10;
  q.fifo.emplace(s, std::deque<std::function<void()>>{});
  return s;
}

void destroy_stream(cudaStream_t stream) {
  Queues& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  q.fifo.erase(stream);
}

std::size_t pending() {
  Queues& q = queues();
  std::lock_guard<std::mutex> lock(q.mutex);
  std::size_t n = 0;
  for (const auto& [s, fifo] : q.fifo)
    n += fifo.size();
  return n;
}

void synchronize(cudaStream_t stream) {
  std::function<void()> work;
  while (pop(stream, work))
    work();
}

void run_all() {
  std::vector<cudaStream_t> streams;
  {
    Queues& q = queues();
    std::lock_guard<std::mutex> lock(q.mutex);
    for (const auto& [s, fifo] : q.fifo)
      streams.push_back(s);
  }
  for (cudaStream_t s : streams)
    synchronize(s);
}

}  // namespace stub
}  // namespace kfuse::emu
