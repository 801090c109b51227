// Fuzz cases for the Gaussian kernel family (kfuse_gauss.h).
#include <cmath>
#include <memory>

#include "fuzz_core.hpp"

namespace fuzz {
namespace {

bool positive_finite(double v) {
  return std::isfinite(v) && v > 0;
}
bool any_finite(double v) {
  return std::isfinite(v);
}

// Points X [M x d] and Y [N x d], f32 or f64, small enough for the CPU path; one case in
// eight at d >= 512, where the CPU's fp32 sums take their GEMM route.
struct Points {
  int dtype;
  std::int64_t M, N, d;
};
Points points(Builder& b) {
  Rng& r = b.rng();
  const int dtype = r.chance(0.5) ? KFUSE_F32 : KFUSE_F64;
  const std::int64_t M = b.extent(0, 70), N = b.extent(0, 70);
  const std::int64_t d = r.chance(0.125) ? b.extent(512, 640) : b.extent(1, 40);
  return {dtype, M, N, d};
}

template <class O>
void sigma_and_precision(Builder& b, O& o) {
  b.c().takes_options();
  o.sigma = b.finite(0.2, 3.0);
  b.double_option("sigma", &o.sigma, positive_finite);
  b.enum_option("precision", &o.precision, 3);
}

void matvec(Builder& b) {
  Case& c = b.c();
  const Points p = points(b);
  const std::int64_t R = b.extent(1, 5, false);
  const int X = b.matrix("X", Role::In, p.dtype, p.M, p.d);
  const int Y = b.matrix("Y", Role::In, p.dtype, p.N, p.d);
  const int V = b.matrix("V", Role::In, p.dtype, p.N, R);
  const int out = b.matrix("out", Role::Out, p.dtype, p.M, R);
  auto o = std::make_shared<kfuse_gauss_matvec_options_t>(kfuse_gauss_matvec_options_default());
  sigma_and_precision(b, *o);
  b.double_option("alpha", &o->alpha, any_finite);
  b.double_option("beta", &o->beta, any_finite);
  c.names.insert(c.names.end(), {"X", "Y", "V", "out", "sigma", "alpha", "beta", "precision"});
  c.call = [&c, X, Y, V, out, o] {
    return kfuse_gauss_matvec(c.ctx, c.M(X), c.M(Y), c.M(V), c.M(out), c.opt(*o));
  };
}

void kde(Builder& b) {
  Case& c = b.c();
  const Points p = points(b);
  const int Q = b.matrix("queries", Role::In, p.dtype, p.M, p.d);
  const int Y = b.matrix("Y", Role::In, p.dtype, p.N, p.d);
  const int W = b.vector("weights", Role::In, p.dtype, p.N);
  c.args[W].optional = true;
  c.args[Y].free_rows = true;  // tied only to the optional weights
  const int out = b.vector("out", Role::Out, p.dtype, p.M);
  auto o = std::make_shared<kfuse_kde_options_t>(kfuse_kde_options_default());
  sigma_and_precision(b, *o);
  o->log = b.rng().chance(0.5);
  c.names.insert(c.names.end(), {"queries", "Y", "weights", "out", "sigma", "precision"});
  c.call = [&c, Q, Y, W, out, o] {
    return kfuse_kde(c.ctx, c.M(Q), c.M(Y), c.V(W), c.V(out), c.opt(*o));
  };
}

void grad_x(Builder& b) {
  Case& c = b.c();
  const Points p = points(b);
  const std::int64_t R = b.extent(1, 5, false);
  const int X = b.matrix("X", Role::In, p.dtype, p.M, p.d);
  const int Y = b.matrix("Y", Role::In, p.dtype, p.N, p.d);
  const int V = b.matrix("V", Role::In, p.dtype, p.N, R);
  const int U = b.matrix("U", Role::In, p.dtype, p.M, R);
  const int G = b.matrix("grad", Role::Out, p.dtype, p.M, p.d);
  auto o = std::make_shared<kfuse_gauss_grad_options_t>(kfuse_gauss_grad_options_default());
  sigma_and_precision(b, *o);
  c.names.insert(c.names.end(), {"X", "Y", "V", "U", "grad", "sigma", "precision"});
  c.call = [&c, X, Y, V, U, G, o] {
    return kfuse_gauss_matvec_grad_x(c.ctx, c.M(X), c.M(Y), c.M(V), c.M(U), c.M(G), c.opt(*o));
  };
}

void mean_shift(Builder& b) {
  Case& c = b.c();
  const Points p = points(b);
  const int X = b.matrix("X", Role::In, p.dtype, p.M, p.d);
  const int Y = b.matrix("Y", Role::In, p.dtype, p.N, p.d);
  const int W = b.vector("weights", Role::In, p.dtype, p.N);
  c.args[W].optional = true;
  c.args[Y].free_rows = true;  // tied only to the optional weights
  const int out = b.matrix("out", Role::Out, p.dtype, p.M, p.d);
  auto o = std::make_shared<kfuse_gauss_grad_options_t>(kfuse_gauss_grad_options_default());
  sigma_and_precision(b, *o);
  c.names.insert(c.names.end(), {"X", "Y", "weights", "out", "sigma", "precision"});
  c.call = [&c, X, Y, W, out, o] {
    return kfuse_mean_shift_step(c.ctx, c.M(X), c.M(Y), c.V(W), c.M(out), c.opt(*o));
  };
}

void mmd2(Builder& b) {
  Case& c = b.c();
  const Points p = points(b);
  const int X = b.matrix("X", Role::In, p.dtype, p.M, p.d);
  const int Y = b.matrix("Y", Role::In, p.dtype, p.N, p.d);
  const int out = b.vector("out", Role::Out, p.dtype, 1);
  c.args[X].free_rows = c.args[Y].free_rows = true;
  auto o = std::make_shared<kfuse_mmd2_options_t>(kfuse_mmd2_options_default());
  sigma_and_precision(b, *o);
  o->unbiased = b.rng().chance(0.5);
  c.names.insert(c.names.end(), {"X", "Y", "out", "sigma", "precision"});
  c.call = [&c, X, Y, out, o] { return kfuse_mmd2(c.ctx, c.M(X), c.M(Y), c.V(out), c.opt(*o)); };
}

}  // namespace

std::vector<EntryPoint> gauss_entry_points() {
  return {{"kfuse_gauss_matvec", matvec},
          {"kfuse_kde", kde},
          {"kfuse_gauss_matvec_grad_x", grad_x},
          {"kfuse_mean_shift_step", mean_shift},
          {"kfuse_mmd2", mmd2}};
}

}  // namespace fuzz
