// The CPU paths' choice of instruction set: each hot loop has a baseline entry
// point and, on x86-64 with GCC or Clang, an AVX2+FMA one (a function compiled with
// __attribute__((target("avx2,fma")))), picked at run time.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define KFUSE_CPU_HAVE_AVX2_PATH 1
#endif

#include <string>

namespace kfuse::cpu {

// True when the AVX2+FMA entry points should run: the CPU has both extensions and
// KFUSE_CPU_ISA is not "baseline" (the tests run the baseline entry points that way).
bool use_avx2();

// The entry points chosen and the processor's vector extensions, e.g.
// "avx2+fma entry points; processor: sse4.2 avx avx2 fma" (for kfuse-bench's report).
std::string isa_description();

}  // namespace kfuse::cpu
