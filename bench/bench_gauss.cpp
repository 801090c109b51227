// The Gaussian family's benchmark cases: gauss_matvec at the issue's sizes.
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "bench.hpp"
#include "buffers.hpp"
#include "kfuse/gauss.hpp"

namespace kfuse::bench {
namespace {

struct GaussCase {
  const char* name;
  std::int64_t M, N, d, R;
};

// Issue sizes (full) and a quick preset small enough for two CPU cores.
const GaussCase kFull[] = {
    {"d3", 100000, 100000, 3, 1}, {"d64", 100000, 100000, 64, 1}, {"d768", 50000, 50000, 768, 16}};
const GaussCase kQuick[] = {
    {"d3", 4096, 4096, 3, 1}, {"d64", 4096, 4096, 64, 1}, {"d768", 1024, 1024, 768, 16}};

// Inputs in the context's memory: `sets` independent copies, so that consecutive
// runs read different buffers.
class Inputs {
 public:
  Inputs(Context& ctx, std::size_t floats, int sets, std::uint64_t seed) : ctx_(ctx) {
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int s = 0; s < sets; ++s) {
      std::vector<float> host(floats);
      for (auto& v : host)
        v = dist(gen);
      if (ctx.backend() == Backend::Cuda) {
        support::DevicePtr dev(support::device_alloc(floats * sizeof(float)));
        support::copy_to_device(dev.get(), host.data(), floats * sizeof(float));
        device_.push_back(std::move(dev));
      } else {
        host_.push_back(std::move(host));
      }
    }
  }
  float* get(int set) {
    if (ctx_.backend() == Backend::Cuda)
      return static_cast<float*>(device_[set % device_.size()].get());
    return host_[set % host_.size()].data();
  }

 private:
  Context& ctx_;
  std::vector<std::vector<float>> host_;
  std::vector<support::DevicePtr> device_;
};

}  // namespace

std::vector<Measurement> run_gauss(Context& ctx, const BackendInfo& info, const Options& options) {
  std::vector<Measurement> results;
  const bool gpu = ctx.backend() == Backend::Cuda;
  const Memory mem = gpu ? Memory::Device : Memory::Host;
  const auto* cases = options.preset == Preset::Full ? kFull : kQuick;
  for (int c = 0; c < 3; ++c) {
    const GaussCase& g = cases[c];
    if (!options.filter.empty() &&
        (std::string("gauss_matvec/") + g.name).find(options.filter) == std::string::npos)
      continue;
    const double input_bytes = 4.0 * (g.M * g.d + g.N * g.d + g.N * g.R);
    const int sets = input_bytes < 64e6 ? 3 : 1;
    Inputs X(ctx, g.M * g.d, sets, 1), Y(ctx, g.N * g.d, sets, 2), V(ctx, g.N * g.R, sets, 3),
        out(ctx, g.M * g.R, 1, 4);
    std::vector<Precision> precisions = {Precision::Exact};
    if (gpu && g.d >= 64) precisions = {Precision::Exact, Precision::TF32, Precision::BF16};
    for (Precision precision : precisions) {
      GaussMatvecOptions o;
      o.sigma = std::sqrt(double(g.d));  // kernel values spread over (0, 1)
      o.precision = precision;
      Measurement m;
      m.op = "gauss_matvec";
      m.backend = info.backend;
      m.dtype = "f32";
      m.precision = precision_name(precision);
      m.case_name = g.name;
      m.sizes = {{"M", g.M}, {"N", g.N}, {"d", g.d}, {"R", g.R}};
      m.work = double(g.M) * double(g.N);
      m.work_unit = "pairs";
      if (g.d <= 32) {
        m.roofline = "exp";
        m.roofline_work = m.work;
        m.roofline_peak = peak_exp2_per_s(info);
      } else {
        m.roofline = precision == Precision::Exact ? "fp32" : precision_name(precision);
        m.roofline_work = 2.0 * m.work * double(g.d + g.R);
        m.roofline_peak = peak_flop_per_s(info, precision);
      }
      m.ms = time_ms(
          ctx,
          [&](int run) {
            gauss_matvec(ctx, MatrixView<const float>(X.get(run), g.M, g.d, g.d, mem),
                         MatrixView<const float>(Y.get(run), g.N, g.d, g.d, mem),
                         MatrixView<const float>(V.get(run), g.N, g.R, g.R, mem),
                         MatrixView<float>(out.get(0), g.M, g.R, g.R, mem), o);
          },
          options.warmup, options.runs);
      results.push_back(std::move(m));
    }
  }
  return results;
}

}  // namespace kfuse::bench
