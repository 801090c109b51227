// The CPU matrix products shared by the families' CPU paths (the plain cpu::gemm and
// the BLAS's cpu::sgemm), against a triple loop on small integers (exact: every
// product and partial sum is an integer below 2^24, so any summation order gives the
// same float), for every transpose combination and padded ld.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "src/core/blas.hpp"
#include "src/core/gemm.hpp"

namespace kfuse::cpu {
namespace {

// C = 2 op(A) op(B) - C for every transpose combination, with padded leading
// dimensions, against a triple loop; the padding of C stays untouched. `product` is
// called as product(ta, tb, m, n, k, A, lda, B, ldb, C, ldc).
template <class Product>
void check_small_integers(std::int64_t m, std::int64_t n, std::int64_t k, Product product) {
  for (Trans ta : {Trans::No, Trans::Yes})
    for (Trans tb : {Trans::No, Trans::Yes}) {
      const std::int64_t lda = (ta == Trans::No ? k : m) + 2;
      const std::int64_t ldb = (tb == Trans::No ? n : k) + 1, ldc = n + 3;
      std::vector<float> A((ta == Trans::No ? m : k) * lda), B((tb == Trans::No ? k : n) * ldb);
      for (std::size_t t = 0; t < A.size(); ++t)
        A[t] = float(int(t * 7 % 11) - 5);
      for (std::size_t t = 0; t < B.size(); ++t)
        B[t] = float(int(t * 5 % 9) - 4);
      std::vector<float> C(m * ldc, 2.0f);
      product(ta, tb, m, n, k, A.data(), lda, B.data(), ldb, C.data(), ldc);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double ref = 0;
          for (std::int64_t p = 0; p < k; ++p)
            ref += (ta == Trans::No ? A[i * lda + p] : A[p * lda + i]) *
                   (tb == Trans::No ? B[p * ldb + j] : B[j * ldb + p]);
          ASSERT_EQ(C[i * ldc + j], float(2 * ref - 2)) << m << "x" << n << " " << i << "," << j;
        }
      for (std::int64_t i = 0; i < m; ++i)  // padding untouched
        for (std::int64_t j = n; j < ldc; ++j)
          ASSERT_EQ(C[i * ldc + j], 2.0f);
    }
}

TEST(CpuGemm, ExactOnSmallIntegersForEveryTranspose) {
  check_small_integers(
      7, 13, 5,
      [](Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* A,
         std::int64_t lda, const float* B, std::int64_t ldb, float* C,
         std::int64_t ldc) { gemm<float>(ta, tb, m, n, k, 2.0, A, lda, B, ldb, -1.0, C, ldc); });
}

TEST(CpuGemm, BetaZeroDoesNotReadC) {
  std::vector<double> A = {1, 2, 3, 4}, B = {5, 6, 7, 8};
  std::vector<double> C(4, std::numeric_limits<double>::quiet_NaN());
  gemm<double>(Trans::No, Trans::No, 2, 2, 2, 1.0, A.data(), 2, B.data(), 2, 0.0, C.data(), 2);
  EXPECT_EQ(C, (std::vector<double>{19, 22, 43, 50}));
}

TEST(CpuSgemm, ExactOnSmallIntegersForEveryTranspose) {
  // Sizes past the BLAS's register blocks and its small-matrix paths.
  for (const std::int64_t m : {1, 7, 37})
    for (const std::int64_t n : {1, 13, 70})
      check_small_integers(
          m, n, 29,
          [](Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* A,
             std::int64_t lda, const float* B, std::int64_t ldb, float* C,
             std::int64_t ldc) { sgemm(ta, tb, m, n, k, 2.0f, A, lda, B, ldb, -1.0f, C, ldc); });
}

TEST(CpuSgemm, BetaZeroDoesNotReadC) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> A = {1, 2, 3, 4}, B = {5, 6, 7, 8}, C(4, nan);
  sgemm(Trans::No, Trans::No, 2, 2, 2, 1.0f, A.data(), 2, B.data(), 2, 0.0f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{19, 22, 43, 50}));
}

TEST(CpuSgemm, EmptyInnerDimensionScalesC) {
  // k == 0 (an expert's weight gradient over no rows): C = beta C, NaN-free for beta 0,
  // and the BLAS's check lda >= 1 is not tripped by lda = 0.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> C(6, nan);
  sgemm(Trans::Yes, Trans::No, 2, 3, 0, 1.0f, nullptr, 0, nullptr, 0, 0.0f, C.data(), 3);
  EXPECT_EQ(C, std::vector<float>(6, 0.0f));
  std::vector<float> D = {1, 2, 3, 4, 5, 6};
  sgemm(Trans::No, Trans::No, 2, 3, 0, 1.0f, nullptr, 0, nullptr, 3, 2.0f, D.data(), 3);
  EXPECT_EQ(D, (std::vector<float>{2, 4, 6, 8, 10, 12}));
}

TEST(CpuSgemm, DescribesTheLibrary) {
  EXPECT_NE(blas_description().find("OpenBLAS"), std::string::npos) << blas_description();
}

}  // namespace
}  // namespace kfuse::cpu
