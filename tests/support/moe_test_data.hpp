// Test data for the mixture-of-experts family: matrices in float or bf16 with the
// double values they hold, routings (ids and gates) of several shapes, and plans
// built on the backend under test.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kfuse/moe.hpp"
#include "support/element_values.hpp"
#include "support/moe_reference.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {

template <class T>
const char* type_name() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}
// Relative tolerance against a double reference: fp32 arithmetic, or bf16 storage of
// every intermediate (a few roundings of 2^-9 each).
// fp32, re-derived for the CPU path's BLAS products (fp32 accumulation, as on the
// GPU; the CPU path summed in double before): a product entry over K terms carries
// at most K u |a||b| of rounding (u = 2^-24), in practice (independent errors of
// either sign, inputs of random sign) about sqrt(K) u relative to the entry's scale;
// the tests' contractions have K <= 300 (H, F <= 128; up to ~300 rows in one
// expert's weight gradient), so the norm-wise error is a few 1e-7 (measured at
// most 4e-7 over test_moe's fp32 GEMM and MLP checks), and 1e-5 leaves a factor > 20. The bf16
// bound is unchanged: it is set by the 2^-9 roundings of the stored intermediates, not by the
// accumulation.
template <class T>
double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1.5e-2;
}

// Leading dimensions: padded past cols, rows 16-byte aligned for float and bf16.
inline std::int64_t aligned_ld(std::int64_t cols) {
  return (cols + 7) / 8 * 8 + 8;
}

// A [rows x cols] matrix of T, rows `ld` apart; padding entries hold NaN so that a
// kernel that reads them poisons its output.
template <class T>
struct Mat {
  std::int64_t rows = 0, cols = 0, ld = 0;
  std::vector<T> host;
  RefMat ref() const {
    RefMat m(rows, cols);
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j)
        m(i, j) = as_double(host[i * ld + j]);
    return m;
  }
};
template <class T>
Mat<T> nan_mat(std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return {rows, cols, ld, std::vector<T>(static_cast<std::size_t>(rows * ld), nan_of<T>())};
}
template <class T>
Mat<T> random_mat(std::int64_t rows, std::int64_t cols, std::int64_t ld, std::uint64_t seed,
                  double lo = -1.0, double hi = 1.0) {
  Mat<T> m = nan_mat<T>(rows, cols, ld);
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      m.host[i * ld + j] = from_double<T>(dist(gen));
  return m;
}
template <class T>
RefMat values_of(const std::vector<T>& v, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  RefMat m(rows, cols);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      m(i, j) = as_double(v[i * ld + j]);
  return m;
}

// |got - ref| / |ref| over the rows listed (all when empty); inf on NaN.
inline double rel_err(const RefMat& got, const RefMat& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.v.size(); ++i) {
    if (!std::isfinite(got.v[i])) return std::numeric_limits<double>::infinity();
    num += (got.v[i] - ref.v[i]) * (got.v[i] - ref.v[i]);
    den += ref.v[i] * ref.v[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Entries never to be written (row padding, rows past offsets[E]) still hold NaN.
template <class T>
bool untouched(const std::vector<T>& v, std::int64_t rows, std::int64_t cols, std::int64_t ld,
               std::int64_t first_untouched_row) {
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = (i < first_untouched_row ? cols : 0); j < ld; ++j)
      if (!is_nan(v[i * ld + j])) return false;
  return true;
}

// ------------------------------------------------------------------ routings

enum class IdsKind {
  Random,     // k distinct random experts per token
  OneExpert,  // token t picks experts 0, 1, ..., k-1: the first k experts get everything
  Counts,     // k = 1; expert e gets counts[e] tokens, interleaved in token order
};

struct Case {
  const char* name;
  std::int64_t T, H, F, E, k;
  std::int64_t pad_to = 1, capacity = 0;
  IdsKind ids = IdsKind::Random;
  std::vector<std::int64_t> counts = {};
};

inline std::string case_name(const Case& c) {
  return c.name;
}
inline void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

struct Routing {
  std::int64_t T = 0, k = 0, E = 0;
  std::vector<std::int32_t> ids;
  std::vector<float> gates;     // [T x k], dense
  std::vector<double> gates_d;  // their values
};

inline Routing make_routing(const Case& c, std::uint64_t seed) {
  Routing r;
  r.T = c.T;
  r.k = c.k;
  r.E = c.E;
  std::mt19937_64 gen(seed);
  if (c.ids == IdsKind::Counts) {
    std::vector<std::int32_t> ids;
    for (std::size_t e = 0; e < c.counts.size(); ++e)
      ids.insert(ids.end(), static_cast<std::size_t>(c.counts[e]), static_cast<std::int32_t>(e));
    std::shuffle(ids.begin(), ids.end(), gen);
    r.ids = ids;
  } else {
    for (std::int64_t t = 0; t < c.T; ++t) {
      std::vector<std::int32_t> experts(static_cast<std::size_t>(c.E));
      std::iota(experts.begin(), experts.end(), 0);
      if (c.ids == IdsKind::Random) std::shuffle(experts.begin(), experts.end(), gen);
      r.ids.insert(r.ids.end(), experts.begin(), experts.begin() + c.k);
    }
  }
  std::uniform_real_distribution<double> dist(0.05, 1.0);
  for (std::int64_t s = 0; s < c.T * c.k; ++s) {
    r.gates.push_back(static_cast<float>(dist(gen)));
    r.gates_d.push_back(r.gates.back());
  }
  return r;
}

// A plan on the backend, built by moe_plan from the routing's ids.
struct BackendPlan {
  MoePlanLayout layout;
  TestArray<std::int32_t> storage;
  MoePlan plan;
};

inline BackendPlan build_plan(Context& ctx, Backend backend, const Routing& r,
                              const MoePlanOptions& o) {
  const MoePlanLayout layout = moe_plan_layout(r.T, r.k, r.E, o);
  TestArray<std::int32_t> storage(
      backend,
      std::vector<std::int32_t>(static_cast<std::size_t>(layout.storage_size()), 0x5a5a5a5a));
  const MoePlan plan = moe_plan_views(layout, storage.data(), storage.memory());
  TestArray<std::int32_t> ids(backend, r.ids);
  moe_plan(ctx, ids.cmatrix(r.T, r.k), plan);
  ctx.synchronize();
  return {layout, std::move(storage), plan};
}

inline MoePlanOptions options_of(const Case& c) {
  MoePlanOptions o;
  o.pad_to = c.pad_to;
  o.capacity = c.capacity;
  return o;
}

}  // namespace kfuse::test
