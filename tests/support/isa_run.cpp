// Runs one test program on the CPU entry points of one instruction set:
//   isa_run LEVEL PROGRAM [ARGS...]      (LEVEL: baseline, avx2 or avx512)
// It sets KFUSE_CPU_ISA=LEVEL and runs PROGRAM, or exits with 77 (which CTest counts
// as skipped) when this processor lacks LEVEL or when LEVEL is the one the library picks
// by itself, which the plain test run already covers. So CI runs every entry point its
// processor supports, each once.
#include "src/core/isa.hpp"

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  using kfuse::cpu::CpuIsa;
  if (argc < 3) {
    std::fprintf(stderr, "usage: isa_run baseline|avx2|avx512 PROGRAM [ARGS...]\n");
    return 2;
  }
  const CpuIsa levels[] = {CpuIsa::baseline, CpuIsa::avx2, CpuIsa::avx512};
  const CpuIsa* level = nullptr;
  for (const CpuIsa& l : levels)
    if (std::strcmp(argv[1], kfuse::cpu::cpu_isa_name(l)) == 0) level = &l;
  if (level == nullptr) {
    std::fprintf(stderr, "isa_run: unknown level '%s'\n", argv[1]);
    return 2;
  }
  if (!kfuse::cpu::cpu_supports(*level)) {
    std::printf("SKIPPED: this processor lacks the %s entry points' instructions\n", argv[1]);
    return 77;
  }
  unsetenv("KFUSE_CPU_ISA");  // the library's own choice, read once below
  if (kfuse::cpu::cpu_isa() == *level) {
    std::printf("SKIPPED: %s is this processor's default, which the plain test run covers\n",
                argv[1]);
    return 77;
  }
  setenv("KFUSE_CPU_ISA", argv[1], 1);
  execv(argv[2], argv + 2);
  std::perror("isa_run: execv");
  return 2;
}
