#include "fiber.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define KFUSE_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KFUSE_EMU_ASAN 1
#endif
#endif

#ifdef KFUSE_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace kfuse::emu {

#if defined(__x86_64__)
extern "C" void kfuse_emu_switch(void** save_sp, void* next_sp);
extern "C" void kfuse_emu_fiber_start();
// Saves the callee-saved registers, MXCSR and the x87 control word on the current
// stack, stores the stack pointer in *save_sp, switches to next_sp and restores the
// same from there. A new fiber's stack is laid out so that the restore "returns" into
// kfuse_emu_fiber_start with entry in r13 and its argument in r12.
asm(R"(
  .text
  .globl kfuse_emu_switch
  .hidden kfuse_emu_switch
  .type kfuse_emu_switch,@function
kfuse_emu_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size kfuse_emu_switch,.-kfuse_emu_switch

  .globl kfuse_emu_fiber_start
  .hidden kfuse_emu_fiber_start
  .type kfuse_emu_fiber_start,@function
kfuse_emu_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size kfuse_emu_fiber_start,.-kfuse_emu_fiber_start
)");
#endif

Fiber::~Fiber() {
  if (stack_ != nullptr) munmap(stack_, kStackBytes);
#if !defined(__x86_64__)
  delete[] static_cast<ucontext_t*>(uctx_);
#endif
}

void Fiber::start(Entry entry, void* arg) {
  if (stack_ == nullptr) {
    stack_ = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stack_ == MAP_FAILED) {
      stack_ = nullptr;
      throw std::bad_alloc();
    }
  }
#ifdef KFUSE_EMU_ASAN
  // A fiber abandoned mid-kernel (a device fault) leaves its frames' redzones behind.
  __asan_unpoison_memory_region(stack_, kStackBytes);
#endif
  fake_stack_ = nullptr;
#if defined(__x86_64__)
  auto top = reinterpret_cast<std::uintptr_t>(stack_) + kStackBytes;
  top &= ~std::uintptr_t{15};
  auto* slot = reinterpret_cast<std::uint64_t*>(top);
  // Above the return address the start stub's stack is 16-byte aligned before its call.
  slot[-2] = 0;
  slot[-3] = reinterpret_cast<std::uint64_t>(&kfuse_emu_fiber_start);  // return address
  slot[-4] = 0;                                                        // rbp
  slot[-5] = 0;                                                        // rbx
  slot[-6] = reinterpret_cast<std::uint64_t>(arg);                     // r12
  slot[-7] = reinterpret_cast<std::uint64_t>(entry);                   // r13
  slot[-8] = 0;                                                        // r14
  slot[-9] = 0;                                                        // r15
  std::uint32_t control[2] = {0x1f80u, 0x037fu};                       // MXCSR, x87 CW
  __asm__ volatile("stmxcsr %0" : "=m"(control[0]));
  __asm__ volatile("fnstcw %0" : "=m"(control[1]));
  slot[-10] =
      static_cast<std::uint64_t>(control[0]) | (static_cast<std::uint64_t>(control[1]) << 32);
  sp_ = &slot[-10];
#else
  if (uctx_ == nullptr) uctx_ = new ucontext_t[2];
  auto* ctx = static_cast<ucontext_t*>(uctx_);
  getcontext(&ctx[1]);
  ctx[1].uc_stack.ss_sp = stack_;
  ctx[1].uc_stack.ss_size = kStackBytes;
  ctx[1].uc_link = nullptr;
  makecontext(&ctx[1], reinterpret_cast<void (*)()>(entry), 1, arg);
#endif
}

void Fiber::resume() {
#ifdef KFUSE_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, stack_, kStackBytes);
#endif
#if defined(__x86_64__)
  kfuse_emu_switch(&scheduler_sp_, sp_);
#else
  auto* ctx = static_cast<ucontext_t*>(uctx_);
  swapcontext(&ctx[0], &ctx[1]);
#endif
#ifdef KFUSE_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void Fiber::entered() {
#ifdef KFUSE_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_, &scheduler_bottom_, &scheduler_size_);
#endif
}

void Fiber::yield(bool finished) {
#ifdef KFUSE_EMU_ASAN
  __sanitizer_start_switch_fiber(finished ? nullptr : &fake_stack_, scheduler_bottom_,
                                 scheduler_size_);
#else
  (void)finished;
#endif
#if defined(__x86_64__)
  kfuse_emu_switch(&sp_, scheduler_sp_);
#else
  auto* ctx = static_cast<ucontext_t*>(uctx_);
  swapcontext(&ctx[1], &ctx[0]);
#endif
#ifdef KFUSE_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_, &scheduler_bottom_, &scheduler_size_);
#endif
}

}  // namespace kfuse::emu
