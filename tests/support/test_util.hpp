// Shared test vocabulary: backends as test parameters, seeded random inputs,
// relative errors, poisoned outputs, and checks on kfuse::Error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kfuse/context.hpp"
#include "kfuse/error.hpp"
#include "kfuse/precision.hpp"
#include "test_memory.hpp"

namespace kfuse::test {

// True in the emulation build (KFUSE_CUDA_EMULATION): Cuda contexts are an emulated
// device on the CPU, thousands of times slower than a GPU. The few cases too large
// for CI then run at a stated smaller size; a real GPU keeps the full size.
constexpr bool emulated() {
#ifdef KFUSE_TEST_EMULATED
  return true;
#else
  return false;
#endif
}

inline std::string backend_label(Backend b) {
  return b == Backend::Cuda ? "Cuda" : "Cpu";
}

// A context for the backend under test. On a machine without a usable device the
// Cuda instances skip, saying why.
#define KFUSE_CONTEXT_OR_SKIP(ctx, backend)                                           \
  if ((backend) == ::kfuse::Backend::Cuda && ::kfuse::cuda_device_count() == 0)       \
    GTEST_SKIP() << "no usable CUDA device (no driver, no GPU, or a CPU-only build)"; \
  ::kfuse::Context ctx =                                                              \
      (backend) == ::kfuse::Backend::Cuda ? ::kfuse::Context::cuda(0) : ::kfuse::Context::cpu()

template <class T>
std::vector<T> uniform(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v)
    x = static_cast<T>(dist(gen));
  return v;
}

template <class T>
std::vector<T> nan_filled(std::size_t n) {
  return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

// |out - ref|_2 / |ref|_2 over the entries (i, j < cols) of row-major matrices with
// leading dimensions; NaN or inf anywhere gives +inf. A zero reference gives the
// absolute norm.
template <class T>
double relative_error(const std::vector<T>& out, const std::vector<double>& ref, std::int64_t rows,
                      std::int64_t cols, std::int64_t ld_out, std::int64_t ld_ref) {
  double num = 0.0, den = 0.0;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) {
      const double o = static_cast<double>(out[i * ld_out + j]);
      const double r = ref[i * ld_ref + j];
      if (!std::isfinite(o)) return std::numeric_limits<double>::infinity();
      num += (o - r) * (o - r);
      den += r * r;
    }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <class T>
double relative_error(const std::vector<T>& out, const std::vector<double>& ref) {
  return relative_error(out, ref, 1, static_cast<std::int64_t>(ref.size()),
                        static_cast<std::int64_t>(ref.size()),
                        static_cast<std::int64_t>(ref.size()));
}

// Tolerances by element type and precision (DESIGN.md): fp32 ~1e-5, tf32 ~1e-3,
// bf16 ~1e-2, fp64 far tighter. The CPU path is always exact.
template <class T>
double tolerance(Backend backend, Precision precision) {
  if (std::is_same_v<T, double>) return 1e-12;
  if (backend == Backend::Cpu || precision == Precision::Exact) return 1e-5;
  return precision == Precision::TF32 ? 1e-3 : 1e-2;
}

// Expects body() to throw kfuse::Error with `status` and a message mentioning
// `needle` (the argument's name).
inline void expect_error(const std::function<void()>& body, Status status,
                         const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "expected kfuse::Error(" << status_name(status) << ") mentioning '" << needle
                  << "', nothing was thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' does not mention '" << needle << "'";
  }
}

// Bitwise equality (NaN payloads included): "nothing was written".
template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Runs `call`, expects the error, then checks that `out` still holds exactly
// `before` (its poison): "nothing written on failure".
template <class T>
void expect_rejected(const std::function<void()>& call, Status status, const std::string& needle,
                     Context& ctx, const TestArray<T>& out, const std::vector<T>& before) {
  expect_error(call, status, needle);
  ctx.synchronize();
  EXPECT_TRUE(bitwise_equal(out.values(), before)) << "output written on error (" << needle << ")";
}

}  // namespace kfuse::test
