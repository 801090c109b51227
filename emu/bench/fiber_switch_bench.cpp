// The cost of one fiber switch (there and back counts two), for the choice of the
// emulated device's fiber switch: the hand-written one (emu/src/fiber.cpp), ucontext,
// and Boost.Context's fcontext (Debian libboost-context-dev). Not part of the build:
//   g++ -O2 -std=c++17 -I emu/src emu/bench/fiber_switch_bench.cpp emu/src/fiber.cpp \
//       -lboost_context -o /tmp/fiber_switch_bench && /tmp/fiber_switch_bench
#include <ucontext.h>
#include <boost/context/detail/fcontext.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

#include "fiber.hpp"

namespace {

constexpr long kRounds = 2000000;
using Clock = std::chrono::steady_clock;

double ns_per_switch(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / (2.0 * kRounds);
}

// ---- hand-written
kfuse::emu::Fiber hand;
void hand_entry(void*) {
  hand.entered();
  for (;;)
    hand.yield(false);
}

// ---- ucontext
ucontext_t u_main, u_fiber;
void u_entry() {
  for (;;)
    swapcontext(&u_fiber, &u_main);
}

// ---- fcontext
namespace bc = boost::context::detail;
void f_entry(bc::transfer_t t) {
  for (;;)
    t = bc::jump_fcontext(t.fctx, nullptr);
}

}  // namespace

int main() {
  hand.start(&hand_entry, nullptr);
  auto t0 = Clock::now();
  for (long i = 0; i < kRounds; ++i)
    hand.resume();
  std::printf("hand-written switch: %6.1f ns\n", ns_per_switch(t0));

  std::vector<char> stack(256 * 1024);
  getcontext(&u_fiber);
  u_fiber.uc_stack.ss_sp = stack.data();
  u_fiber.uc_stack.ss_size = stack.size();
  makecontext(&u_fiber, u_entry, 0);
  t0 = Clock::now();
  for (long i = 0; i < kRounds; ++i)
    swapcontext(&u_main, &u_fiber);
  std::printf("ucontext swapcontext: %6.1f ns\n", ns_per_switch(t0));

  std::vector<char> fstack(256 * 1024);
  bc::fcontext_t f = bc::make_fcontext(fstack.data() + fstack.size(), fstack.size(), f_entry);
  t0 = Clock::now();
  for (long i = 0; i < kRounds; ++i)
    f = bc::jump_fcontext(f, nullptr).fctx;
  std::printf("boost fcontext:       %6.1f ns\n", ns_per_switch(t0));
}
