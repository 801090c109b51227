// The CPU matrix products shared by the families' CPU paths (the plain cpu::gemm and
// the BLAS's cpu::sgemm), against a triple loop on small integers (exact: every
// product and partial sum is an integer below 2^24, so any summation order gives the
// same float), for every transpose combination and padded ld.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "../src/cpu/blas.hpp"
#include "../src/cpu/gemm.hpp"

namespace kfuse::cpu {
namespace {

TEST(CpuGemm, ExactOnSmallIntegersForEveryTranspose) {
  const std::int64_t m = 7, n = 13, k = 5;
  for (Trans ta : {Trans::No, Trans::Yes})
    for (Trans tb : {Trans::No, Trans::Yes}) {
      const std::int64_t lda = (ta == Trans::No ? k : m) + 2, ldb = (tb == Trans::No ? n : k) + 1;
      const std::int64_t ldc = n + 3;
      std::vector<float> A((ta == Trans::No ? m : k) * lda), B((tb == Trans::No ? k : n) * ldb);
      for (std::size_t t = 0; t < A.size(); ++t)
        A[t] = float(int(t * 7 % 11) - 5);
      for (std::size_t t = 0; t < B.size(); ++t)
        B[t] = float(int(t * 5 % 9) - 4);
      std::vector<float> C(m * ldc, 2.0f);
      gemm<float>(ta, tb, m, n, k, 2.0, A.data(), lda, B.data(), ldb, -1.0, C.data(), ldc);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double ref = 0;
          for (std::int64_t p = 0; p < k; ++p)
            ref += (ta == Trans::No ? A[i * lda + p] : A[p * lda + i]) *
                   (tb == Trans::No ? B[p * ldb + j] : B[j * ldb + p]);
          EXPECT_EQ(C[i * ldc + j], float(2 * ref - 2)) << i << "," << j;
        }
      for (std::int64_t i = 0; i < m; ++i)  // padding untouched
        for (std::int64_t j = n; j < ldc; ++j)
          EXPECT_EQ(C[i * ldc + j], 2.0f);
    }
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
      for (Trans ta : {Trans::No, Trans::Yes})
        for (Trans tb : {Trans::No, Trans::Yes}) {
          const std::int64_t k = 29;
          const std::int64_t lda = (ta == Trans::No ? k : m) + 2;
          const std::int64_t ldb = (tb == Trans::No ? n : k) + 1, ldc = n + 3;
          std::vector<float> A((ta == Trans::No ? m : k) * lda), B((tb == Trans::No ? k : n) * ldb);
          for (std::size_t t = 0; t < A.size(); ++t)
            A[t] = float(int(t * 7 % 11) - 5);
          for (std::size_t t = 0; t < B.size(); ++t)
            B[t] = float(int(t * 5 % 9) - 4);
          std::vector<float> C(m * ldc, 2.0f);
          sgemm(ta, tb, m, n, k, 2.0f, A.data(), lda, B.data(), ldb, -1.0f, C.data(), ldc);
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
              double ref = 0;
              for (std::int64_t p = 0; p < k; ++p)
                ref += (ta == Trans::No ? A[i * lda + p] : A[p * lda + i]) *
                       (tb == Trans::No ? B[p * ldb + j] : B[j * ldb + p]);
              ASSERT_EQ(C[i * ldc + j], float(2 * ref - 2))
                  << m << "x" << n << " " << i << "," << j;
            }
          for (std::int64_t i = 0; i < m; ++i)  // padding untouched
            for (std::int64_t j = n; j < ldc; ++j)
              ASSERT_EQ(C[i * ldc + j], 2.0f);
        }
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
