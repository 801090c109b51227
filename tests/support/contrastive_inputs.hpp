// Inputs of the contrastive tests: embeddings of every element type, their
// double copies for the reference, labels, and relative errors of typed outputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "contrastive_reference.hpp"
#include "element_values.hpp"
#include "kfuse/view.hpp"

namespace kfuse::test {

// rows x d embeddings with leading dimension ld (padding NaN), entries uniform
// in [-1, 1] / sqrt(d): dot products stay O(1) for every d.
template <class T>
std::vector<T> embeddings(std::int64_t rows, std::int64_t d, std::int64_t ld, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<T> v(static_cast<std::size_t>(rows * ld), nan_of<T>());
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      v[i * ld + k] = from_double<T>(dist(gen) * scale);
  return v;
}

template <class T>
RefMatrix to_ref(const std::vector<T>& v, std::int64_t rows, std::int64_t d, std::int64_t ld) {
  RefMatrix m{std::vector<double>(static_cast<std::size_t>(rows * d)), rows, d};
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      m.v[i * d + k] = as_double(v[i * ld + k]);
  return m;
}

inline std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), std::mt19937_64(seed));
  return p;
}

// n labels uniform in [lo, hi).
inline std::vector<std::int64_t> random_labels(std::int64_t n, std::int64_t lo, std::int64_t hi,
                                               std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<std::int64_t> dist(lo, hi - 1);
  std::vector<std::int64_t> l(static_cast<std::size_t>(n));
  for (auto& x : l)
    x = dist(gen);
  return l;
}

// |out - ref| / |ref| over rows x cols of a row-major output with leading
// dimension ld; any NaN or inf gives +inf; a zero reference gives |out|.
template <class T>
double typed_error(const std::vector<T>& out, const std::vector<double>& ref, std::int64_t rows,
                   std::int64_t cols, std::int64_t ld) {
  double num = 0.0, den = 0.0;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t k = 0; k < cols; ++k) {
      const double o = as_double(out[i * ld + k]);
      const double r = ref[i * cols + k];
      if (!std::isfinite(o)) return std::numeric_limits<double>::infinity();
      num += (o - r) * (o - r);
      den += r * r;
    }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// |out - ref|_2 over dense values; any NaN or inf gives +inf.
template <class T>
double absolute_error(const std::vector<T>& out, const std::vector<double>& ref) {
  double num = 0.0;
  for (std::size_t k = 0; k < ref.size(); ++k) {
    const double o = as_double(out[k]);
    if (!std::isfinite(o)) return std::numeric_limits<double>::infinity();
    num += (o - ref[k]) * (o - ref[k]);
  }
  return std::sqrt(num);
}

// The padding of a row-major output (columns cols..ld) still holds NaN.
template <class T>
bool padding_untouched(const std::vector<T>& out, std::int64_t rows, std::int64_t cols,
                       std::int64_t ld) {
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t k = cols; k < ld; ++k)
      if (!is_nan(out[i * ld + k])) return false;
  return true;
}

}  // namespace kfuse::test
