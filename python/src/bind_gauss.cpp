// Bindings of the Gaussian kernel family (kfuse/gauss.hpp).
#include <nanobind/stl/optional.h>

#include <chrono>

#include "arrays.hpp"

namespace kfuse_py {

using namespace nb::literals;

namespace {

void gauss_matvec(const In& X, const In& Y, const In& V, const Out& out, double sigma, double alpha,
                  double beta, kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c("gauss_matvec", stream, torch_ws);
  dispatch_dtype<float, double>(dtype(X, c.op(), "X"), c.op(), "X", [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, "X"), y = c.matrix<const T>(Y, "Y"),
               v = c.matrix<const T>(V, "V");
    const auto o = c.matrix<T>(out, "out");
    kfuse::Context& ctx = c.context();
    kfuse::GaussMatvecOptions opt;
    opt.sigma = sigma;
    opt.alpha = alpha;
    opt.beta = beta;
    opt.precision = precision;
    nb::gil_scoped_release release;
    kfuse::gauss_matvec(ctx, x, y, v, o, opt);
  });
}

void kde(const In& queries, const In& Y, const OptIn& weights, const Out& out, double sigma,
         bool log, kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c("kde", stream, torch_ws);
  dispatch_dtype<float, double>(
      dtype(queries, c.op(), "queries"), c.op(), "queries", [&](auto tag) {
        using T = decltype(tag);
        const auto q = c.matrix<const T>(queries, "queries"), y = c.matrix<const T>(Y, "Y");
        const auto w = c.vector<const T>(weights, "weights");
        const auto o = c.vector<T>(out, "out");
        kfuse::Context& ctx = c.context();
        kfuse::KdeOptions opt;
        opt.sigma = sigma;
        opt.log = log;
        opt.precision = precision;
        nb::gil_scoped_release release;
        kfuse::kde(ctx, q, y, w, o, opt);
      });
}

void gauss_matvec_grad_x(const In& X, const In& Y, const In& V, const In& U, const Out& grad,
                         double sigma, kfuse::Precision precision, std::uintptr_t stream,
                         bool torch_ws) {
  Call c("gauss_matvec_grad_x", stream, torch_ws);
  dispatch_dtype<float, double>(dtype(X, c.op(), "X"), c.op(), "X", [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, "X"), y = c.matrix<const T>(Y, "Y"),
               v = c.matrix<const T>(V, "V"), u = c.matrix<const T>(U, "U");
    const auto g = c.matrix<T>(grad, "grad");
    kfuse::Context& ctx = c.context();
    kfuse::GaussGradOptions opt;
    opt.sigma = sigma;
    opt.precision = precision;
    nb::gil_scoped_release release;
    kfuse::gauss_matvec_grad_x(ctx, x, y, v, u, g, opt);
  });
}

void mean_shift_step(const In& X, const In& Y, const OptIn& weights, const Out& out, double sigma,
                     kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c("mean_shift_step", stream, torch_ws);
  dispatch_dtype<float, double>(dtype(X, c.op(), "X"), c.op(), "X", [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, "X"), y = c.matrix<const T>(Y, "Y");
    const auto w = c.vector<const T>(weights, "weights");
    const auto o = c.matrix<T>(out, "out");
    kfuse::Context& ctx = c.context();
    kfuse::GaussGradOptions opt;
    opt.sigma = sigma;
    opt.precision = precision;
    nb::gil_scoped_release release;
    kfuse::mean_shift_step(ctx, x, y, w, o, opt);
  });
}

void mmd2(const In& X, const In& Y, const Out& out, double sigma, bool unbiased,
          kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c("mmd2", stream, torch_ws);
  dispatch_dtype<float, double>(dtype(X, c.op(), "X"), c.op(), "X", [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, "X"), y = c.matrix<const T>(Y, "Y");
    const auto o = c.vector<T>(out, "out");
    kfuse::Context& ctx = c.context();
    kfuse::Mmd2Options opt;
    opt.sigma = sigma;
    opt.unbiased = unbiased;
    opt.precision = precision;
    nb::gil_scoped_release release;
    kfuse::mmd2(ctx, x, y, o, opt);
  });
}

// The C++ call's own cost, for bench/python_overhead.py: `iterations` calls of
// kfuse::gauss_matvec on views made once, timed in C++ (seconds in all).
double gauss_matvec_cpp_loop(const In& X, const In& Y, const In& V, const Out& out,
                             std::int64_t iterations) {
  Call c("gauss_matvec", 0, false);
  const auto x = c.matrix<const float>(X, "X"), y = c.matrix<const float>(Y, "Y"),
             v = c.matrix<const float>(V, "V");
  const auto o = c.matrix<float>(out, "out");
  kfuse::Context& ctx = c.context();
  nb::gil_scoped_release release;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < iterations; ++i)
    kfuse::gauss_matvec(ctx, x, y, v, o, {});
  ctx.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void register_gauss(nb::module_& m) {
  const kfuse::GaussMatvecOptions mv;
  const kfuse::KdeOptions kd;
  const kfuse::GaussGradOptions gr;
  const kfuse::Mmd2Options mm;
  {
    nb::dict d = defaults(m, "gauss_matvec");
    d["sigma"] = mv.sigma;
    d["alpha"] = mv.alpha;
    d["beta"] = mv.beta;
    d["precision"] = mv.precision;
    d = defaults(m, "kde");
    d["sigma"] = kd.sigma;
    d["log"] = kd.log;
    d["precision"] = kd.precision;
    d = defaults(m, "gauss_matvec_grad_x");
    d["sigma"] = gr.sigma;
    d["precision"] = gr.precision;
    d = defaults(m, "mean_shift_step");
    d["sigma"] = gr.sigma;
    d["precision"] = gr.precision;
    d = defaults(m, "mmd2");
    d["sigma"] = mm.sigma;
    d["unbiased"] = mm.unbiased;
    d["precision"] = mm.precision;
  }
  m.def("gauss_matvec", &gauss_matvec, "X"_a, "Y"_a, "V"_a, "out"_a, nb::kw_only(),
        "sigma"_a = mv.sigma, "alpha"_a = mv.alpha, "beta"_a = mv.beta,
        "precision"_a = mv.precision, "stream"_a = 0, "torch_workspace"_a = false);
  m.def("_gauss_matvec_cpp_loop", &gauss_matvec_cpp_loop, "X"_a, "Y"_a, "V"_a, "out"_a,
        "iterations"_a, "float32 only; the seconds that `iterations` C++ calls take");
  m.def("kde", &kde, "queries"_a, "Y"_a, "weights"_a.none(), "out"_a, nb::kw_only(),
        "sigma"_a = kd.sigma, "log"_a = kd.log, "precision"_a = kd.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("gauss_matvec_grad_x", &gauss_matvec_grad_x, "X"_a, "Y"_a, "V"_a, "U"_a, "grad"_a,
        nb::kw_only(), "sigma"_a = gr.sigma, "precision"_a = gr.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("mean_shift_step", &mean_shift_step, "X"_a, "Y"_a, "weights"_a.none(), "out"_a,
        nb::kw_only(), "sigma"_a = gr.sigma, "precision"_a = gr.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("mmd2", &mmd2, "X"_a, "Y"_a, "out"_a, nb::kw_only(), "sigma"_a = mm.sigma,
        "unbiased"_a = mm.unbiased, "precision"_a = mm.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
}

}  // namespace kfuse_py
