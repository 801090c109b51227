// bf16 / fp16 conversions: exhaustive round trips and rounding of ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/core/float16.hpp"

namespace kfuse::detail {
namespace {

TEST(Float16, EveryFp16RoundTrips) {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const f16 h{static_cast<std::uint16_t>(b)};
    const float f = to_float(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(to_float(to_f16(f))));
      continue;
    }
    EXPECT_EQ(to_f16(f).bits, h.bits) << std::hex << b;
  }
  EXPECT_EQ(to_float(f16{0x3c00}), 1.0f);
  EXPECT_EQ(to_float(f16{0x0001}), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(to_float(f16{0x7bff}), 65504.0f);
}

TEST(Float16, Fp16RoundsToNearestEven) {
  EXPECT_EQ(to_f16(1.0f + std::ldexp(1.0f, -11)).bits, 0x3c00);      // tie -> even (down)
  EXPECT_EQ(to_f16(1.0f + 3 * std::ldexp(1.0f, -11)).bits, 0x3c02);  // tie -> even (up)
  EXPECT_EQ(to_f16(65519.0f).bits, 0x7bff);
  EXPECT_EQ(to_f16(65520.0f).bits, 0x7c00);               // rounds to inf
  EXPECT_EQ(to_f16(std::ldexp(1.0f, -25)).bits, 0x0000);  // tie between 0 and 2^-24 -> 0
  EXPECT_EQ(to_f16(std::ldexp(3.0f, -25)).bits, 0x0002);  // 1.5 * 2^-24 -> 2 * 2^-24
  EXPECT_EQ(to_f16(-2.0f).bits, 0xc000);
}

TEST(Float16, EveryBf16RoundTripsAndTiesGoToEven) {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const bf16 v{static_cast<std::uint16_t>(b)};
    const float f = to_float(v);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(to_float(to_bf16(f))));
      continue;
    }
    EXPECT_EQ(to_bf16(f).bits, v.bits) << std::hex << b;
  }
  EXPECT_EQ(to_bf16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);        // tie -> even (down)
  EXPECT_EQ(to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);    // tie -> even (up)
  EXPECT_EQ(to_bf16(std::numeric_limits<float>::max()).bits, 0x7f80);  // rounds to inf
}

}  // namespace
}  // namespace kfuse::detail
