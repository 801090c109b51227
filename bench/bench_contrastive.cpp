// The contrastive family's benchmark cases: CLIP and SigLIP, forward alone and
// forward + backward, at the sizes (full) or at sizes two CPU cores finish
// in seconds (quick). Rates count the floor of matrix-product work: one Na x Nb x d
// product for a forward, 4 for CLIP's forward + backward and 3 for SigLIP's
// (kfuse's GPU deterministic default executes 5 and 4, its CPU 3 and 3 up to N ~ 16k);
// the note gives the workspace.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "bench.hpp"
#include "buffers.hpp"
#include "kernels/core/float16.hpp"
#include "kfuse/contrastive.hpp"

namespace kfuse::bench {
namespace {

struct ContrastiveCase {
  std::int64_t n, d;
};

const ContrastiveCase kFull[] = {{4096, 512},   {4096, 1024}, {16384, 512},
                                 {16384, 1024}, {65536, 512}, {65536, 1024}};
const ContrastiveCase kQuick[] = {{1024, 128}, {1024, 512}};

// One buffer in the context's memory, filled on the host.
class Buffer {
 public:
  Buffer(Context& ctx, std::size_t bytes, const void* init) : ctx_(ctx), host_(bytes) {
    if (init != nullptr) std::memcpy(host_.data(), init, bytes);
    if (ctx.backend() == Backend::Cuda) {
      device_.reset(support::device_alloc(bytes));
      if (init != nullptr) support::copy_to_device(device_.get(), host_.data(), bytes);
    }
  }
  template <class T>
  T* as() {
    return static_cast<T*>(ctx_.backend() == Backend::Cuda ? device_.get()
                                                           : static_cast<void*>(host_.data()));
  }

 private:
  Context& ctx_;
  std::vector<unsigned char> host_;
  support::DevicePtr device_;
};

// Unit-norm embeddings (CLIP normalises its features), as T.
template <class T>
std::vector<T> embeddings(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<T> out(static_cast<std::size_t>(n * d));
  std::vector<float> row(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < n; ++i) {
    double norm = 0.0;
    for (auto& v : row) {
      v = dist(gen);
      norm += double(v) * v;
    }
    for (std::int64_t k = 0; k < d; ++k)
      out[i * d + k] = detail::from_float<T>(float(row[k] / std::sqrt(norm)));
  }
  return out;
}

template <class T>
void run_dtype(Context& ctx, const BackendInfo& info, const Options& options,
               const ContrastiveCase& c, const char* dtype, std::vector<Measurement>& results) {
  const Memory mem = ctx.backend() == Backend::Cuda ? Memory::Device : Memory::Host;
  const std::int64_t n = c.n, d = c.d;
  const std::string case_name = "N" + std::to_string(n) + "_d" + std::to_string(d);
  const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(n * d);
  // Two input sets, so that consecutive runs read different buffers.
  std::vector<std::unique_ptr<Buffer>> A, B;
  for (int set = 0; set < 2; ++set) {
    A.push_back(std::make_unique<Buffer>(ctx, bytes, embeddings<T>(n, d, 10 + set).data()));
    B.push_back(std::make_unique<Buffer>(ctx, bytes, embeddings<T>(n, d, 20 + set).data()));
  }
  Buffer dA(ctx, bytes, nullptr), dB(ctx, bytes, nullptr), scalars(ctx, 8 * sizeof(float), nullptr);
  Buffer lse_r(ctx, n * sizeof(float), nullptr), lse_c(ctx, n * sizeof(float), nullptr);
  float* s = scalars.as<float>();
  auto vec = [&](float* p, std::int64_t size) { return VectorView<float>(p, size, mem); };
  auto in = [&](std::vector<std::unique_ptr<Buffer>>& v, int run) {
    return MatrixView<const T>(v[run % 2]->template as<T>(), n, d, d, mem);
  };
  const ContrastiveGradients<T> grads{MatrixView<T>(dA.as<T>(), n, d, d, mem),
                                      MatrixView<T>(dB.as<T>(), n, d, d, mem), vec(s + 1, 1),
                                      vec(s + 2, 1)};
  ClipLossOptions co;
  co.logit_scale = std::log(1.0 / 0.07);  // CLIP's initial temperature
  SiglipLossOptions so;

  struct Op {
    const char* name;
    double products;  // floor of matrix-product equivalents
    std::size_t workspace;
    std::function<void(int)> body;
  };
  const std::vector<Op> ops = {
      {"clip_fwd", 1.0, clip_loss_workspace_bytes(ctx, n, n, d, ContrastivePass::Forward, co),
       [&](int run) {
         clip_loss_forward(
             ctx, in(A, run), in(B, run), {},
             ClipForwardOutputs{
                 vec(s, 1), {}, {}, vec(lse_r.as<float>(), n), vec(lse_c.as<float>(), n)},
             co);
       }},
      {"clip_fwd_bwd", 4.0,
       clip_loss_workspace_bytes(ctx, n, n, d, ContrastivePass::ForwardBackward, co),
       [&](int run) {
         clip_loss_forward_backward(ctx, in(A, run), in(B, run), {}, ClipForwardOutputs{vec(s, 1)},
                                    1.0, grads, co);
       }},
      {"siglip_fwd", 1.0, siglip_loss_workspace_bytes(ctx, n, n, d, ContrastivePass::Forward, so),
       [&](int run) { siglip_loss_forward(ctx, in(A, run), in(B, run), {}, vec(s, 1), {}, so); }},
      {"siglip_fwd_bwd", 3.0,
       siglip_loss_workspace_bytes(ctx, n, n, d, ContrastivePass::Backward, so),
       [&](int run) {
         siglip_loss_forward_backward(ctx, in(A, run), in(B, run), {}, vec(s, 1), {}, 1.0, grads,
                                      so);
       }},
  };
  for (const Op& op : ops) {
    if (!options.filter.empty() &&
        (std::string(op.name) + "/" + case_name).find(options.filter) == std::string::npos)
      continue;
    Measurement m;
    m.op = op.name;
    m.backend = info.backend;
    m.dtype = dtype;
    m.precision = std::is_same_v<T, float> ? "exact" : "bf16";
    m.case_name = case_name;
    m.sizes = {{"N", n}, {"d", d}};
    m.work = op.products * 2.0 * double(n) * double(n) * double(d);
    m.work_unit = "flop";
    m.roofline = std::is_same_v<T, float> ? "fp32" : "bf16";
    m.roofline_work = m.work;
    m.roofline_peak =
        peak_flop_per_s(info, std::is_same_v<T, float> ? Precision::Exact : Precision::BF16);
    m.note = "workspace " + std::to_string(op.workspace >> 10) + " KiB";
    m.ms = time_ms(ctx, op.body, options.warmup, options.runs);
    results.push_back(std::move(m));
  }
}

}  // namespace

std::vector<Measurement> run_contrastive(Context& ctx, const BackendInfo& info,
                                         const Options& options) {
  std::vector<Measurement> results;
  const bool gpu = ctx.backend() == Backend::Cuda;
  if (options.preset == Preset::Full) {
    for (const auto& c : kFull) {
      run_dtype<float>(ctx, info, options, c, "f32", results);
      if (gpu) run_dtype<bf16>(ctx, info, options, c, "bf16", results);
    }
  } else {
    // fp32 only on the CPU: the comparison there is with PyTorch's fp32 CPU path.
    for (const auto& c : kQuick) {
      run_dtype<float>(ctx, info, options, c, "f32", results);
      if (gpu) run_dtype<bf16>(ctx, info, options, c, "bf16", results);
    }
  }
  return results;
}

}  // namespace kfuse::bench
