#include "fft.hpp"
#include "isa.hpp"

#include <cmath>
#include <utility>

namespace kfuse::cpu {

std::int64_t fft_size_at_least(std::int64_t n) {
  std::int64_t p = 1;
  while (p < n)
    p *= 2;
  return p;
}

FftPlan::FftPlan(std::int64_t size) : size_(size) {
  reversed_.resize(static_cast<std::size_t>(size));
  int bits = 0;
  while ((std::int64_t(1) << bits) < size)
    ++bits;
  for (std::int64_t t = 0; t < size; ++t) {
    std::int64_t r = 0;
    for (int b = 0; b < bits; ++b)
      r |= ((t >> b) & 1) << (bits - 1 - b);
    reversed_[t] = r;
  }
  // Twiddles from the angle directly (not by repeated rotation), each to within an
  // ulp or two: the transform's error then grows like log2(size) ulps.
  const double pi = std::acos(-1.0);
  cos_.resize(static_cast<std::size_t>(size / 2));
  sin_.resize(static_cast<std::size_t>(size / 2));
  for (std::int64_t j = 0; j < size / 2; ++j) {
    const double angle = -2.0 * pi * double(j) / double(size);
    cos_[j] = std::cos(angle);
    sin_[j] = std::sin(angle);
  }
}

namespace {

// The butterflies are compiled twice, for the build's baseline and (x86-64) for
// AVX2+FMA (one 256-bit vector per butterfly), chosen at run time.
inline __attribute__((always_inline)) void transform_lanes(std::int64_t size,
                                                           const std::int64_t* reversed,
                                                           const double* cos_table,
                                                           const double* sin_table, double* data,
                                                           bool inverse) {
  constexpr int L = kFftLanes;
  for (std::int64_t t = 0; t < size; ++t) {
    const std::int64_t r = reversed[t];
    if (r <= t) continue;
    for (int q = 0; q < 2 * L; ++q)
      std::swap(data[2 * t * L + q], data[2 * r * L + q]);
  }
  const double sign = inverse ? -1.0 : 1.0;
  for (std::int64_t half = 1; half < size; half *= 2) {
    const std::int64_t stride = size / (2 * half);  // twiddle index step
    for (std::int64_t i = 0; i < size; i += 2 * half)
      for (std::int64_t j = 0; j < half; ++j) {
        const double wr = cos_table[j * stride], wi = sign * sin_table[j * stride];
        double* __restrict ur = data + 2 * (i + j) * L;
        double* __restrict ui = ur + L;
        double* __restrict vr = data + 2 * (i + j + half) * L;
        double* __restrict vi = vr + L;
#pragma omp simd
        for (int q = 0; q < L; ++q) {
          const double xr = vr[q] * wr - vi[q] * wi;
          const double xi = vr[q] * wi + vi[q] * wr;
          vr[q] = ur[q] - xr;
          vi[q] = ui[q] - xi;
          ur[q] += xr;
          ui[q] += xi;
        }
      }
  }
}

void transform_baseline(std::int64_t size, const std::int64_t* reversed, const double* c,
                        const double* s, double* data, bool inverse) {
  transform_lanes(size, reversed, c, s, data, inverse);
}

#ifdef KFUSE_CPU_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) void transform_avx2(std::int64_t size,
                                                        const std::int64_t* reversed,
                                                        const double* c, const double* s,
                                                        double* data, bool inverse) {
  transform_lanes(size, reversed, c, s, data, inverse);
}
#endif

}  // namespace

void FftPlan::transform(double* data, bool inverse) const {
  auto* fn = &transform_baseline;
#ifdef KFUSE_CPU_HAVE_AVX2_PATH
  if (use_avx2()) fn = &transform_avx2;
#endif
  fn(size_, reversed_.data(), cos_.data(), sin_.data(), data, inverse);
}

}  // namespace kfuse::cpu
