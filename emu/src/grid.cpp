// The executor of the emulated device: a grid's blocks run on a pool of OS threads,
// a block's threads are fibers on the OS thread that runs the block. Between two
// block barriers the threads run one after another (each until it blocks) in the
// order KFUSE_EMU_ORDER picks, so that a missing barrier changes results between
// orders. Warp collectives (shuffles, votes, __syncwarp, WMMA) are warp barriers:
// the last lane of the mask to arrive performs the exchange. A thread that cannot go
// on (a barrier reached by part of the block, a mask naming absent or exited lanes)
// and every failed device-side check is a device fault: the grid stops and the
// launch fails with a message naming the kernel, the launch, the block and thread.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "emulator.hpp"
#include "fiber.hpp"
#include "kfuse_emu/device.hpp"

namespace kfuse::emu {

namespace {

enum class State { Runnable, AtBarrier, AtWarp, Exited, Faulted };

struct Block;

struct EmuThread {
  ThreadInfo info{};
  unsigned linear = 0;
  State state = State::Runnable;
  const char* site = nullptr;  // the __syncthreads it waits at
  // the warp collective it waits at
  unsigned mask = 0;
  WarpOp op = WarpOp::Syncwarp;
  const char* what = nullptr;
  WarpSlot* slot = nullptr;
  Fiber* fiber = nullptr;
  Block* block = nullptr;
};

struct SharedVar {
  const void* key;
  void* ptr;
};

struct Block {
  const Grid* grid = nullptr;
  uint3 idx{};
  unsigned n = 0;
  std::vector<EmuThread> threads;
  void* dynamic = nullptr;
  std::vector<SharedVar> statics;
  std::size_t static_bytes = 0;
  std::string fault;
  bool faulted = false;
};

thread_local EmuThread* t_current = nullptr;
thread_local std::vector<std::unique_ptr<Fiber>> t_fibers;  // reused across blocks

std::string thread_name(const EmuThread& t) {
  std::ostringstream s;
  s << "block (" << t.info.block_idx.x << "," << t.info.block_idx.y << "," << t.info.block_idx.z
    << ") thread (" << t.info.thread_idx.x << "," << t.info.thread_idx.y << ","
    << t.info.thread_idx.z << ")";
  return s.str();
}

void record_fault(Block& b, const std::string& what) {
  if (b.faulted) return;
  b.faulted = true;
  b.fault = what;
}

EmuThread& current(const char* what) {
  if (t_current == nullptr) {
    std::fprintf(stderr, "kfuse emulated device: %s called outside a kernel\n", what);
    std::abort();
  }
  return *t_current;
}

// A fault inside a kernel: record it, leave the fiber for good. (The message comes in
// a buffer, not a std::string: the abandoned fiber's frames are never unwound.)
[[noreturn]] void fault_here(EmuThread& t, const char* what) {
  record_fault(*t.block, thread_name(t) + ": " + what);
  t.state = State::Faulted;
  t_current = nullptr;
  t.fiber->yield(true);
  std::abort();  // never resumed
}

void fiber_main(void* arg) {
  auto* t = static_cast<EmuThread*>(arg);
  t->fiber->entered();
  try {
    t->block->grid->body();
  } catch (const std::exception& e) {
    record_fault(*t->block, thread_name(*t) + ": exception " + e.what());
  } catch (...) {
    record_fault(*t->block, thread_name(*t) + ": exception");
  }
  if (t->state != State::Faulted) t->state = State::Exited;
  t_current = nullptr;
  t->fiber->yield(true);
  std::abort();
}

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

const char* state_name(State s) {
  switch (s) {
    case State::Runnable:
      return "runnable";
    case State::AtBarrier:
      return "waits at __syncthreads";
    case State::AtWarp:
      return "waits at a warp collective";
    case State::Exited:
      return "has exited";
    case State::Faulted:
      return "faulted";
  }
  return "?";
}

// All live threads are blocked: release a complete block barrier, or diagnose.
bool release_or_diagnose(Block& b) {
  const EmuThread* at_barrier = nullptr;
  const EmuThread* exited = nullptr;
  for (const EmuThread& t : b.threads) {
    if (t.state == State::AtBarrier && at_barrier == nullptr) at_barrier = &t;
    if (t.state == State::Exited && exited == nullptr) exited = &t;
  }
  for (const EmuThread& t : b.threads) {
    if (t.state == State::AtWarp) {
      // Its warp collective cannot complete: name a lane it waits for.
      const unsigned warp = t.linear / 32;
      std::string why = "a lane of its mask is missing";
      for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(t.mask >> lane & 1u)) continue;
        const EmuThread& u = b.threads[warp * 32 + lane];
        if (u.state != State::AtWarp) {
          why = "lane " + std::to_string(lane) + " of mask 0x" +
                [](unsigned m) {
                  char buf[16];
                  std::snprintf(buf, sizeof buf, "%08x", m);
                  return std::string(buf);
                }(t.mask) +
                " " + state_name(u.state);
          break;
        }
        if (u.mask != t.mask || u.op != t.op) {
          why = "lane " + std::to_string(lane) + " waits at a different collective (" +
                (u.what ? u.what : "?") + ")";
          break;
        }
      }
      record_fault(b, thread_name(t) + ": " + (t.what ? t.what : "warp collective") +
                          " never completes: " + why);
      return false;
    }
  }
  if (at_barrier == nullptr) return false;  // everyone exited
  if (exited != nullptr) {
    record_fault(b, "__syncthreads at " + std::string(at_barrier->site) +
                        " reached by only part of the block: " + thread_name(*exited) +
                        " has exited while " + thread_name(*at_barrier) + " waits");
    return false;
  }
  for (const EmuThread& t : b.threads) {
    if (t.site != at_barrier->site && std::strcmp(t.site, at_barrier->site) != 0) {
      record_fault(b, "threads of one block wait at different barriers: " + thread_name(t) +
                          " at " + t.site + ", " + thread_name(*at_barrier) + " at " +
                          at_barrier->site);
      return false;
    }
  }
  for (EmuThread& t : b.threads)
    t.state = State::Runnable;
  return true;
}

void run_block(const Grid& grid, std::uint64_t linear_block) {
  const dim3 g = grid.spec.grid, bd = grid.spec.block;
  Block b;
  b.grid = &grid;
  b.idx = uint3{static_cast<unsigned>(linear_block % g.x),
                static_cast<unsigned>(linear_block / g.x % g.y),
                static_cast<unsigned>(linear_block / (static_cast<std::uint64_t>(g.x) * g.y))};
  b.n = bd.x * bd.y * bd.z;
  // The dynamic buffer: exactly its size (AddressSanitizer sees an over-read), filled
  // with the NaN pattern (a read before any write shows).
  std::size_t smem = grid.spec.dynamic_smem;
  if (posix_memalign(&b.dynamic, 128, smem == 0 ? 1 : smem) != 0) throw std::bad_alloc();
  fill_uninitialised(b.dynamic, smem);
  struct Release {
    Block& b;
    ~Release() {
      std::free(b.dynamic);
      for (SharedVar& v : b.statics)
        std::free(v.ptr);
    }
  } release{b};

  while (t_fibers.size() < b.n)
    t_fibers.push_back(std::make_unique<Fiber>());
  b.threads.resize(b.n);
  for (unsigned i = 0; i < b.n; ++i) {
    EmuThread& t = b.threads[i];
    t.linear = i;
    t.info.thread_idx = uint3{i % bd.x, i / bd.x % bd.y, i / (bd.x * bd.y)};
    t.info.block_idx = b.idx;
    t.info.block_dim = bd;
    t.info.grid_dim = g;
    t.block = &b;
    t.fiber = t_fibers[i].get();
    t.fiber->start(&fiber_main, &t);
  }

  const Settings& s = settings();
  std::vector<unsigned> order(b.n);
  for (unsigned i = 0; i < b.n; ++i)
    order[i] = s.order == Order::Reverse ? b.n - 1 - i : i;
  std::mt19937_64 rng(mix(s.seed ^ mix(grid.serial * 0x100000001b3ull + linear_block)));
  for (;;) {
    if (s.order == Order::Random) std::shuffle(order.begin(), order.end(), rng);
    bool progress = true;
    while (progress && !b.faulted) {
      progress = false;
      for (unsigned i : order) {
        EmuThread& t = b.threads[i];
        if (t.state != State::Runnable) continue;
        t_current = &t;
        t.fiber->resume();
        t_current = nullptr;
        progress = true;
        if (b.faulted) break;
      }
    }
    if (b.faulted || !release_or_diagnose(b)) break;
  }
  if (b.faulted) throw std::runtime_error(b.fault);
}

// A pool of OS threads that run the blocks of one grid at a time, the calling
// thread among them.
class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i)
      std::thread([this] { work(); }).detach();
  }

  // Runs task(i) for i in [0, count) on all threads; the first exception stops the
  // rest and is returned.
  std::string run(std::uint64_t count, const std::function<void(std::uint64_t)>& task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      count_ = count;
      next_.store(0);
      failure_.clear();
      busy_ = 0;
      ++generation_;
    }
    start_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_ == 0; });
    task_ = nullptr;
    return failure_;
  }

 private:
  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return generation_ != seen && task_ != nullptr; });
        seen = generation_;
        ++busy_;
      }
      drain();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) done_.notify_all();
    }
  }
  void drain() {
    for (;;) {
      const std::uint64_t i = next_.fetch_add(1);
      if (i >= count_) return;
      try {
        (*task_)(i);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (failure_.empty()) failure_ = e.what();
        next_.store(count_);
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable start_, done_;
  const std::function<void(std::uint64_t)>* task_ = nullptr;
  std::uint64_t count_ = 0;
  std::atomic<std::uint64_t> next_{0};
  std::string failure_;
  int busy_ = 0;
  std::uint64_t generation_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool(settings().workers);  // threads live until the process ends
  return *p;
}

}  // namespace

cudaError_t run_grid(const Grid& grid, std::string* message) {
  const dim3 g = grid.spec.grid;
  const std::uint64_t blocks = static_cast<std::uint64_t>(g.x) * g.y * g.z;
  const std::string failure = pool().run(blocks, [&grid](std::uint64_t i) { run_block(grid, i); });
  if (failure.empty()) return cudaSuccess;
  *message = grid.description + ": " + failure;
  return failure.find("misaligned") != std::string::npos ? cudaErrorMisalignedAddress
                                                         : cudaErrorLaunchFailure;
}

// ------------------------------------------------------------------ the device language

const ThreadInfo& this_thread() noexcept {
  return current("threadIdx/blockIdx").info;
}

void device_fault(const char* what) {
  fault_here(current(what), what);
}

void syncthreads(const char* site) {
  EmuThread& t = current("__syncthreads");
  t.state = State::AtBarrier;
  t.site = site;
  t_current = nullptr;
  t.fiber->yield(false);
}

unsigned lane_id() noexcept {
  return current("lane id").linear % 32;
}

unsigned active_mask() noexcept {
  EmuThread& t = current("__activemask");
  const unsigned warp = t.linear / 32;
  unsigned mask = 0;
  for (unsigned lane = 0; lane < 32 && warp * 32 + lane < t.block->n; ++lane) {
    const State s = t.block->threads[warp * 32 + lane].state;
    if (s != State::Exited && s != State::Faulted) mask |= 1u << lane;
  }
  return mask;
}

void warp_collective(unsigned mask, WarpOp op, const char* what, WarpSlot& mine,
                     WarpCombine combine) {
  EmuThread& t = current(what);
  Block& b = *t.block;
  const unsigned warp = t.linear / 32, lane = t.linear % 32;
  const unsigned lanes = std::min(32u, b.n - warp * 32);
  const unsigned present = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  char msg[256];
  if (!(mask >> lane & 1u)) {
    std::snprintf(msg, sizeof msg, "%s: mask 0x%08x does not name the calling lane %u", what, mask,
                  lane);
    fault_here(t, msg);
  }
  if ((mask & ~present) != 0) {
    std::snprintf(msg, sizeof msg,
                  "%s: mask 0x%08x names lanes that are not in the block (its warp has %u threads)",
                  what, mask, lanes);
    fault_here(t, msg);
  }
  t.state = State::AtWarp;
  t.mask = mask;
  t.op = op;
  t.what = what;
  t.slot = &mine;
  WarpSlot* slots[32] = {};
  for (unsigned l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) continue;
    EmuThread& u = b.threads[warp * 32 + l];
    if (u.state == State::Exited) {
      std::snprintf(msg, sizeof msg, "%s: mask 0x%08x names lane %u, which has exited", what, mask,
                    l);
      fault_here(t, msg);
    }
    if (u.state != State::AtWarp) {
      // Not everyone is here yet: wait to be released by the last lane.
      t_current = nullptr;
      t.fiber->yield(false);
      t_current = &t;
      return;
    }
    if (u.mask != mask || u.op != op) {
      std::snprintf(msg, sizeof msg,
                    "%s with mask 0x%08x meets lane %u at %s with mask 0x%08x: a divergent warp",
                    what, mask, l, u.what ? u.what : "?", u.mask);
      fault_here(t, msg);
    }
    slots[l] = u.slot;
  }
  if (combine != nullptr) combine(slots, mask);
  for (unsigned l = 0; l < 32; ++l)
    if (mask >> l & 1u) b.threads[warp * 32 + l].state = State::Runnable;
}

std::uint64_t shfl(WarpOp op, const char* what, unsigned mask, std::uint64_t bits, int arg,
                   int width) {
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) device_fault("shuffle width");
  WarpSlot slot;
  slot.value = bits;
  slot.arg = arg;
  slot.width = width;
  static constexpr WarpCombine combine[] = {
      // Shfl, ShflUp, ShflDown, ShflXor: lane i reads from src(i); a source outside
      // the width-segment (or, for up/down, the segment) reads its own value.
      [](WarpSlot* const* s, unsigned m) {
        for (unsigned i = 0; i < 32; ++i)
          if (m >> i & 1u) {
            const unsigned w = static_cast<unsigned>(s[i]->width);
            const unsigned src = (i & ~(w - 1)) + (static_cast<unsigned>(s[i]->arg) & (w - 1));
            s[i]->result = s[src] != nullptr ? s[src]->value : ~std::uint64_t{0};
          }
      },
      [](WarpSlot* const* s, unsigned m) {
        for (unsigned i = 0; i < 32; ++i)
          if (m >> i & 1u) {
            const unsigned w = static_cast<unsigned>(s[i]->width);
            const int src = static_cast<int>(i) - s[i]->arg;
            const bool inside = src >= static_cast<int>(i & ~(w - 1));
            s[i]->result = !inside             ? s[i]->value
                           : s[src] != nullptr ? s[src]->value
                                               : ~std::uint64_t{0};
          }
      },
      [](WarpSlot* const* s, unsigned m) {
        for (unsigned i = 0; i < 32; ++i)
          if (m >> i & 1u) {
            const unsigned w = static_cast<unsigned>(s[i]->width);
            const unsigned src = i + static_cast<unsigned>(s[i]->arg);
            const bool inside = src < (i & ~(w - 1)) + w;
            s[i]->result = !inside             ? s[i]->value
                           : s[src] != nullptr ? s[src]->value
                                               : ~std::uint64_t{0};
          }
      },
      [](WarpSlot* const* s, unsigned m) {
        for (unsigned i = 0; i < 32; ++i)
          if (m >> i & 1u) {
            const unsigned w = static_cast<unsigned>(s[i]->width);
            const unsigned src = i ^ static_cast<unsigned>(s[i]->arg);
            const bool inside = (src & ~(w - 1)) == (i & ~(w - 1));
            s[i]->result = !inside             ? s[i]->value
                           : s[src] != nullptr ? s[src]->value
                                               : ~std::uint64_t{0};
          }
      },
  };
  const int index = op == WarpOp::Shfl       ? 0
                    : op == WarpOp::ShflUp   ? 1
                    : op == WarpOp::ShflDown ? 2
                                             : 3;
  warp_collective(mask, op, what, slot, combine[index]);
  // A source lane outside the mask gives an undefined value on the GPU: a NaN pattern here.
  return slot.result;
}

unsigned vote(WarpOp op, const char* what, unsigned mask, bool predicate) {
  WarpSlot slot;
  slot.value = predicate ? 1 : 0;
  warp_collective(mask, op, what, slot, [](WarpSlot* const* s, unsigned m) {
    std::uint64_t ballot = 0;
    for (unsigned i = 0; i < 32; ++i)
      if ((m >> i & 1u) && s[i]->value) ballot |= 1u << i;
    for (unsigned i = 0; i < 32; ++i)
      if (m >> i & 1u) s[i]->result = ballot;
  });
  const unsigned ballot = static_cast<unsigned>(slot.result);
  switch (op) {
    case WarpOp::Any:
      return ballot != 0;
    case WarpOp::All:
      return ballot == mask;
    default:
      return ballot;
  }
}

// ------------------------------------------------------------------ shared memory

void* static_shared(const void* key, std::size_t bytes, std::size_t align) {
  EmuThread& t = current("__shared__");
  Block& b = *t.block;
  for (const SharedVar& v : b.statics)
    if (v.key == key) return v.ptr;
  void* p = nullptr;
  if (posix_memalign(&p, align < 16 ? 16 : align, bytes == 0 ? 1 : bytes) != 0)
    fault_here(t, "out of host memory for __shared__");
  fill_uninitialised(p, bytes);
  b.statics.push_back(SharedVar{key, p});
  b.static_bytes += bytes;
  if (b.static_bytes + b.grid->spec.dynamic_smem > kMaxSmemPerBlockOptin) {
    char msg[160];
    std::snprintf(msg, sizeof msg,
                  "static (%zu B) + dynamic (%zu B) shared memory exceeds the SM's 227 KiB",
                  b.static_bytes, b.grid->spec.dynamic_smem);
    fault_here(t, msg);
  }
  return p;
}

void* dynamic_shared() noexcept {
  return current("extern __shared__").block->dynamic;
}

}  // namespace kfuse::emu

namespace nvcuda::wmma::detail {

void check_pointer(const void* p, unsigned ldm, std::size_t element_bytes, const char* what) {
  char msg[160];
  if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0) {
    std::snprintf(msg, sizeof msg, "%s: misaligned pointer %p (WMMA needs 32-byte alignment)", what,
                  p);
    ::kfuse::emu::device_fault(msg);
  }
  const unsigned multiple = element_bytes == 2 ? 8 : 4;
  if (ldm % multiple != 0) {
    std::snprintf(msg, sizeof msg, "%s: misaligned ldm %u (a multiple of %u elements)", what, ldm,
                  multiple);
    ::kfuse::emu::device_fault(msg);
  }
}

}  // namespace nvcuda::wmma::detail
