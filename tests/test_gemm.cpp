// The CPU matrix product shared by the families' CPU paths, against a triple loop
// on small integers (exact), for every transpose combination and padded ld.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

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

}  // namespace
}  // namespace kfuse::cpu
