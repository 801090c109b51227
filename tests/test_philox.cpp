// Philox4x32-10 against the Random123 known-answer vectors, and the uniform
// conversions built on it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>

#include "kernels/core/philox.hpp"

namespace kfuse::detail {
namespace {

struct Kat {
  PhiloxBlock counter;
  std::uint32_t key0, key1;
  PhiloxBlock expected;
};

TEST(Philox, Random123KnownAnswers) {
  // From the kat_vectors file of the Random123 distribution (D. E. Shaw Research).
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const Kat& k : kats) {
    const PhiloxBlock got = philox4x32_10(k.counter, k.key0, k.key1);
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(got.v[i], k.expected.v[i]) << "word " << i;
  }
}

TEST(Philox, DrawIsAPureFunctionOfSeedStreamAndIndex) {
  const PhiloxBlock a = philox_draw(42, 1, 1000), b = philox_draw(42, 1, 1000);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(a.v[i], b.v[i]);
  // Changing any coordinate changes the draw.
  const PhiloxBlock others[] = {philox_draw(43, 1, 1000), philox_draw(42, 2, 1000),
                                philox_draw(42, 1, 1001), philox_draw(42, 1, 1000ull << 32)};
  for (const PhiloxBlock& o : others)
    EXPECT_NE(o.v[0], a.v[0]);
}

TEST(Philox, UniformsAreInRangeWithTheRightMoments) {
  const int n = 200000;
  double sum = 0.0, sum2 = 0.0;
  float lo = 1.0f, hi = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float u = uniform01(philox_draw(7, 0, static_cast<std::uint64_t>(i)).v[0]);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
    sum2 += double(u) * u;
  }
  EXPECT_GE(lo, 0.0f);
  EXPECT_LT(hi, 1.0f);
  const double mean = sum / n, var = sum2 / n - mean * mean;
  // Standard errors: mean 1/sqrt(12 n) ~ 6.5e-4; a bound of 5 of them.
  EXPECT_NEAR(mean, 0.5, 5 * 6.5e-4);
  EXPECT_NEAR(var, 1.0 / 12.0, 5e-3);
  EXPECT_EQ(uniform01(0u), 0.0f);
  EXPECT_EQ(uniform01(0xffffffffu), 1.0f - 1.0f / 16777216.0f);
  EXPECT_EQ(uniform01_double(0u, 0u), 0.0);
  EXPECT_LT(uniform01_double(0xffffffffu, 0xffffffffu), 1.0);
}

}  // namespace
}  // namespace kfuse::detail
