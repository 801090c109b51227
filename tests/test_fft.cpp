// The CPU FFT shared by the CPU paths (TensorSketch's convolution, through FFTW),
// against the DFT summed in long double, at power-of-two, smooth and prime lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include "kernels/fuse/problem.hpp"
#include "src/core/fft.hpp"
#include "src/fuse/cpu.hpp"

namespace kfuse::cpu {
namespace {

// Forward and inverse against the DFT by its definition. FFTW's error grows like
// log2(n) ulps of the sum of magnitudes (its twiddles are exact to an ulp or two,
// also on the prime-length algorithms), so 450 ulps (5.4e-5 in float) of that sum
// have a margin of >10x at these lengths and are far below any wrong index, sign or
// scale.
template <class T>
void expect_matches_the_dft() {
  const double ulps = 450 * double(std::numeric_limits<T>::epsilon());
  for (std::int64_t n : {1, 2, 3, 4, 7, 8, 64, 97, 1000, 1024, 3000}) {
    const RealFft<T>& fft = RealFft<T>::of_size(n);
    ASSERT_EQ(fft.size(), n);
    ASSERT_EQ(fft.spectrum_size(), n / 2 + 1);
    FftBuffer<T> x = fft_buffer<T>(n), back = fft_buffer<T>(n);
    FftBuffer<std::complex<T>> X = fft_buffer<std::complex<T>>(n / 2 + 1),
                               Xc = fft_buffer<std::complex<T>>(n / 2 + 1);
    long double magnitude = 0;
    for (std::int64_t t = 0; t < n; ++t) {
      x[t] = static_cast<T>(std::sin(0.37 * double(t + 1)) + 0.25 * std::cos(1.3 * double(t)));
      magnitude += std::fabs((long double)x[t]);
    }
    fft.forward(x.get(), X.get());
    const long double pi = std::acos(-1.0L);
    for (std::int64_t k = 0; k <= n / 2; ++k) {
      std::complex<long double> sum = 0;
      for (std::int64_t t = 0; t < n; ++t)
        sum += (long double)x[t] * std::polar(1.0L, -2 * pi * (long double)((t * k) % n) / n);
      EXPECT_NEAR(X[k].real(), double(sum.real()), ulps * double(magnitude)) << n << " " << k;
      EXPECT_NEAR(X[k].imag(), double(sum.imag()), ulps * double(magnitude)) << n << " " << k;
    }
    // The inverse of the spectrum is n x (unscaled), and the forward kept its input.
    long double spectrum = 0;
    for (std::int64_t k = 0; k <= n / 2; ++k) {
      Xc[k] = X[k];
      spectrum += std::abs(std::complex<long double>(X[k]));
    }
    fft.inverse(Xc.get(), back.get());
    for (std::int64_t t = 0; t < n; ++t)
      EXPECT_NEAR(back[t], double(n) * x[t], 2 * ulps * double(2 * spectrum)) << n << " " << t;
  }
}

TEST(CpuFft, MatchesTheDftInFloat) {
  expect_matches_the_dft<float>();
}

// One plan per length, shared: the same object however many threads ask at once
// (plan creation takes FFTW's planner, which is not thread-safe).
TEST(CpuFft, PlansAreCachedAndMadeSafelyFromThreads) {
  const std::int64_t lengths[] = {3001, 3002, 3003, 3004};
  std::vector<const RealFft<float>*> got(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&, t] { got[t] = &RealFft<float>::of_size(lengths[t % 4]); });
  for (auto& th : threads)
    th.join();
  for (int t = 0; t < 16; ++t) {
    EXPECT_EQ(got[t], &RealFft<float>::of_size(lengths[t % 4]));
    EXPECT_EQ(got[t]->size(), lengths[t % 4]);
  }
}

// The shapes test_fuse's TensorSketchByFftMatchesItsDefinition runs take the FFT
// route, and small ones the direct route (so that both are tested there).
TEST(CpuFft, TensorSketchRouteChoice) {
  detail::SketchProblem p;
  p.in[0].width = 300;
  p.in[1].width = 500;
  for (std::int64_t l : {1000, 1009, 1024, 1500}) {
    p.l = l;
    EXPECT_TRUE(sketch_uses_fft(p)) << "l = " << l;
  }
  p.in[0].width = 20;
  p.in[1].width = 33;
  for (std::int64_t l : {1, 7, 64, 200}) {
    p.l = l;
    EXPECT_FALSE(sketch_uses_fft(p)) << "l = " << l;
  }
}

}  // namespace
}  // namespace kfuse::cpu
