// Brute-force mixture-of-experts results in double, written independently of the
// library: sorting for the router, a per-expert sweep over the slots for the plan,
// and per-token loops over the chosen experts for everything else. The tests' oracle.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kfuse/moe.hpp"

namespace kfuse::test {

using std::int64_t;

// A dense double matrix.
struct RefMat {
  std::vector<double> v;
  int64_t rows = 0, cols = 0;
  RefMat() = default;
  RefMat(int64_t r, int64_t c) : v(static_cast<std::size_t>(r * c), 0.0), rows(r), cols(c) {}
  double& operator()(int64_t i, int64_t j) { return v[i * cols + j]; }
  double operator()(int64_t i, int64_t j) const { return v[i * cols + j]; }
  const double* row(int64_t i) const { return v.data() + i * cols; }
};

// ------------------------------------------------------------------ router

struct RefRouting {
  std::vector<std::int32_t> ids;  // [T x k]
  std::vector<double> gates;      // [T x k]
};

// Sorts each row's experts by (logit descending, NaN last, index ascending).
inline RefRouting ref_router(const std::vector<double>& logits, int64_t T, int64_t E, int64_t k,
                             RouterMode mode, bool renormalize) {
  RefRouting out;
  out.ids.resize(static_cast<std::size_t>(T * k));
  out.gates.resize(static_cast<std::size_t>(T * k));
  for (int64_t t = 0; t < T; ++t) {
    const double* l = logits.data() + t * E;
    std::vector<int64_t> order(static_cast<std::size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      if (std::isnan(l[a]) || std::isnan(l[b])) return !std::isnan(l[a]) && std::isnan(l[b]);
      return l[a] > l[b];
    });
    const double m = l[order[0]];
    double sum_all = 0.0, sum_k = 0.0;
    for (int64_t e = 0; e < E; ++e)
      sum_all += std::exp(l[e] - m);
    for (int64_t j = 0; j < k; ++j)
      sum_k += std::exp(l[order[j]] - m);
    const bool over_k = mode == RouterMode::TopKSoftmax || renormalize;
    for (int64_t j = 0; j < k; ++j) {
      out.ids[t * k + j] = static_cast<std::int32_t>(order[j]);
      out.gates[t * k + j] = std::exp(l[order[j]] - m) / (over_k ? sum_k : sum_all);
    }
  }
  return out;
}

// ------------------------------------------------------------------ plan

struct RefPlan {
  int64_t T = 0, k = 0, E = 0;
  std::vector<int64_t> counts, offsets;  // offsets [E + 1]
  std::vector<int64_t> slot_row;         // -1: dropped
  std::vector<int64_t> row_slot;         // [offsets[E]], -1: padding
  int64_t token(int64_t slot) const { return slot / k; }
};

// For each expert in turn, the slots routed to it in increasing order: the first
// `capacity` kept, the range padded to pad_to.
inline RefPlan ref_plan(const std::vector<std::int32_t>& ids, int64_t T, int64_t k, int64_t E,
                        int64_t pad_to, int64_t capacity) {
  RefPlan p;
  p.T = T;
  p.k = k;
  p.E = E;
  p.slot_row.assign(static_cast<std::size_t>(T * k), -1);
  p.offsets.push_back(0);
  for (int64_t e = 0; e < E; ++e) {
    int64_t kept = 0;
    for (int64_t s = 0; s < T * k; ++s) {
      if (ids[s] != e) continue;
      if (capacity > 0 && kept == capacity) continue;
      p.slot_row[s] = p.offsets.back() + kept;
      p.row_slot.push_back(s);
      ++kept;
    }
    p.counts.push_back(kept);
    const int64_t padded = (kept + pad_to - 1) / pad_to * pad_to;
    for (int64_t r = kept; r < padded; ++r)
      p.row_slot.push_back(-1);
    p.offsets.push_back(p.offsets.back() + padded);
  }
  return p;
}

inline int64_t expert_of_row(const RefPlan& p, int64_t r) {
  int64_t e = 0;
  while (!(r >= p.offsets[e] && r < p.offsets[e + 1]))
    ++e;
  return e;
}

// ------------------------------------------------------------------ products

// Expert e's block of W [E*K x N] (or, transposed, of W [E*N x K]) as a K x N matrix.
inline RefMat ref_expert_weight(const RefMat& W, int64_t e, int64_t K, int64_t N, bool trans) {
  RefMat B(K, N);
  for (int64_t p = 0; p < K; ++p)
    for (int64_t j = 0; j < N; ++j)
      B(p, j) = trans ? W(e * N + j, p) : W(e * K + p, j);
  return B;
}

// x [K] * B [K x N]
inline std::vector<double> ref_row_times(const double* x, const RefMat& B) {
  std::vector<double> y(static_cast<std::size_t>(B.cols), 0.0);
  for (int64_t p = 0; p < B.rows; ++p)
    for (int64_t j = 0; j < B.cols; ++j)
      y[j] += x[p] * B(p, j);
  return y;
}

inline double ref_silu(double x) {
  return x / (1.0 + std::exp(-x));
}
inline double ref_silu_grad(double x) {
  const double s = 1.0 / (1.0 + std::exp(-x));
  return s + x * s * (1.0 - s);
}

// The SwiGLU expert MLP and its gradients, token by token over the kept slots.
struct RefMlp {
  RefMat Y, dX, dgates, dW1, dW3, dW2;
};

inline RefMlp ref_mlp(const RefPlan& p, const std::vector<std::int32_t>& ids, const RefMat& X,
                      const std::vector<double>& gates, const RefMat& W1, const RefMat& W3,
                      const RefMat& W2, const RefMat& dY) {
  const int64_t T = p.T, k = p.k, E = p.E, H = X.cols, F = W1.cols;
  RefMlp out{RefMat(T, H),     RefMat(T, H),     RefMat(T, k),
             RefMat(E * H, F), RefMat(E * H, F), RefMat(E * F, H)};
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t s = t * k + j;
      if (p.slot_row[s] < 0) continue;  // dropped
      const int64_t e = ids[s];
      const double g = gates[s];
      const RefMat B1 = ref_expert_weight(W1, e, H, F, false),
                   B3 = ref_expert_weight(W3, e, H, F, false),
                   B2 = ref_expert_weight(W2, e, F, H, false);
      const auto h1 = ref_row_times(X.row(t), B1), h3 = ref_row_times(X.row(t), B3);
      std::vector<double> a(static_cast<std::size_t>(F));
      for (int64_t f = 0; f < F; ++f)
        a[f] = ref_silu(h1[f]) * h3[f];
      const auto z = ref_row_times(a.data(), B2);
      double dg = 0.0;
      for (int64_t c = 0; c < H; ++c) {
        out.Y(t, c) += g * z[c];
        dg += z[c] * dY(t, c);
      }
      out.dgates(t, j) = dg;
      // dz = g dY; da = dz W2^T; dW2 += a^T dz.
      std::vector<double> da(static_cast<std::size_t>(F), 0.0);
      for (int64_t f = 0; f < F; ++f)
        for (int64_t c = 0; c < H; ++c) {
          da[f] += g * dY(t, c) * B2(f, c);
          out.dW2(e * F + f, c) += a[f] * g * dY(t, c);
        }
      for (int64_t f = 0; f < F; ++f) {
        const double dh1 = da[f] * h3[f] * ref_silu_grad(h1[f]);
        const double dh3 = da[f] * ref_silu(h1[f]);
        for (int64_t c = 0; c < H; ++c) {
          out.dW1(e * H + c, f) += X(t, c) * dh1;
          out.dW3(e * H + c, f) += X(t, c) * dh3;
          out.dX(t, c) += dh1 * B1(c, f) + dh3 * B3(c, f);
        }
      }
    }
  return out;
}

}  // namespace kfuse::test
