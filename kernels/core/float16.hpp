// bf16 and fp16 <-> float conversions, bit-exact and identical on host and device
// (round to nearest even; NaN stays NaN; fp16 overflow gives inf, underflow
// subnormals then 0). Kernels on the hot path may use the cuda_bf16/cuda_fp16
// intrinsics instead, which round the same way.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/core/hd.hpp"
#include "kfuse/view.hpp"

namespace kfuse::detail {

KFUSE_HD std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
KFUSE_HD float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

KFUSE_HD float to_float(bf16 v) {
  return bits_float(static_cast<std::uint32_t>(v.bits) << 16);
}

KFUSE_HD bf16 to_bf16(float f) {
  const std::uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // ties to even
  return bf16{static_cast<std::uint16_t>((u + rounding) >> 16)};
}

KFUSE_HD float to_float(f16 h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1fu;
  std::uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (man << 13));  // inf, NaN
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return bits_float(sign);  // +-0
  // Subnormal: value = man * 2^-24.
  const float magnitude = static_cast<float>(man) * (1.0f / 16777216.0f);
  return sign ? -magnitude : magnitude;
}

KFUSE_HD f16 to_f16(float f) {
  const std::uint32_t u = float_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{static_cast<std::uint16_t>(sign | 0x7e00u)};   // NaN
  if (a >= 0x477ff000u) return f16{static_cast<std::uint16_t>(sign | 0x7c00u)};  // >= 65520: inf
  if (a < 0x38800000u) {
    // Below 2^-14: a subnormal fp16 (or 0). Round a * 2^24 to the nearest integer, even ties.
    const float scaled = bits_float(a) * 16777216.0f;  // exact: a power-of-two scale
    std::uint32_t q = static_cast<std::uint32_t>(scaled);
    const float rest = scaled - static_cast<float>(q);
    if (rest > 0.5f || (rest == 0.5f && (q & 1u))) ++q;
    return f16{static_cast<std::uint16_t>(sign | q)};
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  const std::uint32_t rounding = 0xfffu + ((a >> 13) & 1u);
  const std::uint32_t r = (a + rounding) >> 13;  // exponent carries into place
  return f16{static_cast<std::uint16_t>(sign | (r - (112u << 10)))};
}

// Generic forms for templated code.
KFUSE_HD float to_float(float v) {
  return v;
}
KFUSE_HD double to_float(double v) {
  return v;
}
template <class T>
KFUSE_HD T from_float(float v);
template <>
KFUSE_HD float from_float<float>(float v) {
  return v;
}
template <>
KFUSE_HD bf16 from_float<bf16>(float v) {
  return to_bf16(v);
}
template <>
KFUSE_HD f16 from_float<f16>(float v) {
  return to_f16(v);
}

}  // namespace kfuse::detail
