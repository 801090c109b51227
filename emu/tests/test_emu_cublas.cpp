// The emulated cuBLAS (emu/lib/cublas.cpp) against a GEMM in double written here: every
// transpose, odd sizes, leading dimensions above the minimum, strided batches, the compute
// types' operand rounding (TF32, bf16) made visible, beta == 0 with NaN in C, the pointer
// modes, the stream it runs on (nothing before synchronisation) and the argument checks.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { (void)cudaStreamDestroy(s); }
};

struct Handle {
  cublasHandle_t h = nullptr;
  explicit Handle(cudaStream_t stream) {
    EXPECT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasSetStream(h, stream), CUBLAS_STATUS_SUCCESS);
  }
  ~Handle() { (void)cublasDestroy(h); }
};

const char* op_name(cublasOperation_t op) {
  return op == CUBLAS_OP_N ? "N" : op == CUBLAS_OP_T ? "T" : "C";
}

// TF32 by arithmetic (not by bits, as the library does it): x rounded to 11 significant
// bits, ties to even.
double tf32(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  int e;
  const double f = std::frexp(x, &e);  // x = f 2^e, 0.5 <= |f| < 1
  return std::ldexp(std::nearbyint(std::ldexp(f, 11)), e - 11);
}

double bf16(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  int e;
  const double f = std::frexp(x, &e);
  return std::ldexp(std::nearbyint(std::ldexp(f, 8)), e - 8);
}

// A column-major matrix of rows x cols with leading dimension ld, in a buffer that holds
// `batch` of them `stride` elements apart, filled with random values in [-1, 1).
struct Matrix {
  std::int64_t rows, cols, ld, stride, batch;
  std::vector<float> v;
  Matrix(std::int64_t r, std::int64_t c, std::int64_t ld_, std::mt19937& rng,
         std::int64_t batch_ = 1, std::int64_t stride_ = 0)
      : rows(r), cols(c), ld(ld_), stride(stride_ ? stride_ : ld_ * c), batch(batch_) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    v.resize(static_cast<std::size_t>(stride * (batch - 1) + ld * cols));
    for (float& x : v)
      x = u(rng);
  }
  float at(std::int64_t b, std::int64_t i, std::int64_t j) const {
    return v[b * stride + i + j * ld];
  }
};

// op(X)(i, j) for a stored matrix.
double op_at(const Matrix& x, cublasOperation_t op, std::int64_t b, std::int64_t i,
             std::int64_t j) {
  return op == CUBLAS_OP_N ? x.at(b, i, j) : x.at(b, j, i);
}

// alpha op(A) op(B) + beta C in double, operands rounded by `round`; also sum |a b| for the
// error bound of an fp32 accumulation.
template <typename Round>
void reference(const Matrix& A, cublasOperation_t ta, const Matrix& B, cublasOperation_t tb,
               const Matrix& C0, std::int64_t b, std::int64_t m, std::int64_t n, std::int64_t k,
               double alpha, double beta, Round round, std::vector<double>& ref,
               std::vector<double>& mag) {
  ref.assign(m * n, 0.0);
  mag.assign(m * n, 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0, a = 0;
      for (std::int64_t l = 0; l < k; ++l) {
        const double p = round(op_at(A, ta, b, i, l)) * round(op_at(B, tb, b, l, j));
        s += p;
        a += std::fabs(p);
      }
      ref[i + j * m] = alpha * s + (beta != 0 ? beta * C0.at(b, i, j) : 0.0);
      mag[i + j * m] = std::fabs(alpha) * a + (beta != 0 ? std::fabs(beta * C0.at(b, i, j)) : 0.0);
    }
}

// Bound for k fp32 FMAs in sequence and the scaling: (k + 2) units of roundoff.
double fp32_bound(std::int64_t k, double mag) {
  return (static_cast<double>(k) + 2) * std::ldexp(1.0, -24) * mag + 1e-30;
}

double identity(double x) {
  return x;
}

TEST(EmuCublas, EveryTransposeOddSizesPaddedLeadingDimensions) {
  std::mt19937 rng(1);
  const std::int64_t m = 7, n = 5, k = 9;
  const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
  for (cublasOperation_t ta : ops)
    for (cublasOperation_t tb : ops) {
      SCOPED_TRACE(std::string(op_name(ta)) + op_name(tb));
      Stream stream;
      Handle handle(stream.s);
      const bool at = ta != CUBLAS_OP_N, bt = tb != CUBLAS_OP_N;
      Matrix A(at ? k : m, at ? m : k, (at ? k : m) + 3, rng);
      Matrix B(bt ? n : k, bt ? k : n, (bt ? n : k) + 2, rng);
      Matrix C(m, n, m + 4, rng);
      const Matrix C0 = C;
      const float alpha = 1.5f, beta = -0.75f;
      ASSERT_EQ(cublasGemmEx_64(handle.h, ta, tb, m, n, k, &alpha, A.v.data(), CUDA_R_32F, A.ld,
                                B.v.data(), CUDA_R_32F, B.ld, &beta, C.v.data(), CUDA_R_32F, C.ld,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_SUCCESS);
      ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
      std::vector<double> ref, mag;
      reference(A, ta, B, tb, C0, 0, m, n, k, alpha, beta, identity, ref, mag);
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = 0; i < C.ld; ++i) {
          if (i < m)
            EXPECT_NEAR(C.at(0, i, j), ref[i + j * m], fp32_bound(k, mag[i + j * m]))
                << i << "," << j;
          else
            EXPECT_EQ(C.at(0, i, j), C0.at(0, i, j)) << "padding row " << i;  // untouched
        }
    }
}

TEST(EmuCublas, NothingRunsBeforeItsStreamSynchronises) {
  std::mt19937 rng(2);
  Stream stream, other;
  Handle handle(stream.s);
  cudaStream_t bound = nullptr;
  ASSERT_EQ(cublasGetStream(handle.h, &bound), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(bound, stream.s);
  Matrix A(4, 3, 4, rng), B(3, 2, 3, rng), C(4, 2, 4, rng);
  const Matrix C0 = C;
  const float alpha = 1.0f, beta = 0.0f;
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &alpha, A.v.data(),
                            CUDA_R_32F, 4, B.v.data(), CUDA_R_32F, 3, &beta, C.v.data(), CUDA_R_32F,
                            4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(C.v, C0.v) << "computed at call time";
  ASSERT_EQ(cudaStreamSynchronize(other.s), cudaSuccess);
  EXPECT_EQ(C.v, C0.v) << "ran on another stream";
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_NE(C.v, C0.v);
}

TEST(EmuCublas, BetaZeroDoesNotReadC) {
  std::mt19937 rng(3);
  Stream stream;
  Handle handle(stream.s);
  const std::int64_t m = 6, n = 5, k = 4;
  Matrix A(m, k, m, rng), B(k, n, k, rng), C(m, n, m, rng);
  std::fill(C.v.begin(), C.v.end(), std::numeric_limits<float>::quiet_NaN());
  const Matrix C0 = C;
  const float alpha = 2.0f, beta = 0.0f;
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, A.v.data(),
                            CUDA_R_32F, m, B.v.data(), CUDA_R_32F, k, &beta, C.v.data(), CUDA_R_32F,
                            m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  std::vector<double> ref, mag;
  reference(A, CUBLAS_OP_N, B, CUBLAS_OP_N, C0, 0, m, n, k, alpha, 0.0, identity, ref, mag);
  for (std::int64_t t = 0; t < m * n; ++t)
    EXPECT_NEAR(C.v[t], ref[t], fp32_bound(k, mag[t])) << t;
  // alpha == 0 too: C = 0, neither A, B nor C read.
  std::fill(A.v.begin(), A.v.end(), std::numeric_limits<float>::quiet_NaN());
  std::fill(C.v.begin(), C.v.end(), std::numeric_limits<float>::quiet_NaN());
  const float zero = 0.0f;
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &zero, A.v.data(),
                            CUDA_R_32F, m, B.v.data(), CUDA_R_32F, k, &zero, C.v.data(), CUDA_R_32F,
                            m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (float c : C.v)
    EXPECT_EQ(c, 0.0f);
}

TEST(EmuCublas, KZeroScalesC) {
  std::mt19937 rng(4);
  Stream stream;
  Handle handle(stream.s);
  Matrix C(3, 2, 3, rng);
  const Matrix C0 = C;
  const float alpha = 1.0f, beta = 3.0f;
  float dummy = std::numeric_limits<float>::quiet_NaN();
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, 3, 2, 0, &alpha, &dummy, CUDA_R_32F,
                            3, &dummy, CUDA_R_32F, 1, &beta, C.v.data(), CUDA_R_32F, 3,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (std::size_t t = 0; t < C.v.size(); ++t)
    EXPECT_EQ(C.v[t], 3.0f * C0.v[t]);
}

// TF32 keeps 10 mantissa bits, rounding to nearest even: 1 + 2^-12 -> 1, the ties
// 1 + 2^-11 -> 1 and 1 + 3 2^-11 -> 1 + 2^-9; exact fp32 keeps them all.
TEST(EmuCublas, Tf32RoundsOperandsToNearestEven) {
  Stream stream;
  Handle handle(stream.s);
  const float a[3] = {1.0f + std::ldexp(1.0f, -12), 1.0f + std::ldexp(1.0f, -11),
                      1.0f + 3 * std::ldexp(1.0f, -11)};
  const float b = 1.0f;
  const float alpha = 1.0f, beta = 0.0f;
  float exact[3], fast[3];
  for (cublasComputeType_t compute : {CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32}) {
    float* c = compute == CUBLAS_COMPUTE_32F ? exact : fast;
    ASSERT_EQ(
        cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, 3, 1, 1, &alpha, a, CUDA_R_32F, 3, &b,
                        CUDA_R_32F, 1, &beta, c, CUDA_R_32F, 3, compute, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_SUCCESS);
  }
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(exact[i], a[i]);
  EXPECT_EQ(fast[0], 1.0f);
  EXPECT_EQ(fast[1], 1.0f);
  EXPECT_EQ(fast[2], 1.0f + std::ldexp(1.0f, -9));
}

// A NaN whose payload is only in the bits TF32 drops stays a NaN (rounding must not carry it
// into an infinity); infinities stay infinite.
TEST(EmuCublas, Tf32KeepsNanAndInfinity) {
  Stream stream;
  Handle handle(stream.s);
  const std::uint32_t low_nan_bits = 0x7f800001u;
  float a[2];
  std::memcpy(&a[0], &low_nan_bits, 4);
  a[1] = -std::numeric_limits<float>::infinity();
  const float b = 1.0f, alpha = 1.0f, beta = 0.0f;
  float c[2] = {0.0f, 0.0f};
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 1, &alpha, a, CUDA_R_32F, 2,
                            &b, CUDA_R_32F, 1, &beta, c, CUDA_R_32F, 2,
                            CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_TRUE(std::isnan(c[0])) << c[0];
  EXPECT_EQ(c[1], -std::numeric_limits<float>::infinity());
}

// On random data the fast compute types match a reference on rounded operands to fp32
// accumulation accuracy, and miss the exact one by far more: the rounding is really applied.
TEST(EmuCublas, FastComputeTypesRoundRandomOperands) {
  std::mt19937 rng(5);
  const std::int64_t m = 9, n = 7, k = 33;
  struct Case {
    cublasComputeType_t compute;
    double (*round)(double);
  };
  for (const Case& c :
       {Case{CUBLAS_COMPUTE_32F_FAST_TF32, tf32}, Case{CUBLAS_COMPUTE_32F_FAST_16BF, bf16}}) {
    SCOPED_TRACE(static_cast<int>(c.compute));
    Stream stream;
    Handle handle(stream.s);
    Matrix A(k, m, k + 1, rng), B(n, k, n, rng), C(m, n, m, rng);
    const Matrix C0 = C;
    const float alpha = 1.0f, beta = 0.5f;
    ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_T, CUBLAS_OP_T, m, n, k, &alpha, A.v.data(),
                              CUDA_R_32F, A.ld, B.v.data(), CUDA_R_32F, B.ld, &beta, C.v.data(),
                              CUDA_R_32F, m, c.compute, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    std::vector<double> rounded, exact, mag, mag_exact;
    reference(A, CUBLAS_OP_T, B, CUBLAS_OP_T, C0, 0, m, n, k, alpha, beta, c.round, rounded, mag);
    reference(A, CUBLAS_OP_T, B, CUBLAS_OP_T, C0, 0, m, n, k, alpha, beta, identity, exact,
              mag_exact);
    double worst_exact = 0, worst_allowed = 0;
    for (std::int64_t t = 0; t < m * n; ++t) {
      EXPECT_NEAR(C.v[t], rounded[t], fp32_bound(k, mag[t])) << t;
      worst_exact = std::max(worst_exact, std::fabs(C.v[t] - exact[t]));
      worst_allowed = std::max(worst_allowed, fp32_bound(k, mag[t]));
    }
    EXPECT_GT(worst_exact, 10 * worst_allowed) << "operands were not rounded";
  }
}

TEST(EmuCublas, Bf16InputsWithFp32AccumulationAndBf16OrFp32Output) {
  std::mt19937 rng(6);
  Stream stream;
  Handle handle(stream.s);
  const std::int64_t m = 5, n = 6, k = 17;
  Matrix A(m, k, m + 1, rng), B(k, n, k, rng), Cz(m, n, m, rng);
  for (float& x : A.v)
    x = static_cast<float>(bf16(x));
  for (float& x : B.v)
    x = static_cast<float>(bf16(x));
  std::vector<__nv_bfloat16> a(A.v.size()), b(B.v.size()), c16(m * n);
  for (std::size_t t = 0; t < a.size(); ++t)
    a[t] = __float2bfloat16_rn(A.v[t]);
  for (std::size_t t = 0; t < b.size(); ++t)
    b[t] = __float2bfloat16_rn(B.v[t]);
  std::vector<float> c32(m * n, std::numeric_limits<float>::quiet_NaN());
  const float alpha = 1.0f, beta = 0.0f;
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, a.data(),
                            CUDA_R_16BF, A.ld, b.data(), CUDA_R_16BF, k, &beta, c32.data(),
                            CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, a.data(),
                            CUDA_R_16BF, A.ld, b.data(), CUDA_R_16BF, k, &beta, c16.data(),
                            CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  std::vector<double> ref, mag;
  reference(A, CUBLAS_OP_N, B, CUBLAS_OP_N, Cz, 0, m, n, k, alpha, 0.0, identity, ref, mag);
  for (std::int64_t t = 0; t < m * n; ++t) {
    EXPECT_NEAR(c32[t], ref[t], fp32_bound(k, mag[t])) << t;
    // The bf16 output is the fp32 result rounded once to nearest even.
    EXPECT_EQ(__bfloat162float(c16[t]), static_cast<float>(bf16(c32[t]))) << t;
  }
}

TEST(EmuCublas, Fp64ComputesInDouble) {
  std::mt19937 rng(7);
  Stream stream;
  Handle handle(stream.s);
  const std::int64_t m = 4, n = 3, k = 50;
  Matrix A(m, k, m, rng), B(n, k, n + 2, rng), C(m, n, m + 1, rng);
  std::vector<double> a(A.v.begin(), A.v.end()), b(B.v.begin(), B.v.end()),
      c(C.v.begin(), C.v.end());
  for (std::size_t t = 0; t < a.size(); ++t)
    a[t] += 1e-12 * static_cast<double>(t);  // below fp32 resolution
  const double alpha = 0.5, beta = 2.0;
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &alpha, a.data(),
                            CUDA_R_64F, m, b.data(), CUDA_R_64F, B.ld, &beta, c.data(), CUDA_R_64F,
                            C.ld, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      long double s = 0;
      for (std::int64_t l = 0; l < k; ++l)
        s += static_cast<long double>(a[i + l * m]) * B.at(0, j, l);
      const long double ref = alpha * s + beta * static_cast<long double>(C.at(0, i, j));
      EXPECT_NEAR(c[i + j * C.ld], static_cast<double>(ref), 1e-14) << i << "," << j;
    }
}

TEST(EmuCublas, StridedBatchedWithPaddingAndABroadcastOperand) {
  std::mt19937 rng(8);
  Stream stream;
  Handle handle(stream.s);
  const std::int64_t m = 5, n = 3, k = 7, batch = 4;
  Matrix A(m, k, m + 2, rng, batch, (m + 2) * k + 11);
  Matrix B(n, k, n, rng, 1);  // stride 0: one B for every batch entry
  Matrix C(m, n, m + 1, rng, batch, (m + 1) * n + 5);
  const Matrix C0 = C;
  const float alpha = -1.0f, beta = 0.25f;
  ASSERT_EQ(cublasGemmStridedBatchedEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &alpha,
                                          A.v.data(), CUDA_R_32F, A.ld, A.stride, B.v.data(),
                                          CUDA_R_32F, B.ld, 0, &beta, C.v.data(), CUDA_R_32F, C.ld,
                                          C.stride, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(C.v, C0.v);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  Matrix Bb = B;  // B seen through each batch entry (stride 0)
  Bb.stride = 0;
  std::vector<double> ref, mag;
  for (std::int64_t b = 0; b < batch; ++b) {
    reference(A, CUBLAS_OP_N, Bb, CUBLAS_OP_T, C0, b, m, n, k, alpha, beta, identity, ref, mag);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        EXPECT_NEAR(C.at(b, i, j), ref[i + j * m], fp32_bound(k, mag[i + j * m]))
            << b << ":" << i << "," << j;
  }
  // Everything between the batch entries' m x n boxes is untouched.
  for (std::size_t t = 0; t < C.v.size(); ++t) {
    const std::int64_t off = static_cast<std::int64_t>(t) % C.stride;
    const bool inside = off < C.ld * n && off % C.ld < m;
    if (!inside) {
      EXPECT_EQ(C.v[t], C0.v[t]) << t;
    }
  }
}

TEST(EmuCublas, PointerModeDeviceReadsScalarsWhenTheWorkRuns) {
  Stream stream;
  Handle handle(stream.s);
  cublasPointerMode_t mode;
  ASSERT_EQ(cublasGetPointerMode(handle.h, &mode), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(mode, CUBLAS_POINTER_MODE_HOST);  // the default kfuse relies on
  const float a = 3.0f, b = 2.0f;
  float c_host = 0.0f, c_device = 0.0f;
  float alpha = 1.0f, beta = 0.0f;
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, &a, CUDA_R_32F, 1,
                            &b, CUDA_R_32F, 1, &beta, &c_host, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSetPointerMode(handle.h, CUBLAS_POINTER_MODE_DEVICE), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasGemmEx_64(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, &a, CUDA_R_32F, 1,
                            &b, CUDA_R_32F, 1, &beta, &c_device, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  alpha = 10.0f;  // host mode copied 1 at the call; device mode reads 10 when it runs
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(c_host, 6.0f);
  EXPECT_EQ(c_device, 60.0f);
}

TEST(EmuCublas, InvalidValuesAreRejectedAtCallTimeAndQueueNothing) {
  Stream stream;
  Handle handle(stream.s);
  std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64, 7.0f);
  const float alpha = 1.0f, beta = 0.0f;
  // m = 4, n = 3, k = 2 unless a case changes them.
  struct Case {
    const char* what;
    cublasOperation_t ta, tb;
    std::int64_t m, n, k, lda, ldb, ldc, batch;
    cublasStatus_t expect;
  };
  const cublasOperation_t N = CUBLAS_OP_N, T = CUBLAS_OP_T;
  const Case cases[] = {
      {"valid N N", N, N, 4, 3, 2, 4, 2, 4, 1, CUBLAS_STATUS_SUCCESS},
      {"valid T T", T, T, 4, 3, 2, 2, 3, 4, 1, CUBLAS_STATUS_SUCCESS},
      {"m < 0", N, N, -1, 3, 2, 4, 2, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"n < 0", N, N, 4, -1, 2, 4, 2, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"k < 0", N, N, 4, 3, -1, 4, 2, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"batch < 0", N, N, 4, 3, 2, 4, 2, 4, -1, CUBLAS_STATUS_INVALID_VALUE},
      {"lda < m (N)", N, N, 4, 3, 2, 3, 2, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"lda < k (T)", T, N, 4, 3, 2, 1, 2, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"ldb < k (N)", N, N, 4, 3, 2, 4, 1, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"ldb < n (T)", N, T, 4, 3, 2, 4, 2, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"ldc < m", N, N, 4, 3, 2, 4, 2, 3, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"lda 0 with m 0", N, N, 0, 3, 2, 0, 2, 1, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"ldc 0 with m 0", N, N, 0, 3, 2, 1, 2, 0, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"unknown op", CUBLAS_OP_CONJG, N, 4, 3, 2, 4, 2, 4, 1, CUBLAS_STATUS_INVALID_VALUE},
      {"m 0: nothing to do", N, N, 0, 3, 2, 1, 2, 1, 1, CUBLAS_STATUS_SUCCESS},
      {"batch 0: nothing to do", N, N, 4, 3, 2, 4, 2, 4, 0, CUBLAS_STATUS_SUCCESS},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.what);
    std::fill(c.begin(), c.end(), 7.0f);
    EXPECT_EQ(cublasGemmStridedBatchedEx_64(handle.h, t.ta, t.tb, t.m, t.n, t.k, &alpha, a.data(),
                                            CUDA_R_32F, t.lda, 0, b.data(), CUDA_R_32F, t.ldb, 0,
                                            &beta, c.data(), CUDA_R_32F, t.ldc, 0, t.batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              t.expect);
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    const bool ran = t.expect == CUBLAS_STATUS_SUCCESS && t.m > 0 && t.batch > 0;
    EXPECT_EQ(c[0], ran ? 2.0f : 7.0f);
  }
  // Null scalars, and type combinations outside cublasGemmEx's table.
  EXPECT_EQ(cublasGemmEx_64(handle.h, N, N, 4, 3, 2, nullptr, a.data(), CUDA_R_32F, 4, b.data(),
                            CUDA_R_32F, 2, &beta, c.data(), CUDA_R_32F, 4, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasGemmEx_64(handle.h, N, N, 4, 3, 2, &alpha, a.data(), CUDA_R_32F, 4, b.data(),
                            CUDA_R_16BF, 2, &beta, c.data(), CUDA_R_32F, 4, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasGemmEx_64(handle.h, N, N, 4, 3, 2, &alpha, a.data(), CUDA_R_32F, 4, b.data(),
                            CUDA_R_32F, 2, &beta, c.data(), CUDA_R_32F, 4, CUBLAS_COMPUTE_64F,
                            CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasGemmEx_64(handle.h, N, N, 4, 3, 2, &alpha, a.data(), CUDA_R_16BF, 4, b.data(),
                            CUDA_R_16BF, 2, &beta, c.data(), CUDA_R_32F, 4,
                            CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(c[0], 7.0f);
}

TEST(EmuCublas, HandlesAndStatusNames) {
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSetStream(h, nullptr), CUBLAS_STATUS_NOT_INITIALIZED);  // destroyed
  const float one = 1.0f;
  float x = 1.0f;
  EXPECT_EQ(cublasGemmEx_64(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &x, CUDA_R_32F, 1, &x,
                            CUDA_R_32F, 1, &one, &x, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_SUCCESS), "CUBLAS_STATUS_SUCCESS");
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED");
  EXPECT_STREQ(cublasGetStatusString(CUBLAS_STATUS_SUCCESS), "success");
  EXPECT_STRNE(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE), "");
  EXPECT_STREQ(cublasGetStatusName(static_cast<cublasStatus_t>(12345)), "unrecognized status");
}

}  // namespace
