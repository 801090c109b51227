// Brute-force Gaussian-family results in double, written independently of the
// library (plain loops over materialised kernel values): the tests' oracle.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kfuse::test {

struct RefPoints {
  std::vector<double> v;  // dense [rows x d]
  std::int64_t rows = 0, d = 0;
  const double* row(std::int64_t i) const { return v.data() + i * d; }
};

// Dense double copy of a (possibly padded) row-major matrix.
template <class T>
RefPoints to_ref(const std::vector<T>& a, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  RefPoints p{std::vector<double>(static_cast<std::size_t>(rows * cols)), rows, cols};
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      p.v[i * cols + j] = static_cast<double>(a[i * ld + j]);
  return p;
}

inline double ref_sqdist(const double* a, const double* b, std::int64_t d) {
  double s = 0.0;
  for (std::int64_t k = 0; k < d; ++k)
    s += (a[k] - b[k]) * (a[k] - b[k]);
  return s;
}

inline double ref_kernel(const double* a, const double* b, std::int64_t d, double sigma) {
  return std::exp(-ref_sqdist(a, b, d) / (2.0 * sigma * sigma));
}

// K(X, Y) V as a dense [M x R] matrix.
inline std::vector<double> ref_matvec(const RefPoints& X, const RefPoints& Y, const RefPoints& V,
                                      double sigma) {
  std::vector<double> out(static_cast<std::size_t>(X.rows * V.d), 0.0);
  for (std::int64_t i = 0; i < X.rows; ++i)
    for (std::int64_t j = 0; j < Y.rows; ++j) {
      const double k = ref_kernel(X.row(i), Y.row(j), X.d, sigma);
      for (std::int64_t r = 0; r < V.d; ++r)
        out[i * V.d + r] += k * V.row(j)[r];
    }
  return out;
}

// log p(q) under the weighted Gaussian KDE of Y (weights empty: all ones).
inline std::vector<double> ref_log_kde(const RefPoints& Q, const RefPoints& Y,
                                       const std::vector<double>& w, double sigma) {
  const double pi = 3.14159265358979323846;
  double wsum = 0.0;
  for (std::int64_t j = 0; j < Y.rows; ++j)
    wsum += w.empty() ? 1.0 : w[j];
  std::vector<double> out(static_cast<std::size_t>(Q.rows));
  std::vector<double> s(static_cast<std::size_t>(Y.rows));
  for (std::int64_t i = 0; i < Q.rows; ++i) {
    double mx = -INFINITY;
    for (std::int64_t j = 0; j < Y.rows; ++j) {
      const double wj = w.empty() ? 1.0 : w[j];
      s[j] = wj > 0 ? std::log(wj) - ref_sqdist(Q.row(i), Y.row(j), Q.d) / (2 * sigma * sigma)
                    : -INFINITY;
      mx = std::max(mx, s[j]);
    }
    double acc = 0.0;
    for (std::int64_t j = 0; j < Y.rows; ++j)
      acc += std::exp(s[j] - mx);
    out[i] = mx + std::log(acc) - std::log(wsum) - 0.5 * Q.d * std::log(2 * pi * sigma * sigma);
  }
  return out;
}

// d/dX <U, K(X, Y) V>: (1/s^2) sum_j K_ij <u_i, v_j> (y_j - x_i), dense [M x d].
inline std::vector<double> ref_grad_x(const RefPoints& X, const RefPoints& Y, const RefPoints& V,
                                      const RefPoints& U, double sigma) {
  std::vector<double> g(static_cast<std::size_t>(X.rows * X.d), 0.0);
  for (std::int64_t i = 0; i < X.rows; ++i)
    for (std::int64_t j = 0; j < Y.rows; ++j) {
      double c = 0.0;
      for (std::int64_t r = 0; r < V.d; ++r)
        c += U.row(i)[r] * V.row(j)[r];
      const double k = ref_kernel(X.row(i), Y.row(j), X.d, sigma) * c / (sigma * sigma);
      for (std::int64_t t = 0; t < X.d; ++t)
        g[i * X.d + t] += k * (Y.row(j)[t] - X.row(i)[t]);
    }
  return g;
}

// sum_j w_j K_ij y_j / sum_j w_j K_ij, evaluated with a per-row shift so that far
// queries do not divide 0 by 0.
inline std::vector<double> ref_mean_shift(const RefPoints& X, const RefPoints& Y,
                                          const std::vector<double>& w, double sigma) {
  std::vector<double> out(static_cast<std::size_t>(X.rows * X.d), 0.0);
  std::vector<double> s(static_cast<std::size_t>(Y.rows));
  for (std::int64_t i = 0; i < X.rows; ++i) {
    double mx = -INFINITY;
    for (std::int64_t j = 0; j < Y.rows; ++j) {
      const double wj = w.empty() ? 1.0 : w[j];
      s[j] = wj > 0 ? std::log(wj) - ref_sqdist(X.row(i), Y.row(j), X.d) / (2 * sigma * sigma)
                    : -INFINITY;
      mx = std::max(mx, s[j]);
    }
    double den = 0.0;
    for (std::int64_t j = 0; j < Y.rows; ++j) {
      const double e = std::exp(s[j] - mx);
      den += e;
      for (std::int64_t t = 0; t < X.d; ++t)
        out[i * X.d + t] += e * Y.row(j)[t];
    }
    for (std::int64_t t = 0; t < X.d; ++t)
      out[i * X.d + t] /= den;
  }
  return out;
}

inline double ref_mmd2(const RefPoints& X, const RefPoints& Y, double sigma, bool unbiased) {
  auto mean_kernel = [&](const RefPoints& A, const RefPoints& B, bool self) {
    double s = 0.0;
    for (std::int64_t i = 0; i < A.rows; ++i)
      for (std::int64_t j = 0; j < B.rows; ++j)
        if (!(self && unbiased && i == j)) s += ref_kernel(A.row(i), B.row(j), A.d, sigma);
    const double pairs =
        self && unbiased ? double(A.rows) * double(A.rows - 1) : double(A.rows) * double(B.rows);
    return s / pairs;
  };
  return mean_kernel(X, X, true) + mean_kernel(Y, Y, true) - 2.0 * mean_kernel(X, Y, false);
}

}  // namespace kfuse::test
