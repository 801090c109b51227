// The CPU paths' choice of instruction set. Each hot loop is one always-inlined
// function (KFUSE_CPU_HOT) compiled into one entry point per instruction set: the
// build's baseline and, on x86-64 with GCC or Clang, AVX2+FMA (256-bit vectors) and
// AVX-512 (F, BW, DQ, VL with FMA; 512-bit vectors); cpu_entry_point<&hot>() returns
// the one for this processor. Elsewhere the target macros are empty, the three entry
// points are the same code and the baseline one is always chosen.
#pragma once

#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#define KFUSE_CPU_X86_ENTRY_POINTS 1
#define KFUSE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#if defined(__clang__)
#define KFUSE_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#else
// GCC otherwise keeps auto-vectorised loops at 256 bits on some tunings.
#define KFUSE_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")))
#endif
#else
#define KFUSE_TARGET_AVX2
#define KFUSE_TARGET_AVX512
#endif

// The hot loops: inlined whole into every entry point, so that each is compiled for
// its entry point's instruction set (a call to an out-of-line copy would run the
// baseline's code).
#define KFUSE_CPU_HOT inline __attribute__((always_inline))

namespace kfuse::cpu {

// In increasing order: each level's processors run the ones below it.
enum class CpuIsa { baseline = 0, avx2 = 1, avx512 = 2 };

// "baseline", "avx2", "avx512".
const char* cpu_isa_name(CpuIsa isa);

// Whether this processor (and operating system) can run the entry points of `isa`.
bool cpu_supports(CpuIsa isa);

// The entry points that run: the best the processor supports, or the level that
// KFUSE_CPU_ISA names (baseline, avx2, avx512) when it names one that is supported.
// A level the processor lacks is never chosen: the best supported one below it runs
// instead (isa_description says so), never an illegal instruction.
CpuIsa cpu_isa();

template <class Fn>
Fn pick_entry_point(Fn baseline, Fn avx2, Fn avx512) {
  switch (cpu_isa()) {
    case CpuIsa::avx512:
      return avx512;
    case CpuIsa::avx2:
      return avx2;
    case CpuIsa::baseline:
      break;
  }
  return baseline;
}

// The entry points of one hot loop: the function Hot (KFUSE_CPU_HOT, so that each
// entry point inlines it whole) compiled once per instruction set.
template <auto Hot>
struct IsaEntryPoints;
template <class R, class... Args, R (*Hot)(Args...)>
struct IsaEntryPoints<Hot> {
  static R baseline(Args... args) { return Hot(args...); }
  KFUSE_TARGET_AVX2 static R avx2(Args... args) { return Hot(args...); }
  KFUSE_TARGET_AVX512 static R avx512(Args... args) { return Hot(args...); }
};

// The entry point of Hot for this processor (or KFUSE_CPU_ISA).
template <auto Hot>
auto cpu_entry_point() {
  using E = IsaEntryPoints<Hot>;
  return pick_entry_point(&E::baseline, &E::avx2, &E::avx512);
}

// The entry points chosen, a KFUSE_CPU_ISA request that was not honoured, and the
// processor's vector extensions, e.g.
// "avx2 entry points; processor: sse4.2 avx avx2 fma" (for kfuse-bench's report).
std::string isa_description();

}  // namespace kfuse::cpu
