// The mixture-of-experts family's benchmark cases, bf16, at the shapes
// (Mixtral, DeepSeek-V3-like, OLMoE; T = 4096 and 16384) for --preset full and
// at scaled-down shapes small enough for two CPU cores for --preset quick:
//   moe_router_plan  router top-k + dispatch plan               (tokens/s)
//   moe_scatter      X -> Xp                                     (bytes (k+1) T H 2, vs copy
//   bandwidth) moe_gather       Yp, gates -> Y                              (same bytes)
//   moe_grouped_gemm Xp W1 over the experts                      (flop 2 T k H F)
//   moe_gather_gemm  the same product with the scatter fused in  (flop 2 T k H F)
//   moe_mlp_fwd      SwiGLU MLP forward                          (flop 6 T k H F)
//   moe_mlp_fwd_bwd  forward (keeping h1, h3) + backward         (flop 18 T k H F)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench.hpp"
#include "buffers.hpp"
#include "kfuse/moe.hpp"

namespace kfuse::bench {

double moe_device_copy_bytes_per_s(Context& ctx);  // moe_copy_cuda.cpp / moe_copy_none.cpp

namespace {

struct MoeShape {
  const char* name;
  std::int64_t T, H, F, E, k;
};

const MoeShape kFull[] = {
    {"mixtral_T4096", 4096, 4096, 14336, 8, 2},   {"mixtral_T16384", 16384, 4096, 14336, 8, 2},
    {"deepseek_T4096", 4096, 7168, 2048, 256, 8}, {"deepseek_T16384", 16384, 7168, 2048, 256, 8},
    {"olmoe_T4096", 4096, 2048, 1024, 64, 8},     {"olmoe_T16384", 16384, 2048, 1024, 64, 8},
};
// The same proportions, scaled to seconds on two CPU cores.
const MoeShape kQuick[] = {
    {"mixtral_q", 256, 256, 896, 8, 2},
    {"deepseek_q", 256, 448, 128, 64, 8},
    {"olmoe_q", 256, 256, 128, 64, 8},
};

// Bytes in the context's memory space.
class Buffer {
 public:
  Buffer(Context& ctx, std::size_t bytes) : gpu_(ctx.backend() == Backend::Cuda), bytes_(bytes) {
    if (bytes == 0) return;
    if (gpu_)
      device_.reset(support::device_alloc(bytes));
    else
      host_.assign(bytes, 0);
  }
  template <class T>
  T* as() {
    return static_cast<T*>(gpu_ ? device_.get() : static_cast<void*>(host_.data()));
  }
  // Repeats `pattern` over the whole buffer.
  void fill(const std::vector<unsigned char>& pattern) {
    for (std::size_t at = 0; at < bytes_; at += pattern.size()) {
      const std::size_t n = std::min(pattern.size(), bytes_ - at);
      if (gpu_)
        support::copy_to_device(static_cast<unsigned char*>(device_.get()) + at, pattern.data(), n);
      else
        std::memcpy(host_.data() + at, pattern.data(), n);
    }
  }
  void upload(const void* data, std::size_t bytes) {
    if (gpu_)
      support::copy_to_device(device_.get(), data, bytes);
    else
      std::memcpy(host_.data(), data, bytes);
  }

 private:
  bool gpu_;
  std::size_t bytes_;
  std::vector<unsigned char> host_;
  support::DevicePtr device_;
};

// Random bf16 values in [-scale, scale]: a pattern of 16 MiB (or less) repeated.
std::vector<unsigned char> bf16_pattern(std::size_t elements, double scale, std::uint64_t seed) {
  const std::size_t n = std::min<std::size_t>(elements, std::size_t(8) << 20);
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(static_cast<float>(-scale), static_cast<float>(scale));
  std::vector<unsigned char> bytes(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    float f = dist(gen);
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    const std::uint16_t h = static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  return bytes;
}

}  // namespace

std::vector<Measurement> run_moe(Context& ctx, const BackendInfo& info, const Options& options) {
  std::vector<Measurement> results;
  const bool gpu = ctx.backend() == Backend::Cuda;
  const Memory mem = gpu ? Memory::Device : Memory::Host;
  // A copy ceiling only on the GPU, where each run follows an L2 flush, so that a DRAM
  // copy bounds it. On the CPU the op's bytes stay in cache between runs and two threads
  // move them: a large single memcpy bounded nothing (the op ran at 735% of it), so the
  // roofline column says n/a there.
  const double copy_bw = gpu ? moe_device_copy_bytes_per_s(ctx) : 0.0;
  const double bf16_peak = peak_flop_per_s(info, Precision::BF16);
  const MoeShape* cases = options.preset == Preset::Full ? kFull : kQuick;
  const int n_cases = options.preset == Preset::Full ? 6 : 3;
  auto wanted = [&](const std::string& op, const MoeShape& s) {
    return options.filter.empty() || (op + "/" + s.name).find(options.filter) != std::string::npos;
  };
  for (int c = 0; c < n_cases; ++c) {
    const MoeShape& s = cases[c];
    const std::int64_t T = s.T, H = s.H, F = s.F, E = s.E, k = s.k;
    const std::string ops[] = {"moe_router_plan",  "moe_scatter",     "moe_gather",
                               "moe_grouped_gemm", "moe_gather_gemm", "moe_mlp_fwd",
                               "moe_mlp_fwd_bwd"};
    bool any = false;
    for (const auto& op : ops)
      any = any || wanted(op, s);
    if (!any) continue;

    // Inputs: logits, routing and plan; activations and weights (W scaled 1/sqrt(fan-in)).
    const MoePlanLayout layout = moe_plan_layout(T, k, E);
    const std::int64_t rows = layout.rows;
    Buffer logits(ctx, T * E * 2), ids(ctx, T * k * 4), gates(ctx, T * k * 4),
        plan_storage(ctx, layout.storage_size() * 4);
    logits.fill(bf16_pattern(T * E, 2.0, 1));
    const MoePlan plan = moe_plan_views(layout, plan_storage.as<std::int32_t>(), mem);
    const MatrixView<const bf16> logits_v(logits.as<bf16>(), T, E, E, mem);
    const MatrixView<std::int32_t> ids_v(ids.as<std::int32_t>(), T, k, k, mem);
    const MatrixView<float> gates_v(gates.as<float>(), T, k, k, mem);
    RouterOptions ro;
    ro.renormalize = true;
    moe_router_topk(ctx, logits_v, ids_v, gates_v, ro);
    moe_plan(ctx, ids_v, plan);
    Buffer X(ctx, T * H * 2), Xp(ctx, rows * H * 2), Hp(ctx, rows * F * 2), Y(ctx, T * H * 2),
        dY(ctx, T * H * 2), W1(ctx, E * H * F * 2), W3(ctx, E * H * F * 2), W2(ctx, E * F * H * 2);
    X.fill(bf16_pattern(T * H, 1.0, 2));
    dY.fill(bf16_pattern(T * H, 1.0, 3));
    W1.fill(bf16_pattern(E * H * F, std::sqrt(3.0 / H), 4));
    W3.fill(bf16_pattern(E * H * F, std::sqrt(3.0 / H), 5));
    W2.fill(bf16_pattern(E * F * H, std::sqrt(3.0 / F), 6));
    const MatrixView<const bf16> x(X.as<bf16>(), T, H, H, mem), dy(dY.as<bf16>(), T, H, H, mem);
    const MatrixView<const bf16> w1(W1.as<bf16>(), E * H, F, F, mem),
        w3(W3.as<bf16>(), E * H, F, F, mem), w2(W2.as<bf16>(), E * F, H, H, mem);
    const MatrixView<bf16> xp(Xp.as<bf16>(), rows, H, H, mem), hp(Hp.as<bf16>(), rows, F, F, mem),
        y(Y.as<bf16>(), T, H, H, mem);
    const MoeMlpWeights<bf16> weights{w1, w3, w2};
    moe_scatter(ctx, plan, x, xp);  // Xp holds real rows for the gather and the GEMM

    auto measure = [&](const std::string& op, const std::string& unit, double work,
                       const std::string& roofline, double roofline_work, double peak,
                       const std::string& note, const std::function<void()>& body) {
      if (!wanted(op, s)) return;
      Measurement m;
      m.op = op;
      m.backend = info.backend;
      m.dtype = "bf16";
      m.precision = "bf16";
      m.case_name = s.name;
      m.sizes = {{"T", T}, {"H", H}, {"F", F}, {"E", E}, {"k", k}};
      m.work = work;
      m.work_unit = unit;
      m.roofline = roofline;
      m.roofline_work = roofline_work;
      m.roofline_peak = peak;
      m.note = note;
      m.ms = time_ms(
          ctx, [&](int) { body(); }, options.warmup, options.runs);
      results.push_back(std::move(m));
    };
    const double tkhf = double(T) * double(k) * double(H) * double(F);
    const double move_bytes = double(k + 1) * double(T) * double(H) * 2.0;
    char copy_note[96];
    if (gpu)
      std::snprintf(copy_note, sizeof copy_note, "copy roofline %.0f GB/s (cudaMemcpy D2D)",
                    copy_bw * 1e-9);
    else
      std::snprintf(copy_note, sizeof copy_note, "no copy ceiling on the CPU (cache-resident)");

    measure("moe_router_plan", "tokens", double(T), "", 0, 0, "softmax-topk renormalised + plan",
            [&] {
              moe_router_topk(ctx, logits_v, ids_v, gates_v, ro);
              moe_plan(ctx, ids_v, plan);
            });
    measure("moe_scatter", "B", move_bytes, "copy", move_bytes, copy_bw, copy_note,
            [&] { moe_scatter(ctx, plan, x, xp); });
    measure("moe_gather", "B", move_bytes, "copy", move_bytes, copy_bw, copy_note, [&] {
      moe_gather(ctx, plan, MatrixView<const bf16>(xp), MatrixView<const float>(gates_v), y);
    });
    measure("moe_grouped_gemm", "flop", 2 * tkhf, "bf16", 2 * tkhf, bf16_peak, "Xp W1",
            [&] { moe_grouped_gemm(ctx, plan, MatrixView<const bf16>(xp), w1, hp); });
    measure("moe_gather_gemm", "flop", 2 * tkhf, "bf16", 2 * tkhf, bf16_peak, "X W1, gather fused",
            [&] { moe_gather_gemm(ctx, plan, x, w1, hp); });
    measure("moe_mlp_fwd", "flop", 6 * tkhf, "bf16", 6 * tkhf, bf16_peak, "SwiGLU forward",
            [&] { moe_mlp_forward(ctx, plan, x, MatrixView<const float>(gates_v), weights, y); });
    if (wanted("moe_mlp_fwd_bwd", s)) {
      Buffer h1(ctx, rows * F * 2), h3(ctx, rows * F * 2), dX(ctx, T * H * 2),
          dgates(ctx, T * k * 4), dW1(ctx, E * H * F * 2), dW3(ctx, E * H * F * 2),
          dW2(ctx, E * F * H * 2);
      const MoeMlpSaved<bf16> saved{MatrixView<bf16>(h1.as<bf16>(), rows, F, F, mem),
                                    MatrixView<bf16>(h3.as<bf16>(), rows, F, F, mem)};
      const MoeMlpGrads<bf16> grads{MatrixView<bf16>(dX.as<bf16>(), T, H, H, mem),
                                    MatrixView<float>(dgates.as<float>(), T, k, k, mem),
                                    MatrixView<bf16>(dW1.as<bf16>(), E * H, F, F, mem),
                                    MatrixView<bf16>(dW3.as<bf16>(), E * H, F, F, mem),
                                    MatrixView<bf16>(dW2.as<bf16>(), E * F, H, H, mem)};
      measure("moe_mlp_fwd_bwd", "flop", 18 * tkhf, "bf16", 18 * tkhf, bf16_peak,
              "forward keeping h1, h3, then backward", [&] {
                moe_mlp_forward(ctx, plan, x, MatrixView<const float>(gates_v), weights, y, saved);
                moe_mlp_backward(ctx, plan, x, MatrixView<const float>(gates_v), weights, dy, saved,
                                 grads);
              });
    }
    ctx.synchronize();
  }
  return results;
}

}  // namespace kfuse::bench
