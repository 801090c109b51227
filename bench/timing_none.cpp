// A CPU-only build: every context is a Cpu context.
#include "bench.hpp"

namespace kfuse::bench {

std::string cpu_model();
int cpu_threads();
std::vector<double> time_cpu_ms(const std::function<void(int)>& body, int warmup, int runs);

BackendInfo describe(const Context&) {
  BackendInfo info;
  info.backend = "cpu";
  info.device = cpu_model();
  info.threads = cpu_threads();
  return info;
}

std::vector<double> time_ms(Context&, const std::function<void(int)>& body, int warmup, int runs) {
  return time_cpu_ms(body, warmup, runs);
}

double peak_exp2_per_s(const BackendInfo&) {
  return 0;
}
double peak_flop_per_s(const BackendInfo&, Precision) {
  return 0;
}

}  // namespace kfuse::bench
