// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator, a pure function of (counter, key). Any element of a
// random matrix can be drawn independently, in any order, on the CPU or the GPU,
// and a seed gives bit-identical draws on both.
#pragma once

#include <cstdint>

#include "kernels/core/hd.hpp"

namespace kfuse::detail {

struct PhiloxBlock {
  std::uint32_t v[4];
};

KFUSE_HD std::uint32_t mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  const std::uint64_t product = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(product >> 32);
  return static_cast<std::uint32_t>(product);
}

// Ten rounds of Philox4x32 on `counter` under `key`.
KFUSE_HD PhiloxBlock philox4x32_10(PhiloxBlock counter, std::uint32_t key0, std::uint32_t key1) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0 = 0, hi1 = 0;
    const std::uint32_t lo0 = mulhilo32(kMul0, c0, &hi0);
    const std::uint32_t lo1 = mulhilo32(kMul1, c2, &hi1);
    const std::uint32_t n0 = hi1 ^ c1 ^ key0;
    const std::uint32_t n2 = hi0 ^ c3 ^ key1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// The project's keying convention: a 64-bit seed is the key; a stream id and a
// 64-bit element index fill the counter. draw(seed, stream, index) gives four
// independent 32-bit words for element `index` of stream `stream`.
KFUSE_HD PhiloxBlock philox_draw(std::uint64_t seed, std::uint32_t stream, std::uint64_t index,
                                 std::uint32_t lane_block = 0) {
  const PhiloxBlock counter{{static_cast<std::uint32_t>(index),
                             static_cast<std::uint32_t>(index >> 32), stream, lane_block}};
  return philox4x32_10(counter, static_cast<std::uint32_t>(seed),
                       static_cast<std::uint32_t>(seed >> 32));
}

// A float uniform in [0, 1) from the top 24 bits: exact in fp32, hence identical
// on every compiler and device.
KFUSE_HD float uniform01(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// A double uniform in [0, 1) from 53 bits of two words.
KFUSE_HD double uniform01_double(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 21) | (lo >> 11);
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

}  // namespace kfuse::detail
