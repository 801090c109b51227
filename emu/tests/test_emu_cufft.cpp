// The emulated cuFFT (emu/lib/cufft.cpp) against a direct DFT in long double: R2C, C2R and C2C
// at power-of-two and other sizes, round trips, the basic layout (in and out of place) and
// advanced layouts with strides and distances, kfuse's own plans (kernels/fuse/sketch.cu), the work
// area protocol, the plan's stream (nothing before synchronisation) and the argument checks.
#include <cuda_runtime_api.h>
#include <cufft.h>
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using lcplx = std::complex<long double>;
constexpr long double kPi = 3.141592653589793238462643383279502884L;

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { (void)cudaStreamDestroy(s); }
};

// A plan destroyed on scope exit.
struct Plan {
  cufftHandle h = 0;
  Plan() { EXPECT_EQ(cufftCreate(&h), CUFFT_SUCCESS); }
  ~Plan() { (void)cufftDestroy(h); }
};

// X_k = sum_j x_j exp(sign 2 pi i j k / n), the angle reduced exactly (j k mod n).
std::vector<lcplx> dft(const std::vector<lcplx>& x, int sign) {
  const std::size_t n = x.size();
  std::vector<lcplx> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    lcplx s = 0;
    for (std::size_t j = 0; j < n; ++j) {
      const long double angle = sign * 2 * kPi * static_cast<long double>((j * k) % n) / n;
      s += x[j] * lcplx(std::cos(angle), std::sin(angle));
    }
    out[k] = s;
  }
  return out;
}

// Tolerance for single-precision output of a transform of data with sum |x| = l1: the
// emulation computes in double and rounds once, a GPU's fp32 FFT is ~log2(n) eps; allow
// the latter so that the test states the contract, not the emulation's extra accuracy.
double tolerance(long double l1, std::size_t n) {
  return static_cast<double>(l1) * std::ldexp(1.0, -24) * (std::log2(static_cast<double>(n)) + 2);
}

std::vector<float> random_real(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v)
    x = u(rng);
  return v;
}

TEST(EmuCufft, R2CMatchesTheDftAtEverySize) {
  std::mt19937 rng(1);
  Stream stream;
  for (long long n : {1LL, 2LL, 3LL, 8LL, 12LL, 64LL, 100LL, 127LL, 1000LL, 1024LL}) {
    SCOPED_TRACE(n);
    const long long batch = 3, half = n / 2 + 1;
    Plan plan;
    long long dims[1] = {n};
    std::size_t work = 0;
    ASSERT_EQ(
        cufftMakePlanMany64(plan.h, 1, dims, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, batch, &work),
        CUFFT_SUCCESS);
    EXPECT_GT(work, 0u);
    ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
    std::vector<float> x = random_real(n * batch, rng);
    std::vector<cufftComplex> y(half * batch, cufftComplex{-7.0f, -7.0f});
    ASSERT_EQ(cufftExecR2C(plan.h, x.data(), y.data()), CUFFT_SUCCESS);
    EXPECT_EQ(y[0].x, -7.0f) << "transformed at call time";
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    for (long long b = 0; b < batch; ++b) {
      std::vector<lcplx> in(n);
      long double l1 = 0;
      for (long long j = 0; j < n; ++j) {
        in[j] = x[b * n + j];
        l1 += std::fabs(x[b * n + j]);
      }
      const std::vector<lcplx> want = dft(in, -1);
      for (long long k = 0; k < half; ++k) {
        EXPECT_NEAR(y[b * half + k].x, static_cast<double>(want[k].real()), tolerance(l1, n))
            << b << ":" << k;
        EXPECT_NEAR(y[b * half + k].y, static_cast<double>(want[k].imag()), tolerance(l1, n))
            << b << ":" << k;
      }
    }
  }
}

// C2R reads the n/2+1 stored coefficients as a Hermitian spectrum: the imaginary parts of DC
// and (n even) Nyquist do not matter, the rest is mirrored.
TEST(EmuCufft, C2RMatchesTheHermitianInverseDft) {
  std::mt19937 rng(2);
  Stream stream;
  for (long long n : {1LL, 2LL, 7LL, 16LL, 30LL, 243LL}) {
    SCOPED_TRACE(n);
    const long long half = n / 2 + 1;
    Plan plan;
    long long dims[1] = {n};
    std::size_t work = 0;
    ASSERT_EQ(
        cufftMakePlanMany64(plan.h, 1, dims, nullptr, 1, 0, nullptr, 1, 0, CUFFT_C2R, 1, &work),
        CUFFT_SUCCESS);
    ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
    std::vector<float> parts = random_real(2 * half, rng);
    std::vector<cufftComplex> X(half);
    for (long long k = 0; k < half; ++k)
      X[k] = cufftComplex{parts[2 * k], parts[2 * k + 1]};
    std::vector<lcplx> full(n);
    long double l1 = 0;
    for (long long k = 0; k < n; ++k) {
      const cufftComplex c = k < half ? X[k] : X[n - k];
      full[k] = k < half ? lcplx(c.x, c.y) : lcplx(c.x, -c.y);
      if (k == 0 || 2 * k == n) full[k] = lcplx(c.x, 0);  // imaginary part ignored
      l1 += std::abs(full[k]);
    }
    const std::vector<lcplx> want = dft(full, +1);
    std::vector<float> out(n, -7.0f);
    ASSERT_EQ(cufftExecC2R(plan.h, X.data(), out.data()), CUFFT_SUCCESS);
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    for (long long j = 0; j < n; ++j)
      EXPECT_NEAR(out[j], static_cast<double>(want[j].real()), tolerance(l1, n)) << j;
    // The real library may overwrite an out-of-place C2R's input; the emulation always does.
    EXPECT_TRUE(std::isnan(X[0].x));
  }
}

TEST(EmuCufft, RoundTripIsUnnormalised) {
  std::mt19937 rng(3);
  Stream stream;
  const long long n = 90, batch = 5, half = n / 2 + 1;
  long long dims[1] = {n};
  std::size_t work = 0;
  Plan forward, inverse;
  ASSERT_EQ(cufftMakePlanMany64(forward.h, 1, dims, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, batch,
                                &work),
            CUFFT_SUCCESS);
  ASSERT_EQ(cufftMakePlanMany64(inverse.h, 1, dims, nullptr, 1, 0, nullptr, 1, 0, CUFFT_C2R, batch,
                                &work),
            CUFFT_SUCCESS);
  ASSERT_EQ(cufftSetStream(forward.h, stream.s), CUFFT_SUCCESS);
  ASSERT_EQ(cufftSetStream(inverse.h, stream.s), CUFFT_SUCCESS);
  const std::vector<float> x = random_real(n * batch, rng);
  std::vector<float> in = x, back(n * batch);
  std::vector<cufftComplex> spec(half * batch);
  ASSERT_EQ(cufftExecR2C(forward.h, in.data(), spec.data()), CUFFT_SUCCESS);
  ASSERT_EQ(cufftExecC2R(inverse.h, spec.data(), back.data()), CUFFT_SUCCESS);  // stream order
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (long long t = 0; t < n * batch; ++t)
    EXPECT_NEAR(back[t], n * x[t], 1e-4) << t;
  EXPECT_EQ(in, x) << "R2C changed its input";
}

// Advanced layout: element j of batch entry b at b * dist + j * stride, gaps untouched.
TEST(EmuCufft, AdvancedLayoutWithStridesAndDistances) {
  std::mt19937 rng(4);
  Stream stream;
  const long long n = 20, half = n / 2 + 1, batch = 4;
  const long long istride = 2, idist = 2 * n + 3, ostride = 3, odist = 3 * half + 5;
  long long dims[1] = {n}, inembed[1] = {n}, onembed[1] = {half};
  Plan plan;
  std::size_t work = 0;
  ASSERT_EQ(cufftMakePlanMany64(plan.h, 1, dims, inembed, istride, idist, onembed, ostride, odist,
                                CUFFT_R2C, batch, &work),
            CUFFT_SUCCESS);
  ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
  std::vector<float> x = random_real(idist * batch, rng);
  const cufftComplex fill{-7.0f, -7.0f};
  std::vector<cufftComplex> y(odist * batch, fill);
  ASSERT_EQ(cufftExecR2C(plan.h, x.data(), y.data()), CUFFT_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  std::vector<bool> written(y.size(), false);
  for (long long b = 0; b < batch; ++b) {
    std::vector<lcplx> in(n);
    long double l1 = 0;
    for (long long j = 0; j < n; ++j) {
      in[j] = x[b * idist + j * istride];
      l1 += std::fabs(in[j].real());
    }
    const std::vector<lcplx> want = dft(in, -1);
    for (long long k = 0; k < half; ++k) {
      const long long at = b * odist + k * ostride;
      written[at] = true;
      EXPECT_NEAR(y[at].x, static_cast<double>(want[k].real()), tolerance(l1, n));
      EXPECT_NEAR(y[at].y, static_cast<double>(want[k].imag()), tolerance(l1, n));
    }
  }
  for (std::size_t t = 0; t < y.size(); ++t)
    if (!written[t]) {
      EXPECT_TRUE(y[t].x == fill.x && y[t].y == fill.y) << "gap " << t;
    }
}

// kernels/fuse/sketch.cu's plans: R2C over rows of l with distance l into rows of l/2+1, then C2R
// from rows of l/2+1 into rows of ldo > l; no auto allocation, a work area of the size reported.
TEST(EmuCufft, KfuseSketchPlansWithAWorkArea) {
  std::mt19937 rng(5);
  Stream stream;
  const long long l = 48, rows = 6, spectrum = l / 2 + 1, ldo = l + 5;
  auto make = [&](Plan& plan, cufftType type, long long batch, long long idist, long long odist,
                  std::vector<unsigned char>& area) {
    ASSERT_EQ(cufftSetAutoAllocation(plan.h, 0), CUFFT_SUCCESS);
    long long n[1] = {l}, inembed[1] = {idist}, onembed[1] = {odist};
    std::size_t work = 0;
    ASSERT_EQ(
        cufftMakePlanMany64(plan.h, 1, n, inembed, 1, idist, onembed, 1, odist, type, batch, &work),
        CUFFT_SUCCESS);
    ASSERT_GT(work, 0u);
    area.assign(work, 0);  // its own allocation: a write past it is caught by ASan
    ASSERT_EQ(cufftSetWorkArea(plan.h, area.data()), CUFFT_SUCCESS);
    ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
  };
  std::vector<unsigned char> area_f, area_i;
  Plan forward, inverse;
  make(forward, CUFFT_R2C, rows, l, spectrum, area_f);
  make(inverse, CUFFT_C2R, rows, spectrum, ldo, area_i);
  const std::vector<float> x = random_real(rows * l, rng);
  std::vector<float> in = x, out(rows * ldo, -7.0f);
  std::vector<cufftComplex> freq(rows * spectrum);
  ASSERT_EQ(cufftExecR2C(forward.h, in.data(), freq.data()), CUFFT_SUCCESS);
  ASSERT_EQ(cufftExecC2R(inverse.h, freq.data(), out.data()), CUFFT_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (long long r = 0; r < rows; ++r)
    for (long long j = 0; j < ldo; ++j) {
      if (j < l)
        EXPECT_NEAR(out[r * ldo + j], l * x[r * l + j], 1e-4) << r << "," << j;
      else
        EXPECT_EQ(out[r * ldo + j], -7.0f) << "row padding " << r << "," << j;
    }
}

TEST(EmuCufft, WithoutAutoAllocationAWorkAreaIsRequired) {
  Plan plan;
  ASSERT_EQ(cufftSetAutoAllocation(plan.h, 0), CUFFT_SUCCESS);
  long long n[1] = {16};
  std::size_t work = 0;
  ASSERT_EQ(cufftMakePlanMany64(plan.h, 1, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 2, &work),
            CUFFT_SUCCESS);
  std::size_t reported = 0;
  ASSERT_EQ(cufftGetSize(plan.h, &reported), CUFFT_SUCCESS);
  EXPECT_EQ(reported, work);
  std::vector<float> x(32, 1.0f);
  std::vector<cufftComplex> y(18);
  EXPECT_EQ(cufftExecR2C(plan.h, x.data(), y.data()), CUFFT_NO_WORKSPACE);
  std::vector<unsigned char> area(work);
  ASSERT_EQ(cufftSetWorkArea(plan.h, area.data()), CUFFT_SUCCESS);
  EXPECT_EQ(cufftExecR2C(plan.h, x.data(), y.data()), CUFFT_SUCCESS);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the legacy default stream
  EXPECT_EQ(y[0].x, 16.0f);
}

// The transform runs on the plan's stream only, and may outlive the plan.
TEST(EmuCufft, RunsOnThePlansStreamAfterThePlanIsDestroyed) {
  Stream stream, other;
  std::vector<float> x(8, 1.0f);
  std::vector<cufftComplex> y(5, cufftComplex{-7.0f, -7.0f});
  {
    Plan plan;
    long long n[1] = {8};
    std::size_t work = 0;
    ASSERT_EQ(cufftMakePlanMany64(plan.h, 1, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 1, &work),
              CUFFT_SUCCESS);
    ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
    ASSERT_EQ(cufftExecR2C(plan.h, x.data(), y.data()), CUFFT_SUCCESS);
  }
  ASSERT_EQ(cudaStreamSynchronize(other.s), cudaSuccess);
  EXPECT_EQ(y[0].x, -7.0f);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(y[0].x, 8.0f);
  for (int k = 1; k < 5; ++k)
    EXPECT_EQ(std::abs(std::complex<float>(y[k].x, y[k].y)), 0.0f) << k;
}

// In place, the basic layout pads each real row to 2 (n/2+1) floats.
TEST(EmuCufft, InPlaceBasicLayoutIsPadded) {
  std::mt19937 rng(6);
  Stream stream;
  const long long n = 10, half = n / 2 + 1, batch = 3;
  Plan plan;
  long long dims[1] = {n};
  std::size_t work = 0;
  ASSERT_EQ(
      cufftMakePlanMany64(plan.h, 1, dims, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, batch, &work),
      CUFFT_SUCCESS);
  ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
  std::vector<cufftComplex> buf(half * batch);
  auto* real = reinterpret_cast<float*>(buf.data());
  const std::vector<float> x = random_real(n * batch, rng);
  for (long long b = 0; b < batch; ++b)
    for (long long j = 0; j < 2 * half; ++j)
      real[b * 2 * half + j] = j < n ? x[b * n + j] : std::numeric_limits<float>::quiet_NaN();
  ASSERT_EQ(cufftExecR2C(plan.h, real, buf.data()), CUFFT_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (long long b = 0; b < batch; ++b) {
    std::vector<lcplx> in(x.begin() + b * n, x.begin() + (b + 1) * n);
    long double l1 = 0;
    for (const lcplx& v : in)
      l1 += std::abs(v);
    const std::vector<lcplx> want = dft(in, -1);
    for (long long k = 0; k < half; ++k) {
      EXPECT_NEAR(buf[b * half + k].x, static_cast<double>(want[k].real()), tolerance(l1, n));
      EXPECT_NEAR(buf[b * half + k].y, static_cast<double>(want[k].imag()), tolerance(l1, n));
    }
  }
}

TEST(EmuCufft, ComplexAndDoubleTransformsIn1DAnd2D) {
  std::mt19937 rng(7);
  Stream stream;
  // C2C forward and inverse, 1D, n = 15.
  {
    const long long n = 15;
    Plan plan;
    long long dims[1] = {n};
    std::size_t work = 0;
    ASSERT_EQ(
        cufftMakePlanMany64(plan.h, 1, dims, nullptr, 1, 0, nullptr, 1, 0, CUFFT_C2C, 1, &work),
        CUFFT_SUCCESS);
    ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
    const std::vector<float> parts = random_real(2 * n, rng);
    std::vector<cufftComplex> x(n), fwd(n), inv(n);
    std::vector<lcplx> in(n);
    long double l1 = 0;
    for (long long j = 0; j < n; ++j) {
      x[j] = cufftComplex{parts[2 * j], parts[2 * j + 1]};
      in[j] = lcplx(x[j].x, x[j].y);
      l1 += std::abs(in[j]);
    }
    ASSERT_EQ(cufftExecC2C(plan.h, x.data(), fwd.data(), CUFFT_FORWARD), CUFFT_SUCCESS);
    ASSERT_EQ(cufftExecC2C(plan.h, x.data(), inv.data(), CUFFT_INVERSE), CUFFT_SUCCESS);
    EXPECT_EQ(cufftExecC2C(plan.h, x.data(), inv.data(), 0), CUFFT_INVALID_VALUE);
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    const std::vector<lcplx> want_f = dft(in, -1), want_i = dft(in, +1);
    for (long long k = 0; k < n; ++k) {
      EXPECT_NEAR(fwd[k].x, static_cast<double>(want_f[k].real()), tolerance(l1, n));
      EXPECT_NEAR(fwd[k].y, static_cast<double>(want_f[k].imag()), tolerance(l1, n));
      EXPECT_NEAR(inv[k].x, static_cast<double>(want_i[k].real()), tolerance(l1, n));
      EXPECT_NEAR(inv[k].y, static_cast<double>(want_i[k].imag()), tolerance(l1, n));
    }
  }
  // D2Z, 2D 6 x 10, against a separable long double DFT; double precision.
  {
    const long long n0 = 6, n1 = 10, h1 = n1 / 2 + 1;
    Plan plan;
    long long dims[2] = {n0, n1};
    std::size_t work = 0;
    ASSERT_EQ(
        cufftMakePlanMany64(plan.h, 2, dims, nullptr, 1, 0, nullptr, 1, 0, CUFFT_D2Z, 1, &work),
        CUFFT_SUCCESS);
    ASSERT_EQ(cufftSetStream(plan.h, stream.s), CUFFT_SUCCESS);
    const std::vector<float> xf = random_real(n0 * n1, rng);
    std::vector<double> x(xf.begin(), xf.end());
    std::vector<cufftDoubleComplex> y(n0 * h1);
    ASSERT_EQ(cufftExecD2Z(plan.h, x.data(), y.data()), CUFFT_SUCCESS);
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    for (long long k0 = 0; k0 < n0; ++k0)
      for (long long k1 = 0; k1 < h1; ++k1) {
        lcplx s = 0;
        for (long long j0 = 0; j0 < n0; ++j0)
          for (long long j1 = 0; j1 < n1; ++j1) {
            const long double angle = -2 * kPi *
                                      (static_cast<long double>((j0 * k0) % n0) / n0 +
                                       static_cast<long double>((j1 * k1) % n1) / n1);
            s +=
                static_cast<long double>(x[j0 * n1 + j1]) * lcplx(std::cos(angle), std::sin(angle));
          }
        EXPECT_NEAR(y[k0 * h1 + k1].x, static_cast<double>(s.real()), 1e-12) << k0 << "," << k1;
        EXPECT_NEAR(y[k0 * h1 + k1].y, static_cast<double>(s.imag()), 1e-12) << k0 << "," << k1;
      }
  }
}

// 2D and 3D: R2C then C2R gives N x back (C2R mirrors the stored half through every
// dimension), and an advanced layout with padded rows gives the basic layout's values.
TEST(EmuCufft, MultiDimensionalRoundTripsAndEmbeddedLayouts) {
  std::mt19937 rng(8);
  Stream stream;
  struct Shape {
    int rank;
    long long n[3];
  };
  for (const Shape& shape : {Shape{2, {6, 10, 0}}, Shape{3, {3, 4, 5}}, Shape{2, {5, 7, 0}}}) {
    SCOPED_TRACE(shape.rank);
    long long dims[3] = {shape.n[0], shape.n[1], shape.n[2]};
    long long total = 1, outer = 1;
    for (int d = 0; d < shape.rank; ++d)
      total *= dims[d];
    const long long last = dims[shape.rank - 1], half = last / 2 + 1;
    outer = total / last;
    const long long batch = 2;
    Plan forward, inverse, padded;
    std::size_t work = 0;
    ASSERT_EQ(cufftMakePlanMany64(forward.h, shape.rank, dims, nullptr, 1, 0, nullptr, 1, 0,
                                  CUFFT_R2C, batch, &work),
              CUFFT_SUCCESS);
    ASSERT_EQ(cufftMakePlanMany64(inverse.h, shape.rank, dims, nullptr, 1, 0, nullptr, 1, 0,
                                  CUFFT_C2R, batch, &work),
              CUFFT_SUCCESS);
    // Rows of the last dimension padded: real rows of last + 3 floats, complex of half + 2.
    long long inembed[3] = {0, 0, 0}, onembed[3] = {0, 0, 0};
    for (int d = 1; d < shape.rank; ++d) {
      inembed[d] = d == shape.rank - 1 ? last + 3 : dims[d];
      onembed[d] = d == shape.rank - 1 ? half + 2 : dims[d];
    }
    const long long idist = outer * (last + 3) + 1, odist = outer * (half + 2) + 4;
    ASSERT_EQ(cufftMakePlanMany64(padded.h, shape.rank, dims, inembed, 1, idist, onembed, 1, odist,
                                  CUFFT_R2C, batch, &work),
              CUFFT_SUCCESS);
    for (Plan* p : {&forward, &inverse, &padded})
      ASSERT_EQ(cufftSetStream(p->h, stream.s), CUFFT_SUCCESS);
    const std::vector<float> x = random_real(total * batch, rng);
    std::vector<float> in = x, back(total * batch);
    std::vector<cufftComplex> spec(outer * half * batch);
    std::vector<float> x_padded(idist * batch, 0.0f);
    for (long long b = 0; b < batch; ++b)
      for (long long r = 0; r < outer; ++r)
        for (long long j = 0; j < last; ++j)
          x_padded[b * idist + r * (last + 3) + j] = x[b * total + r * last + j];
    std::vector<cufftComplex> spec_padded(odist * batch);
    ASSERT_EQ(cufftExecR2C(forward.h, in.data(), spec.data()), CUFFT_SUCCESS);
    ASSERT_EQ(cufftExecR2C(padded.h, x_padded.data(), spec_padded.data()), CUFFT_SUCCESS);
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    for (long long b = 0; b < batch; ++b)
      for (long long r = 0; r < outer; ++r)
        for (long long k = 0; k < half; ++k) {
          const cufftComplex u = spec[(b * outer + r) * half + k];
          const cufftComplex v = spec_padded[b * odist + r * (half + 2) + k];
          EXPECT_TRUE(u.x == v.x && u.y == v.y) << b << ":" << r << "," << k;
        }
    ASSERT_EQ(cufftExecC2R(inverse.h, spec.data(), back.data()), CUFFT_SUCCESS);
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    for (long long t = 0; t < total * batch; ++t)
      EXPECT_NEAR(back[t], total * x[t], 1e-4) << t;
  }
}

TEST(EmuCufft, ArgumentChecks) {
  long long n[1] = {8}, zero[1] = {0};
  std::size_t work = 0;
  {
    Plan plan;
    EXPECT_EQ(cufftMakePlanMany64(plan.h, 0, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 1, &work),
              CUFFT_INVALID_SIZE);
    EXPECT_EQ(cufftMakePlanMany64(plan.h, 4, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 1, &work),
              CUFFT_INVALID_SIZE);
    EXPECT_EQ(
        cufftMakePlanMany64(plan.h, 1, zero, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 1, &work),
        CUFFT_INVALID_SIZE);
    EXPECT_EQ(cufftMakePlanMany64(plan.h, 1, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 0, &work),
              CUFFT_INVALID_SIZE);
    EXPECT_EQ(cufftMakePlanMany64(plan.h, 1, n, nullptr, 1, 0, nullptr, 1, 0,
                                  static_cast<cufftType>(0x7f), 1, &work),
              CUFFT_INVALID_TYPE);
    std::vector<float> x(8);
    std::vector<cufftComplex> y(5);
    EXPECT_EQ(cufftExecR2C(plan.h, x.data(), y.data()), CUFFT_INVALID_PLAN) << "not made";
    ASSERT_EQ(cufftMakePlanMany64(plan.h, 1, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 1, &work),
              CUFFT_SUCCESS);
    EXPECT_EQ(cufftExecC2R(plan.h, y.data(), x.data()), CUFFT_INVALID_PLAN) << "an R2C plan";
    EXPECT_EQ(cufftExecR2C(plan.h, nullptr, y.data()), CUFFT_INVALID_VALUE);
  }
  cufftHandle gone = 0;
  ASSERT_EQ(cufftCreate(&gone), CUFFT_SUCCESS);
  EXPECT_NE(gone, 0);
  ASSERT_EQ(cufftDestroy(gone), CUFFT_SUCCESS);
  EXPECT_EQ(cufftDestroy(gone), CUFFT_INVALID_PLAN);
  EXPECT_EQ(cufftSetStream(gone, nullptr), CUFFT_INVALID_PLAN);
  EXPECT_EQ(cufftMakePlanMany64(gone, 1, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 1, &work),
            CUFFT_INVALID_PLAN);
}

}  // namespace
