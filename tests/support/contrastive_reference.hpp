// Brute-force contrastive losses in double, written from the definitions with the
// Na x Nb logits materialised (independently of the library's tiling and of its
// shared math): the tests' oracle.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kfuse::test {

// A dense [rows x d] double matrix.
struct RefMatrix {
  std::vector<double> v;
  std::int64_t rows = 0, d = 0;
  double at(std::int64_t i, std::int64_t k) const { return v[i * d + k]; }
};

// Which way(s) the CLIP cross-entropy runs (mirrors ClipDirection).
enum class RefDirection { Both, AtoB, BtoA };

struct RefResult {
  double loss = 0.0;
  std::vector<double> row_loss, col_loss, lse_row, lse_col;  // empty where not defined
  std::vector<double> dA, dB;                                // [Na x d], [Nb x d]
  double dt = 0.0, db = 0.0;
  // Scales for the scalar gradients' tolerances: the sizes of the terms whose sum
  // they are, sum_ij g_ij |S_ij - b| and sum_ij g_ij, where g_ij bounds |dL/dS_ij| by
  // the sizes of its own parts (softmax and target cancel: with one class dL/dS is
  // exactly 0 while its parts are 1).
  double dt_scale = 0.0, db_scale = 0.0;
  // Likewise for dA and dB: the 2-norms of tau sum_j g_ij |B_j| and tau sum_i g_ij |A_i|
  // (identical rows make dA exactly 0 while its terms are not).
  double dA_scale = 0.0, dB_scale = 0.0;
};

inline std::vector<double> ref_logits(const RefMatrix& A, const RefMatrix& B, double t, double b) {
  const double tau = std::exp(t);
  std::vector<double> S(static_cast<std::size_t>(A.rows * B.rows));
  for (std::int64_t i = 0; i < A.rows; ++i)
    for (std::int64_t j = 0; j < B.rows; ++j) {
      double dot = 0.0;
      for (std::int64_t k = 0; k < A.d; ++k)
        dot += A.at(i, k) * B.at(j, k);
      S[i * B.rows + j] = tau * dot + b;
    }
  return S;
}

// log sum_k exp(x_k) over n values with stride.
inline double ref_lse(const double* x, std::int64_t n, std::int64_t stride) {
  double m = -INFINITY;
  for (std::int64_t k = 0; k < n; ++k)
    m = std::max(m, x[k * stride]);
  double s = 0.0;
  for (std::int64_t k = 0; k < n; ++k)
    s += std::exp(x[k * stride] - m);
  return m + std::log(s);
}

// dA = tau G B, dB = tau G^T A, dt = sum G (S - b), db = sum G.
inline void ref_backprop(const RefMatrix& A, const RefMatrix& B, const std::vector<double>& S,
                         const std::vector<double>& G, const std::vector<double>& G_parts, double t,
                         double b, RefResult& r) {
  const double tau = std::exp(t);
  const std::int64_t na = A.rows, nb = B.rows, d = A.d;
  r.dA.assign(static_cast<std::size_t>(na * d), 0.0);
  r.dB.assign(static_cast<std::size_t>(nb * d), 0.0);
  std::vector<double> a_parts(r.dA.size(), 0.0), b_parts(r.dB.size(), 0.0);
  for (std::int64_t i = 0; i < na; ++i)
    for (std::int64_t j = 0; j < nb; ++j) {
      const double g = G[i * nb + j], gp = G_parts[i * nb + j];
      for (std::int64_t k = 0; k < d; ++k) {
        r.dA[i * d + k] += tau * g * B.at(j, k);
        r.dB[j * d + k] += tau * g * A.at(i, k);
        a_parts[i * d + k] += tau * gp * std::fabs(B.at(j, k));
        b_parts[j * d + k] += tau * gp * std::fabs(A.at(i, k));
      }
      r.dt += g * (S[i * nb + j] - b);
      r.db += g;
      r.dt_scale += G_parts[i * nb + j] * std::fabs(S[i * nb + j] - b);
      r.db_scale += G_parts[i * nb + j];
    }
  for (double v : a_parts)
    r.dA_scale += v * v;
  for (double v : b_parts)
    r.dB_scale += v * v;
  r.dA_scale = std::sqrt(r.dA_scale);
  r.dB_scale = std::sqrt(r.dB_scale);
}

// CLIP. labels: empty (identity), else [Na] (Both, AtoB: row i's positive column)
// or [Nb] (BtoA: column j's positive row). eps: label smoothing; dL: upstream.
inline RefResult ref_clip(const RefMatrix& A, const RefMatrix& B,
                          const std::vector<std::int64_t>& labels, double t, double b,
                          RefDirection dir, double eps, double dL = 1.0) {
  const std::int64_t na = A.rows, nb = B.rows;
  const std::vector<double> S = ref_logits(A, B, t, b);
  // Y_ij = 1 for the positive pairs.
  std::vector<double> Y(static_cast<std::size_t>(na * nb), 0.0);
  if (dir == RefDirection::BtoA) {
    for (std::int64_t j = 0; j < nb; ++j)
      Y[(labels.empty() ? j : labels[j]) * nb + j] = 1.0;
  } else {
    for (std::int64_t i = 0; i < na; ++i)
      Y[i * nb + (labels.empty() ? i : labels[i])] = 1.0;
  }
  const double wr = dir == RefDirection::Both ? 0.5 : (dir == RefDirection::AtoB ? 1.0 : 0.0);
  const double wc = dir == RefDirection::Both ? 0.5 : (dir == RefDirection::BtoA ? 1.0 : 0.0);
  RefResult r;
  std::vector<double> G(static_cast<std::size_t>(na * nb), 0.0), G_parts(G.size(), 0.0);
  if (wr > 0) {
    r.row_loss.resize(na);
    r.lse_row.resize(na);
    for (std::int64_t i = 0; i < na; ++i) {
      const double* s = S.data() + i * nb;
      const double lse = ref_lse(s, nb, 1);
      double loss = lse;
      for (std::int64_t j = 0; j < nb; ++j) {
        const double target = (1.0 - eps) * Y[i * nb + j] + eps / double(nb);
        loss -= target * s[j];
        G[i * nb + j] += dL * wr / double(na) * (std::exp(s[j] - lse) - target);
        G_parts[i * nb + j] += std::fabs(dL * wr / double(na)) * (std::exp(s[j] - lse) + target);
      }
      r.lse_row[i] = lse;
      r.row_loss[i] = loss;
      r.loss += wr / double(na) * loss;
    }
  }
  if (wc > 0) {
    r.col_loss.resize(nb);
    r.lse_col.resize(nb);
    for (std::int64_t j = 0; j < nb; ++j) {
      const double lse = ref_lse(S.data() + j, na, nb);
      double loss = lse;
      for (std::int64_t i = 0; i < na; ++i) {
        const double target = (1.0 - eps) * Y[i * nb + j] + eps / double(na);
        loss -= target * S[i * nb + j];
        G[i * nb + j] += dL * wc / double(nb) * (std::exp(S[i * nb + j] - lse) - target);
        G_parts[i * nb + j] +=
            std::fabs(dL * wc / double(nb)) * (std::exp(S[i * nb + j] - lse) + target);
      }
      r.lse_col[j] = lse;
      r.col_loss[j] = loss;
      r.loss += wc / double(nb) * loss;
    }
  }
  ref_backprop(A, B, S, G, G_parts, t, b, r);
  return r;
}

// SigLIP: L = (1/Na) sum_ij log(1 + exp(-z_ij S_ij)), z = +1 where labels[i] == j
// (labels empty: i == j; a label of -1: no positive in that row).
inline RefResult ref_siglip(const RefMatrix& A, const RefMatrix& B,
                            const std::vector<std::int64_t>& labels, double t, double b,
                            double dL = 1.0) {
  const std::int64_t na = A.rows, nb = B.rows;
  const std::vector<double> S = ref_logits(A, B, t, b);
  RefResult r;
  r.row_loss.assign(static_cast<std::size_t>(na), 0.0);
  std::vector<double> G(static_cast<std::size_t>(na * nb));
  for (std::int64_t i = 0; i < na; ++i)
    for (std::int64_t j = 0; j < nb; ++j) {
      const bool pos = labels.empty() ? i == j : labels[i] == j;
      const double x = (pos ? -1.0 : 1.0) * S[i * nb + j];  // -z S
      // log(1 + e^x), and its derivative e^x / (1 + e^x), in stable forms
      const double term = std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x)));
      const double sig = x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
      r.row_loss[i] += term;
      G[i * nb + j] = dL / double(na) * (pos ? -1.0 : 1.0) * sig;
    }
  for (double l : r.row_loss)
    r.loss += l / double(na);
  std::vector<double> G_parts(G.size());
  for (std::size_t k = 0; k < G.size(); ++k)
    G_parts[k] = std::fabs(G[k]);
  ref_backprop(A, B, S, G, G_parts, t, b, r);
  return r;
}

}  // namespace kfuse::test
