// Timing and description of the CPU backend (and of a Cuda context in a CPU-only
// build, which cannot exist).
#include <chrono>
#include <fstream>
#include <string>

#include "bench.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kfuse::bench {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

int cpu_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

std::vector<double> time_cpu_ms(const std::function<void(int)>& body, int warmup, int runs) {
  for (int i = 0; i < warmup; ++i)
    body(i);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    body(warmup + i);
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return ms;
}

}  // namespace kfuse::bench
