// The CPU FFT shared by the CPU paths (TensorSketch's convolution), against the
// DFT summed in long double, four different signals in the four lanes.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <vector>

#include "../kernels/common/fuse_problem.hpp"
#include "../src/cpu/fft.hpp"
#include "../src/cpu/fuse.hpp"

namespace kfuse::cpu {
namespace {

TEST(CpuFft, SizeAtLeast) {
  EXPECT_EQ(fft_size_at_least(1), 1);
  EXPECT_EQ(fft_size_at_least(2), 2);
  EXPECT_EQ(fft_size_at_least(3), 4);
  EXPECT_EQ(fft_size_at_least(2047), 2048);
  EXPECT_EQ(fft_size_at_least(2048), 2048);
  EXPECT_EQ(fft_size_at_least(2049), 4096);
}

// Every lane against the DFT by its definition, both directions; the error of a
// radix-2 FFT with exact twiddles grows like log2(size) ulps of the sum of
// magnitudes, so 1e-13 of that sum has a margin of >10x at these sizes and is far
// below any wrong index or sign.
TEST(CpuFft, MatchesTheDftInEveryLane) {
  for (std::int64_t size : {1, 2, 4, 8, 64, 1024}) {
    const FftPlan plan(size);
    ASSERT_EQ(plan.size(), size);
    for (bool inverse : {false, true}) {
      // Lane q of element t: real part [2t][q], imaginary part [2t + 1][q].
      std::vector<double> data(2 * size * kFftLanes);
      const auto re = [&](std::int64_t t, int q) -> double& { return data[2 * t * kFftLanes + q]; };
      const auto im = [&](std::int64_t t, int q) -> double& {
        return data[(2 * t + 1) * kFftLanes + q];
      };
      std::vector<std::complex<long double>> x(size * kFftLanes);
      for (std::int64_t t = 0; t < size; ++t)
        for (int q = 0; q < kFftLanes; ++q) {
          re(t, q) = std::sin(0.37 * double(t + 1) * (q + 1)) + 0.25 * q;
          im(t, q) = std::cos(0.91 * double(t) + q) * (q % 2 == 0 ? 1.0 : 0.0);
          x[t * kFftLanes + q] = {re(t, q), im(t, q)};
        }
      plan.transform(data.data(), inverse);
      const long double pi = std::acos(-1.0L), sign = inverse ? 1.0L : -1.0L;
      for (int q = 0; q < kFftLanes; ++q) {
        long double magnitude = 0;
        for (std::int64_t t = 0; t < size; ++t)
          magnitude += std::abs(x[t * kFftLanes + q]);
        for (std::int64_t k = 0; k < size; ++k) {
          std::complex<long double> sum = 0;
          for (std::int64_t t = 0; t < size; ++t) {
            const long double angle = sign * 2 * pi * (long double)((t * k) % size) / size;
            sum += x[t * kFftLanes + q] * std::polar(1.0L, angle);
          }
          EXPECT_NEAR(re(k, q), double(sum.real()), 1e-13 * double(magnitude))
              << "size " << size << " lane " << q << " k " << k << " inverse " << inverse;
          EXPECT_NEAR(im(k, q), double(sum.imag()), 1e-13 * double(magnitude))
              << "size " << size << " lane " << q << " k " << k << " inverse " << inverse;
        }
      }
    }
  }
}

// The shapes test_fuse's TensorSketchByFftMatchesItsDefinition runs take the FFT
// route, and small ones the direct route (so that both are tested there).
TEST(CpuFft, TensorSketchRouteChoice) {
  detail::SketchProblem p;
  p.in[0].width = 300;
  p.in[1].width = 500;
  for (std::int64_t l : {1000, 1024, 1500}) {
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
