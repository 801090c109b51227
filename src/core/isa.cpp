#include "src/core/isa.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

namespace kfuse::cpu {
namespace {

// The level KFUSE_CPU_ISA names, or -1 when it is unset, empty or names none.
int requested_level() {
  const char* forced = std::getenv("KFUSE_CPU_ISA");
  if (forced == nullptr) return -1;
  for (CpuIsa isa : {CpuIsa::baseline, CpuIsa::avx2, CpuIsa::avx512})
    if (std::strcmp(forced, cpu_isa_name(isa)) == 0) return static_cast<int>(isa);
  return -1;
}

CpuIsa best_supported() {
  if (cpu_supports(CpuIsa::avx512)) return CpuIsa::avx512;
  if (cpu_supports(CpuIsa::avx2)) return CpuIsa::avx2;
  return CpuIsa::baseline;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::avx512:
      return "avx512";
    case CpuIsa::avx2:
      return "avx2";
    case CpuIsa::baseline:
      break;
  }
  return "baseline";
}

bool cpu_supports(CpuIsa isa) {
#ifdef KFUSE_CPU_X86_ENTRY_POINTS
  // __builtin_cpu_supports also checks that the operating system saves the registers.
  switch (isa) {
    case CpuIsa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::baseline:
      break;
  }
#endif
  return isa == CpuIsa::baseline;
}

CpuIsa cpu_isa() {
  static const CpuIsa chosen = [] {
    const CpuIsa best = best_supported();
    const int asked = requested_level();
    if (asked < 0 || asked > static_cast<int>(best)) return best;
    return static_cast<CpuIsa>(asked);
  }();
  return chosen;
}

std::string isa_description() {
  std::string s = std::string(cpu_isa_name(cpu_isa())) + " entry points";
  if (const char* forced = std::getenv("KFUSE_CPU_ISA"); forced != nullptr && *forced != '\0') {
    if (requested_level() < 0)
      s += std::string(" (KFUSE_CPU_ISA=") + forced + " names no level: ignored)";
    else if (requested_level() != static_cast<int>(cpu_isa()))
      s += std::string(" (KFUSE_CPU_ISA=") + forced + ": not supported by this processor)";
    else
      s += " (forced by KFUSE_CPU_ISA)";
  }
#ifdef KFUSE_CPU_X86_ENTRY_POINTS
  s += "; processor:";
  // __builtin_cpu_supports needs string literals.
  if (__builtin_cpu_supports("sse4.2")) s += " sse4.2";
  if (__builtin_cpu_supports("avx")) s += " avx";
  if (__builtin_cpu_supports("avx2")) s += " avx2";
  if (__builtin_cpu_supports("fma")) s += " fma";
  if (__builtin_cpu_supports("avx512f")) s += " avx512f";
  if (__builtin_cpu_supports("avx512bw")) s += " avx512bw";
  if (__builtin_cpu_supports("avx512dq")) s += " avx512dq";
  if (__builtin_cpu_supports("avx512vl")) s += " avx512vl";
  if (__builtin_cpu_supports("avx512bf16")) s += " avx512bf16";
#endif
  return s;
}

}  // namespace kfuse::cpu
