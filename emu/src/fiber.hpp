// Fibers for the emulated device's threads: one stack per emulated thread and a
// context switch between the block scheduler and a thread. The switch is a
// hand-written x86-64 one (callee-saved registers, MXCSR and the x87 control word):
// measured here at a fraction of ucontext's cost (which saves the signal mask with a
// system call), see emu/bench/fiber_switch_bench.cpp. Other architectures use
// ucontext. Every switch carries AddressSanitizer's fiber annotations.
#pragma once

#include <cstddef>

namespace kfuse::emu {

class Fiber {
 public:
  using Entry = void (*)(void* arg);

  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  ~Fiber();

  // (Re)starts the fiber at entry(arg) on its own stack (allocated on first use).
  void start(Entry entry, void* arg);
  // From the scheduler: run the fiber until it switches back.
  void resume();
  // From inside the fiber: back to the scheduler. `finished`: it will never resume.
  void yield(bool finished);
  // Inside the fiber, first thing its entry does (completes the switch into it).
  void entered();

  static constexpr std::size_t kStackBytes = 256 * 1024;

 private:
  void* stack_ = nullptr;
  void* sp_ = nullptr;            // the fiber's saved stack pointer (x86-64)
  void* scheduler_sp_ = nullptr;  // the scheduler's, while the fiber runs
  void* uctx_ = nullptr;          // ucontext_t pair (other architectures)
  // AddressSanitizer bookkeeping
  void* fake_stack_ = nullptr;
  const void* scheduler_bottom_ = nullptr;
  std::size_t scheduler_size_ = 0;
};

}  // namespace kfuse::emu
