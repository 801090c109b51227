// The fusion family's benchmark cases at the sizes (full) and a quick
// preset for two CPU cores: rp_fuse, kron_fuse (with the device's memset rate as
// its write-bandwidth roofline), product_kernel_topk, tensor_sketch, rff_fuse.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench.hpp"
#include "buffers.hpp"
#include "kfuse/fuse.hpp"

namespace kfuse::bench {

// bench_fuse_cuda.cpp / bench_fuse_nocuda.cpp: enqueue a zero fill of `bytes` on
// ctx's stream (the write-bandwidth reference of kron_fuse).
void fuse_fill_async(Context& ctx, void* ptr, std::size_t bytes);

namespace {

// `sets` copies of n uniform(-1, 1) floats in the context's memory, so that
// consecutive runs read different buffers.
class Floats {
 public:
  Floats(Context& ctx, std::size_t n, int sets, std::uint64_t seed)
      : gpu_(ctx.backend() == Backend::Cuda) {
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int s = 0; s < sets; ++s) {
      std::vector<float> host(n);
      for (auto& v : host)
        v = dist(gen);
      if (gpu_) {
        support::DevicePtr dev(support::device_alloc(n * sizeof(float)));
        support::copy_to_device(dev.get(), host.data(), n * sizeof(float));
        device_.push_back(std::move(dev));
      } else {
        host_.push_back(std::move(host));
      }
    }
  }
  float* get(int set) {
    return gpu_ ? static_cast<float*>(device_[set % device_.size()].get())
                : host_[set % host_.size()].data();
  }

 private:
  bool gpu_;
  std::vector<std::vector<float>> host_;
  std::vector<support::DevicePtr> device_;
};

// Uninitialised output memory in the context's space.
class Output {
 public:
  Output(Context& ctx, std::size_t bytes) : gpu_(ctx.backend() == Backend::Cuda) {
    if (gpu_)
      device_.reset(support::device_alloc(bytes));
    else
      host_.resize((bytes + 7) / 8);
  }
  template <class T>
  T* as() {
    return static_cast<T*>(gpu_ ? device_.get() : static_cast<void*>(host_.data()));
  }

 private:
  bool gpu_;
  std::vector<std::uint64_t> host_;
  support::DevicePtr device_;
};

bool wanted(const Options& o, const std::string& name) {
  return o.filter.empty() || name.find(o.filter) != std::string::npos;
}

int sets_for(double bytes) {
  return bytes < 64e6 ? 3 : 1;
}

Measurement base(const BackendInfo& info, const std::string& op, const std::string& case_name,
                 Precision precision) {
  Measurement m;
  m.op = op;
  m.backend = info.backend;
  m.dtype = "f32";
  m.precision = precision_name(precision);
  m.case_name = case_name;
  return m;
}

struct RpCase {
  std::int64_t d1, d2, l, n;
};
struct TopkCase {
  std::int64_t M, N, k, d1, d2;
};
struct SketchCase {
  std::int64_t n, d1, d2, l;
};

}  // namespace

std::vector<Measurement> run_fuse(Context& ctx, const BackendInfo& info, const Options& options) {
  std::vector<Measurement> results;
  const bool gpu = ctx.backend() == Backend::Cuda;
  const bool full = options.preset == Preset::Full;
  const Memory mem = gpu ? Memory::Device : Memory::Host;
  auto view = [&](float* p, std::int64_t rows, std::int64_t cols) {
    return MatrixView<const float>(p, rows, cols, cols, mem);
  };

  // ---------------------------------------------------------------- rp_fuse
  const std::vector<RpCase> rp_full = {{512, 768, 3000, 128},    {768, 768, 3000, 128},
                                       {512, 768, 5000, 128},    {768, 768, 5000, 128},
                                       {512, 768, 3000, 100000}, {768, 768, 3000, 100000},
                                       {512, 768, 5000, 100000}, {768, 768, 5000, 100000}};
  const std::vector<RpCase> rp_quick = {{512, 768, 3000, 128}, {768, 768, 5000, 128}};
  for (const RpCase& c : full ? rp_full : rp_quick) {
    const std::string name =
        "d" + std::to_string(c.d1) + "_l" + std::to_string(c.l) + "_n" + std::to_string(c.n);
    if (!wanted(options, "rp_fuse/" + name)) continue;
    const int sets = sets_for(4.0 * c.n * (c.d1 + c.d2));
    Floats A(ctx, c.n * c.d1, sets, 1), B(ctx, c.n * c.d2, sets, 2);
    Output out(ctx, static_cast<std::size_t>(c.n * c.l) * sizeof(float));
    std::vector<Precision> precisions = {Precision::Exact};
    if (gpu) precisions = {Precision::Exact, Precision::TF32, Precision::BF16};
    // The CPU's permitted path (OpenBLAS fp32 sgemm) under TF32; BF16 takes the same one.
    else
      precisions = {Precision::Exact, Precision::TF32};
    for (Precision precision : precisions) {
      Measurement m = base(info, "rp_fuse", name, precision);
      m.sizes = {{"n", c.n}, {"d1", c.d1}, {"d2", c.d2}, {"l", c.l}};
      m.work = 2.0 * c.n * c.l * (c.d1 + c.d2);
      m.work_unit = "flop";
      m.roofline = precision == Precision::Exact ? "fp32" : precision_name(precision);
      m.roofline_work = m.work;
      m.roofline_peak = peak_flop_per_s(info, precision);
      m.note = gpu ? "cosine sides (the paper's), uniform U drawn per call"
                   : "cosine sides (the paper's), uniform U drawn once (the context's draw cache)";
      RpFuseOptions o;
      o.sides = {FuseSide{SideKernel::Cosine, 1.0, 0}, FuseSide{SideKernel::Cosine, 1.0, 0}};
      o.seed = 7;
      o.precision = precision;
      m.ms = time_ms(
          ctx,
          [&](int run) {
            rp_fuse(ctx, {view(A.get(run), c.n, c.d1), view(B.get(run), c.n, c.d2)},
                    MatrixView<float>(out.as<float>(), c.n, c.l, c.l, mem), o);
          },
          options.warmup, options.runs);
      results.push_back(std::move(m));
    }
  }

  // ---------------------------------------------------------------- kron_fuse
  {
    const std::int64_t n = full ? 4096 : 64, d1 = 512, d2 = 768;
    const std::string name = "d512x768_n" + std::to_string(n);
    if (wanted(options, "kron_fuse/" + name)) {
      const double bytes = 4.0 * n * d1 * d2;
      Floats A(ctx, n * d1, 3, 3), B(ctx, n * d2, 3, 4);
      Output out(ctx, static_cast<std::size_t>(bytes));
      double write_peak = 0.0;
      if (gpu) {
        // The device's write bandwidth, measured: a memset of the same bytes.
        Measurement f = base(info, "kron_fuse", name, Precision::Exact);
        f.impl = "memset";
        f.sizes = {{"n", n}, {"d1", d1}, {"d2", d2}};
        f.work = bytes;
        f.work_unit = "B";
        f.note = "cudaMemsetAsync of the output: the write-bandwidth reference";
        f.ms = time_ms(
            ctx,
            [&](int) { fuse_fill_async(ctx, out.as<void>(), static_cast<std::size_t>(bytes)); },
            options.warmup, options.runs);
        std::vector<double> sorted = f.ms;
        std::sort(sorted.begin(), sorted.end());
        write_peak = bytes / (sorted[sorted.size() / 2] * 1e-3);
        results.push_back(std::move(f));
      }
      Measurement m = base(info, "kron_fuse", name, Precision::Exact);
      m.sizes = {{"n", n}, {"d1", d1}, {"d2", d2}};
      m.work = bytes;
      m.work_unit = "B";
      m.roofline = gpu ? "write" : "";
      m.roofline_work = bytes;
      m.roofline_peak = write_peak;
      m.note = "bytes written; roofline: the measured memset rate";
      m.ms = time_ms(
          ctx,
          [&](int run) {
            kron_fuse(ctx, {view(A.get(run), n, d1), view(B.get(run), n, d2)},
                      MatrixView<float>(out.as<float>(), n, d1 * d2, d1 * d2, mem));
          },
          options.warmup, options.runs);
      results.push_back(std::move(m));
    }
  }

  // ---------------------------------------------------------------- product_kernel_topk
  {
    const TopkCase c =
        full ? TopkCase{10000, 1000000, 10, 512, 768} : TopkCase{128, 20000, 10, 512, 768};
    const std::string name =
        "M" + std::to_string(c.M) + "_N" + std::to_string(c.N) + "_k" + std::to_string(c.k);
    if (wanted(options, "product_kernel_topk/" + name)) {
      Floats Q1(ctx, c.M * c.d1, 1, 5), Q2(ctx, c.M * c.d2, 1, 6), G1(ctx, c.N * c.d1, 1, 7),
          G2(ctx, c.N * c.d2, 1, 8);
      Output idx(ctx, static_cast<std::size_t>(c.M * c.k) * sizeof(std::int64_t)),
          sc(ctx, static_cast<std::size_t>(c.M * c.k) * sizeof(float));
      Measurement m = base(info, "product_kernel_topk", name, Precision::Exact);
      m.sizes = {{"M", c.M}, {"N", c.N}, {"k", c.k}, {"d1", c.d1}, {"d2", c.d2}};
      m.work = 2.0 * c.M * c.N * (c.d1 + c.d2);
      m.work_unit = "flop";
      m.roofline = "fp32";
      m.roofline_work = m.work;
      m.roofline_peak = peak_flop_per_s(info, Precision::Exact);
      m.note = "cosine sides, C = 1";
      ProductTopkOptions o;
      o.side1.kernel = o.side2.kernel = SideKernel::Cosine;
      o.C = 1.0;
      m.ms = time_ms(
          ctx,
          [&](int) {
            product_kernel_topk(
                ctx, view(Q1.get(0), c.M, c.d1), view(Q2.get(0), c.M, c.d2),
                view(G1.get(0), c.N, c.d1), view(G2.get(0), c.N, c.d2),
                MatrixView<std::int64_t>(idx.as<std::int64_t>(), c.M, c.k, c.k, mem),
                MatrixView<float>(sc.as<float>(), c.M, c.k, c.k, mem), o);
          },
          options.warmup, options.runs);
      results.push_back(std::move(m));
    }
  }

  // ---------------------------------------------------------------- tensor_sketch, rff_fuse
  {
    const SketchCase c =
        full ? SketchCase{100000, 512, 768, 3000} : SketchCase{128, 512, 768, 3000};
    const std::string name = "d512_l3000_n" + std::to_string(c.n);
    const int sets = sets_for(4.0 * c.n * (c.d1 + c.d2));
    Floats A(ctx, c.n * c.d1, sets, 9), B(ctx, c.n * c.d2, sets, 10);
    Output out(ctx, static_cast<std::size_t>(c.n * c.l) * sizeof(float));
    if (wanted(options, "tensor_sketch/" + name)) {
      Measurement m = base(info, "tensor_sketch", name, Precision::Exact);
      m.sizes = {{"n", c.n}, {"d1", c.d1}, {"d2", c.d2}, {"l", c.l}};
      m.work = double(c.n);
      m.work_unit = "rows";
      TensorSketchOptions o;
      o.seed = 11;
      m.ms = time_ms(
          ctx,
          [&](int run) {
            tensor_sketch(ctx, view(A.get(run), c.n, c.d1), view(B.get(run), c.n, c.d2),
                          MatrixView<float>(out.as<float>(), c.n, c.l, c.l, mem), o);
          },
          options.warmup, options.runs);
      results.push_back(std::move(m));
    }
    if (wanted(options, "rff_fuse/" + name)) {
      Measurement m = base(info, "rff_fuse", name, Precision::Exact);
      m.sizes = {{"n", c.n}, {"d1", c.d1}, {"d2", c.d2}, {"l", c.l}};
      m.work = 2.0 * c.n * (c.l / 2) * (c.d1 + c.d2);
      m.work_unit = "flop";
      m.roofline = "fp32";
      m.roofline_work = m.work;
      m.roofline_peak = peak_flop_per_s(info, Precision::Exact);
      m.note = "l = 2r features (cos, sin)";
      RffOptions o;
      o.sigmas = {1.0, 1.0};
      o.seed = 12;
      m.ms = time_ms(
          ctx,
          [&](int run) {
            rff_fuse(ctx, {view(A.get(run), c.n, c.d1), view(B.get(run), c.n, c.d2)},
                     MatrixView<float>(out.as<float>(), c.n, c.l, c.l, mem), o);
          },
          options.warmup, options.runs);
      results.push_back(std::move(m));
    }
  }
  return results;
}

}  // namespace kfuse::bench
