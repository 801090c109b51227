// Per-element and per-row math of the mixture-of-experts family, shared by the CPU
// path and the CUDA kernels (and unit-tested on the CPU): top-k keys and insertion
// with ties to the lower index, the router's gates, SwiGLU and its derivative, the
// plan's capacity/padding arithmetic and index helpers, and the grouped GEMM's tile
// schedule.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/core/hd.hpp"
#include "kfuse/moe.hpp"

namespace kfuse::detail {

// ------------------------------------------------------------------ top-k keys

// A float as an unsigned key with the same order: larger value, larger key. -0 is
// +0 (they tie as floats); NaN ranks just below -inf. The keys of numbers are
// >= topk_key(-inf) = 0x007fffff, NaN's is 0x007ffffe, so 0 is free as a "taken" mark.
KFUSE_HD std::uint32_t topk_key(float v) {
  if (v != v) return 0x007ffffeu;
  if (v == 0.0f) v = 0.0f;
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof(b));
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Key and index in one 64-bit word whose order is the selection order: the larger
// key first and, among equal keys, the lower index first. Distinct indices make
// every packed value distinct: the order is strict.
KFUSE_HD std::uint64_t topk_pack(std::uint32_t key, std::int32_t index) {
  return (static_cast<std::uint64_t>(key) << 32) |
         static_cast<std::uint64_t>(0xffffffffu - static_cast<std::uint32_t>(index));
}
KFUSE_HD std::int32_t topk_index(std::uint64_t packed) {
  return static_cast<std::int32_t>(0xffffffffu - static_cast<std::uint32_t>(packed & 0xffffffffu));
}
constexpr std::uint64_t kTopkTaken = 0;  // below every packed number

// Inserts `candidate` into list[0..count), sorted by decreasing packed value and
// holding at most k entries; returns the new count.
KFUSE_HD int topk_insert(std::uint64_t* list, int k, int count, std::uint64_t candidate) {
  if (count == k && candidate <= list[k - 1]) return count;
  int i = count < k ? count : k - 1;
  while (i > 0 && list[i - 1] < candidate) {
    list[i] = list[i - 1];
    --i;
  }
  list[i] = candidate;
  return count < k ? count + 1 : k;
}

// ------------------------------------------------------------------ router gates

// One term exp(l - m) of SoftmaxTopK's sum over all E experts, m the row's largest
// logit. A row whose largest logit is -inf has every logit -inf or NaN: its -inf
// terms are 0 (not exp(-inf + inf) = NaN), a NaN logit keeps the sum NaN.
KFUSE_HD float router_softmax_term(float l, float m) {
  return l == -INFINITY ? 0.0f : expf(l - m);
}

// The gates of one row from its k selected logits v[0..k) (by decreasing key, so
// v[0] is the row's largest logit) and, for SoftmaxTopK, the row's sum over all E
// experts of router_softmax_term(l_e, v[0]). fp32 throughout. A selected -inf gets
// gate 0; when every selected logit is -inf (v[0] = -inf) all k gates are 0, or
// NaN where a NaN logit enters the softmax (the sum over all E, or the k selected).
KFUSE_HD void router_gates(RouterMode mode, bool renormalize, const float* v, int k, float sum_all,
                           float* gates) {
  const float m = v[0];
  const bool over_k = mode == RouterMode::TopKSoftmax || renormalize;
  if (m == -INFINITY) {
    bool nan = !over_k && sum_all != sum_all;
    for (int j = 0; j < k; ++j)
      nan = nan || (over_k && v[j] != v[j]);
    for (int j = 0; j < k; ++j)
      gates[j] = nan ? NAN : 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int j = 0; j < k; ++j) {
    gates[j] = expf(v[j] - m);
    sum += gates[j];
  }
  const float denominator = over_k ? sum : sum_all;
  for (int j = 0; j < k; ++j)
    gates[j] = gates[j] / denominator;
}

// ------------------------------------------------------------------ SwiGLU

KFUSE_HD float moe_sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}
KFUSE_HD float moe_silu(float x) {
  return x * moe_sigmoid(x);
}
// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
KFUSE_HD float moe_silu_grad(float x) {
  const float s = moe_sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}
KFUSE_HD float swiglu(float h1, float h3) {
  return moe_silu(h1) * h3;
}
// a = silu(h1) h3: dh1 = da h3 silu'(h1), dh3 = da silu(h1).
KFUSE_HD void swiglu_backward(float h1, float h3, float da, float* dh1, float* dh3) {
  const float s = moe_sigmoid(h1);
  *dh1 = da * h3 * (s * (1.0f + h1 * (1.0f - s)));
  *dh3 = da * (h1 * s);
}

// ------------------------------------------------------------------ plan arithmetic

KFUSE_HD std::int64_t moe_ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}
KFUSE_HD std::int64_t round_up(std::int64_t x, std::int64_t multiple) {
  return moe_ceil_div(x, multiple) * multiple;
}
// Rows an expert keeps of the `routed` slots sent to it (capacity 0: no limit).
KFUSE_HD std::int64_t kept_rows(std::int64_t routed, std::int64_t capacity) {
  return capacity > 0 && routed > capacity ? capacity : routed;
}
// Rows an expert occupies in a permuted buffer: kept rows rounded up to pad_to.
KFUSE_HD std::int64_t padded_rows(std::int64_t routed, std::int64_t capacity, std::int64_t pad_to) {
  return round_up(kept_rows(routed, capacity), pad_to);
}

// An upper bound of offsets[E] over every possible ids (see MoePlanLayout::rows):
// at most min(T k, E capacity) rows are kept, and each of at most min(E, kept)
// non-empty experts adds fewer than pad_to padding rows; with a capacity no expert
// exceeds round_up(capacity, pad_to).
inline std::int64_t plan_rows_bound(std::int64_t tokens, std::int64_t top_k, std::int64_t experts,
                                    std::int64_t pad_to, std::int64_t capacity) {
  const std::int64_t slots = tokens * top_k;
  const std::int64_t kept = capacity > 0 && experts * capacity < slots ? experts * capacity : slots;
  std::int64_t rows = kept + (pad_to - 1) * (experts < kept ? experts : kept);
  if (capacity > 0) {
    const std::int64_t cap_rows = experts * round_up(capacity, pad_to);
    if (cap_rows < rows) rows = cap_rows;
  }
  return rows;
}

// Slot s = t * k + j: its token, its choice, the offset of its gate in a [T x k]
// matrix with leading dimension ld.
KFUSE_HD std::int64_t slot_token(std::int64_t slot, std::int64_t top_k) {
  return slot / top_k;
}
KFUSE_HD std::int64_t slot_gate_offset(std::int64_t slot, std::int64_t top_k, std::int64_t ld) {
  return (slot / top_k) * ld + slot % top_k;
}

// ------------------------------------------------------------------ grouped GEMM schedule

// Blocks of tile_rows rows, each within one expert: expert e has
// ceil(count_e / tile_rows) tiles. Their number never exceeds
//   ceil(rows / tile_rows) + min(E, rows)
// (each non-empty expert wastes less than one tile), a bound known on the host.
inline std::int64_t tile_bound(std::int64_t rows, std::int64_t experts, std::int64_t tile_rows) {
  return moe_ceil_div(rows, tile_rows) + (experts < rows ? experts : rows);
}

// With tile_start[e] = the first tile of expert e (an exclusive scan of the tile
// counts, tile_start[E] = all tiles) and tile < tile_start[E]: the expert e whose
// tiles [tile_start[e], tile_start[e + 1]) contain `tile`. Empty experts (equal
// starts) are skipped: the search finds the last e with tile_start[e] <= tile.
KFUSE_HD int find_tile_expert(const std::int32_t* tile_start, int experts, std::int64_t tile) {
  int lo = 0, hi = experts;  // answer in [lo, hi): tile_start[lo] <= tile
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    if (tile_start[mid] <= tile)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

// ------------------------------------------------------------------ row kernels' shape

// Memory-bound row kernels give each row a power-of-two group of threads, enough
// to cover its 16-byte vectors (at most a whole block), and fill the block with rows.
struct RowShape {
  int threads_per_row = 32;
  int rows_per_block = 8;
};
inline RowShape row_shape(std::int64_t vectors_per_row, int block_threads = 256) {
  RowShape s;
  s.threads_per_row = 32;
  while (s.threads_per_row < block_threads && s.threads_per_row < vectors_per_row)
    s.threads_per_row *= 2;
  s.rows_per_block = block_threads / s.threads_per_row;
  return s;
}

}  // namespace kfuse::detail
