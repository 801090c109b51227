#include "src/core/isa.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

namespace kfuse::cpu {

bool use_avx2() {
#ifdef KFUSE_CPU_HAVE_AVX2_PATH
  static const bool use = [] {
    const char* forced = std::getenv("KFUSE_CPU_ISA");
    if (forced != nullptr && std::strcmp(forced, "baseline") == 0) return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return use;
#else
  return false;
#endif
}

std::string isa_description() {
  std::string s = use_avx2() ? "avx2+fma entry points" : "baseline entry points";
#ifdef KFUSE_CPU_HAVE_AVX2_PATH
  s += "; processor:";
  // __builtin_cpu_supports needs string literals.
  if (__builtin_cpu_supports("sse4.2")) s += " sse4.2";
  if (__builtin_cpu_supports("avx")) s += " avx";
  if (__builtin_cpu_supports("avx2")) s += " avx2";
  if (__builtin_cpu_supports("fma")) s += " fma";
  if (__builtin_cpu_supports("avx512f")) s += " avx512f";
  if (__builtin_cpu_supports("avx512bw")) s += " avx512bw";
  if (__builtin_cpu_supports("avx512vl")) s += " avx512vl";
  if (__builtin_cpu_supports("avx512bf16")) s += " avx512bf16";
#endif
  return s;
}

}  // namespace kfuse::cpu
