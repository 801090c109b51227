// Brute-force references for the fusion family, in double, written from the
// definitions (not from the library's code): feature maps, Kronecker rows, inner
// products, product-kernel scores and their stable ranking.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "element_values.hpp"
#include "kfuse/fuse.hpp"
#include "kfuse/view.hpp"

namespace kfuse::test {

// A dense double matrix, row-major.
struct RefMatrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;
  double operator()(std::int64_t i, std::int64_t j) const { return v[i * cols + j]; }
  double& operator()(std::int64_t i, std::int64_t j) { return v[i * cols + j]; }
  std::vector<double> row(std::int64_t i) const {
    return std::vector<double>(v.begin() + i * cols, v.begin() + (i + 1) * cols);
  }
};

template <class T>
RefMatrix ref_from(const std::vector<T>& data, std::int64_t rows, std::int64_t cols,
                   std::int64_t ld) {
  RefMatrix m{rows, cols, std::vector<double>(static_cast<std::size_t>(rows * cols))};
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      m(i, j) = as_double(data[i * ld + j]);
  return m;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

// Linear or cosine feature map of one row.
inline std::vector<double> feature(std::vector<double> x, SideKernel kernel) {
  if (kernel == SideKernel::Cosine) {
    const double norm = std::sqrt(dot(x, x));
    for (auto& e : x)
      e = norm > 0 ? e / norm : 0.0;
  }
  return x;
}

inline std::vector<double> kron(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out;
  out.reserve(a.size() * b.size());
  for (double x : a)
    for (double y : b)
      out.push_back(x * y);
  return out;
}

// The kernel of one side between two rows (Rbf exact).
inline double side_kernel(const std::vector<double>& a, const std::vector<double>& b,
                          const FuseSide& side) {
  switch (side.kernel) {
    case SideKernel::Cosine: {
      const double na = std::sqrt(dot(a, a)), nb = std::sqrt(dot(b, b));
      return na > 0 && nb > 0 ? dot(a, b) / (na * nb) : 0.0;
    }
    case SideKernel::Rbf: {
      double d2 = 0.0;
      for (std::size_t k = 0; k < a.size(); ++k)
        d2 += (a[k] - b[k]) * (a[k] - b[k]);
      return std::exp(-d2 / (2.0 * side.sigma * side.sigma));
    }
    default:
      return dot(a, b);
  }
}

// Scores [M x N] of product_kernel_topk and, per query, the gallery indices in
// the documented order (score descending, ties by lower index).
struct RefTopk {
  RefMatrix scores;
  std::vector<std::vector<std::int64_t>> order;
};

inline RefTopk ref_topk(const RefMatrix& Q1, const RefMatrix& Q2, const RefMatrix& G1,
                        const RefMatrix& G2, const FuseSide& s1, const FuseSide& s2, double C) {
  RefTopk r;
  r.scores = RefMatrix{Q1.rows, G1.rows, std::vector<double>(Q1.rows * G1.rows)};
  r.order.resize(static_cast<std::size_t>(Q1.rows));
  for (std::int64_t i = 0; i < Q1.rows; ++i) {
    const auto q1 = Q1.row(i), q2 = Q2.row(i);
    for (std::int64_t j = 0; j < G1.rows; ++j)
      r.scores(i, j) = side_kernel(q1, G1.row(j), s1) * (C + side_kernel(q2, G2.row(j), s2));
    auto& o = r.order[i];
    o.resize(static_cast<std::size_t>(G1.rows));
    std::iota(o.begin(), o.end(), std::int64_t(0));
    std::stable_sort(o.begin(), o.end(), [&](std::int64_t a, std::int64_t b) {
      return r.scores(i, a) > r.scores(i, b);
    });
  }
  return r;
}

}  // namespace kfuse::test
