#include "isa.hpp"

#include <cstdlib>
#include <cstring>

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

}  // namespace kfuse::cpu
