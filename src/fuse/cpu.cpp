// CPU path of the fusion family. The values are defined by the chains of
// kernels/fuse/math.hpp (the CUDA kernels compute the same bits); this file only lays the
// work out for a CPU: OpenMP over rows or column strips, mapped rows staged once,
// the random matrices packed into 16-column strips so that the fma chains run
// 16 columns at a time in vector registers, and drawn once per context (its draw
// cache, src/core/lru_cache.hpp: a pure function of seed, stream, distribution, width
// and l). As in the Gaussian family, the hot loops are compiled once per instruction
// set (the build's baseline, AVX2+FMA, AVX-512; src/core/isa.hpp), chosen at run time
// (KFUSE_CPU_ISA forces one; all give the same bits: std::fma is correctly rounded
// whatever the instruction set, only slower without FMA).
// This file is compiled with -ffp-contract=off (CMakeLists.txt).
#include "src/fuse/cpu.hpp"
#include "src/core/blas.hpp"
#include "src/core/fft.hpp"
#include "src/core/isa.hpp"
#include "src/core/lru_cache.hpp"
#include "src/core/openmp.hpp"

#include <algorithm>
#include <complex>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>
#ifdef KFUSE_CPU_X86_ENTRY_POINTS
#include <immintrin.h>
#endif

namespace kfuse::cpu {
namespace {

using detail::FuseOperand;
using detail::KronProblem;
using detail::ProjectionKind;
using detail::ProjectionProblem;

constexpr int kStrip = 16;  // columns per vector strip
// Rows per register block: 6 x 16 outputs are 12 vector accumulators, enough
// independent chains to keep both FMA pipes busy. Staged rows are padded with zero
// rows to a whole number of blocks, so the inner loop has no row test.
constexpr int kMicroRows = 6;
// Rows staged at once by the exact projection: as many whole register blocks as fit
// kStagedBytes of mapped rows (every strip reads all of them, so they should stay near
// the core), at least one block. A pure layout choice: each output's chain is the same
// whatever the chunk.
constexpr std::int64_t kStagedBytes = std::int64_t(1) << 20;
std::int64_t chunk_rows(std::int64_t chain) {
  const std::int64_t rows =
      kStagedBytes / (std::int64_t(sizeof(float)) * std::max<std::int64_t>(chain, 1));
  return std::max<std::int64_t>(kMicroRows, rows / kMicroRows * kMicroRows);
}

std::int64_t padded_rows(std::int64_t rows) {
  return (rows + kMicroRows - 1) / kMicroRows * kMicroRows;
}
// Below this much work (elementary steps) a loop runs on one thread: a parallel
// region costs more than it saves, and much more on an oversubscribed machine.
constexpr std::int64_t kParallelWork = std::int64_t(1) << 16;
// The same for a pass of one or two operations per element (a copy, a row norm, an
// elementwise product: memory-bound, under a millisecond below this many elements).
// Each parallel region ends in a barrier, and on a loaded machine a barrier waits for
// a descheduled thread's next time slice (milliseconds), far more than such a pass.
constexpr std::int64_t kParallelPass = std::int64_t(1) << 20;

// ------------------------------------------------------------------ random draws

// Philox4x32-10 (kernels/core/philox.hpp) for kQuadBatch consecutive quads of one
// row, each operation written across the lanes so that the compiler vectorises it
// (vpmuludq for the 32 x 32 -> 64-bit products). Counter of quad q: (q, row, stream, 0).
constexpr int kQuadBatch = 8;

KFUSE_CPU_HOT void philox_lanes(std::uint64_t seed, std::uint32_t stream, std::uint64_t row,
                                std::uint64_t quad0, std::uint32_t (&w)[4][kQuadBatch]) {
  // 32-bit words held in 64-bit lanes: the products need no shuffles.
  constexpr std::uint64_t kLow = 0xffffffffull;
  std::uint64_t c0[kQuadBatch], c1[kQuadBatch], c2[kQuadBatch], c3[kQuadBatch];
  for (int t = 0; t < kQuadBatch; ++t) {
    c0[t] = (quad0 + t) & kLow;
    c1[t] = row & kLow;
    c2[t] = stream;
    c3[t] = 0;
  }
  std::uint64_t key0 = seed & kLow, key1 = seed >> 32;
  for (int round = 0; round < 10; ++round) {
#pragma omp simd
    for (int t = 0; t < kQuadBatch; ++t) {
      const std::uint64_t p0 = 0xD2511F53ull * c0[t];
      const std::uint64_t p1 = 0xCD9E8D57ull * c2[t];
      c0[t] = (p1 >> 32) ^ c1[t] ^ key0;
      c1[t] = p1 & kLow;
      c2[t] = (p0 >> 32) ^ c3[t] ^ key1;
      c3[t] = p0 & kLow;
    }
    key0 = (key0 + 0x9E3779B9ull) & kLow;
    key1 = (key1 + 0xBB67AE85ull) & kLow;
  }
  for (int t = 0; t < kQuadBatch; ++t) {
    w[0][t] = static_cast<std::uint32_t>(c0[t]);
    w[1][t] = static_cast<std::uint32_t>(c1[t]);
    w[2][t] = static_cast<std::uint32_t>(c2[t]);
    w[3][t] = static_cast<std::uint32_t>(c3[t]);
  }
}

// out[4 q + e] = entry e of quad quad0 + q, q < kQuadBatch.
template <class Philox>
KFUSE_CPU_HOT void quads_lanes(const detail::RandomMatrix& r, std::uint64_t row,
                               std::uint64_t quad0, float* out, Philox philox) {
  std::uint32_t w[4][kQuadBatch];
  philox(r.seed, r.stream, row, quad0, w);
  if (r.distribution == detail::kDrawUniform) {
    for (int e = 0; e < 4; ++e)
#pragma omp simd
      for (int t = 0; t < kQuadBatch; ++t)
        out[4 * t + e] = detail::mul_rn(detail::centred_uniform(w[e][t]), 0x1.bb67aep+0f);
  } else if (r.distribution == detail::kDrawRademacher) {
    for (int e = 0; e < 4; ++e)
      for (int t = 0; t < kQuadBatch; ++t)
        out[4 * t + e] = (w[e][t] >> 31) ? -1.0f : 1.0f;
  } else {
    float z[4][kQuadBatch];
    for (int pair = 0; pair < 2; ++pair)
#pragma omp simd
      for (int t = 0; t < kQuadBatch; ++t)
        detail::gaussian_pair(w[2 * pair][t], w[2 * pair + 1][t], &z[2 * pair][t],
                              &z[2 * pair + 1][t]);
    for (int e = 0; e < 4; ++e)
      for (int t = 0; t < kQuadBatch; ++t)
        out[4 * t + e] = z[e][t];
  }
}

template <class Philox>
KFUSE_CPU_HOT void row_quads(const detail::RandomMatrix& r, std::int64_t row, std::int64_t quad0,
                             std::int64_t count, float* out, Philox philox) {
  float buf[4 * kQuadBatch];
  for (std::int64_t q = 0; q < count; q += kQuadBatch) {
    const std::int64_t n = std::min<std::int64_t>(kQuadBatch, count - q);
    float* dst = n == kQuadBatch ? out + 4 * q : buf;
    quads_lanes(r, static_cast<std::uint64_t>(row), static_cast<std::uint64_t>(quad0 + q), dst,
                philox);
    if (dst == buf) std::memcpy(out + 4 * q, buf, static_cast<std::size_t>(4 * n) * sizeof(float));
  }
}

void row_quads_baseline(const detail::RandomMatrix& r, std::int64_t row, std::int64_t quad0,
                        std::int64_t count, float* out) {
  row_quads(r, row, quad0, count, out, [](auto&&... a) { philox_lanes(a...); });
}

#ifdef KFUSE_CPU_X86_ENTRY_POINTS
// philox_lanes with AVX2 intrinsics: four 32-bit words per 64-bit lane, one
// vpmuludq per product (the compiler, given the generic loop, multiplies 64-bit
// lanes with shift-and-add sequences).
KFUSE_TARGET_AVX2 inline void philox_lanes_avx2(std::uint64_t seed, std::uint32_t stream,
                                                std::uint64_t row, std::uint64_t quad0,
                                                std::uint32_t (&w)[4][kQuadBatch]) {
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53ll), m1 = _mm256_set1_epi64x(0xCD9E8D57ll);
  const __m256i low = _mm256_set1_epi64x(0xffffffffll);
  for (int h = 0; h < kQuadBatch; h += 4) {
    const long long q = static_cast<long long>(quad0 + h);
    __m256i c0 = _mm256_and_si256(_mm256_set_epi64x(q + 3, q + 2, q + 1, q), low);
    __m256i c1 = _mm256_set1_epi64x(static_cast<long long>(row & 0xffffffffull));
    __m256i c2 = _mm256_set1_epi64x(static_cast<long long>(stream));
    __m256i c3 = _mm256_setzero_si256();
    std::uint32_t key0 = static_cast<std::uint32_t>(seed),
                  key1 = static_cast<std::uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      const __m256i p0 = _mm256_mul_epu32(c0, m0);
      const __m256i p1 = _mm256_mul_epu32(c2, m1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1),
                            _mm256_set1_epi64x(static_cast<long long>(key0)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3),
                            _mm256_set1_epi64x(static_cast<long long>(key1)));
      c1 = _mm256_and_si256(p1, low);
      c3 = _mm256_and_si256(p0, low);
      key0 += 0x9E3779B9u;
      key1 += 0xBB67AE85u;
    }
    alignas(32) std::uint64_t v[4][4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v[0]), c0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(v[1]), c1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(v[2]), c2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(v[3]), c3);
    for (int e = 0; e < 4; ++e)
      for (int t = 0; t < 4; ++t)
        w[e][h + t] = static_cast<std::uint32_t>(v[e][t]);
  }
}

KFUSE_TARGET_AVX2 void row_quads_avx2(const detail::RandomMatrix& r, std::int64_t row,
                                      std::int64_t quad0, std::int64_t count, float* out) {
  row_quads(r, row, quad0, count, out, [](auto&&... a) { philox_lanes_avx2(a...); });
}
// The AVX2 intrinsics serve the AVX-512 entry point too (draws are cached per context,
// so this loop is rarely hot).
KFUSE_TARGET_AVX512 void row_quads_avx512(const detail::RandomMatrix& r, std::int64_t row,
                                          std::int64_t quad0, std::int64_t count, float* out) {
  row_quads(r, row, quad0, count, out, [](auto&&... a) { philox_lanes_avx2(a...); });
}
#endif

using RowQuadsFn = void (*)(const detail::RandomMatrix&, std::int64_t, std::int64_t, std::int64_t,
                            float*);
RowQuadsFn row_quads_fn() {
#ifdef KFUSE_CPU_X86_ENTRY_POINTS
  return pick_entry_point<RowQuadsFn>(&row_quads_baseline, &row_quads_avx2, &row_quads_avx512);
#else
  return &row_quads_baseline;
#endif
}

// ------------------------------------------------------------------ projections

// The buffer of `count` floats stored under key in the draw cache, or one that
// draw(float*) fills (and the cache then keeps). A null cache: drawn every call.
template <class Draw>
std::shared_ptr<const float> cached_draw(detail::LruCache* cache, const std::string& key,
                                         std::int64_t count, Draw draw) {
  if (cache != nullptr)
    if (detail::LruCache::Buffer hit = cache->find(key))
      return std::static_pointer_cast<const float>(hit);
  // (Not value-initialised: draw writes every entry.)
  std::shared_ptr<float> buffer(new float[static_cast<std::size_t>(count)],
                                std::default_delete<float[]>());
  draw(buffer.get());
  if (cache != nullptr) cache->insert(key, buffer, static_cast<std::size_t>(count) * sizeof(float));
  return buffer;
}

// weight_j drawn straight into [strip][k][kStrip] (zero past l): a strip's four
// quads of columns are four Philox blocks.
struct PackedWeights {
  std::int64_t strips = 0;
  std::shared_ptr<const float> data[detail::kFuseMaxOperands];  // every entry written
};

void draw_strips(const detail::RandomMatrix& r, std::int64_t rows, std::int64_t l,
                 std::int64_t strips, float* dst) {
  const RowQuadsFn draw = row_quads_fn();
#pragma omp parallel if (rows * l >= kParallelWork / 16)
  {
    std::vector<float> line(static_cast<std::size_t>(strips * kStrip), 0.0f);
#pragma omp for schedule(static)
    for (std::int64_t k = 0; k < rows; ++k) {
      // The row's quads, then zeros past l.
      draw(r, k, 0, (l + 3) / 4, line.data());
      for (std::int64_t c = l; c < strips * kStrip; ++c)
        line[c] = 0.0f;
      for (std::int64_t s = 0; s < strips; ++s)
        std::memcpy(dst + (s * rows + k) * kStrip, line.data() + s * kStrip,
                    kStrip * sizeof(float));
    }
  }
}

// The key of weight r ([rows x l]) in the layout `tag`: everything its entries depend on.
std::string weight_key(const char* tag, const detail::RandomMatrix& r, std::int64_t rows,
                       std::int64_t l) {
  return detail::cache_key(tag, r.seed, r.stream, r.distribution, rows, l);
}

PackedWeights draw_weights(const ProjectionProblem& p, detail::LruCache* cache) {
  static_assert(kStrip % 4 == 0, "a strip holds whole quads");
  PackedWeights w;
  w.strips = (p.l + kStrip - 1) / kStrip;
  for (int j = 0; j < p.count; ++j) {
    if (p.factor_row[j] != nullptr) continue;
    const detail::RandomMatrix& r = p.weight[j];
    const std::int64_t rows = p.in[j].width;
    w.data[j] =
        cached_draw(cache, weight_key("fuse/strips16", r, rows, p.l), w.strips * rows * kStrip,
                    [&](float* dst) { draw_strips(r, rows, p.l, w.strips, dst); });
  }
  return w;
}

// acc[r][c] = chain over k < rows of x[r][k] * w[k][c], continuing from acc.
KFUSE_CPU_HOT void strip_chain(const float* __restrict x, std::int64_t ldx,
                               const float* __restrict w, std::int64_t rows,
                               float (&acc)[kMicroRows][kStrip]) {
  float a[kMicroRows][kStrip];
  std::memcpy(a, acc, sizeof(a));
  for (std::int64_t k = 0; k < rows; ++k) {
    const float* __restrict wk = w + k * kStrip;
#pragma GCC unroll 8
    for (int r = 0; r < kMicroRows; ++r) {
      const float xr = x[r * ldx + k];
#pragma omp simd
      for (int c = 0; c < kStrip; ++c)
        a[r][c] = detail::fma_rn(xr, wk[c], a[r][c]);
    }
  }
  std::memcpy(acc, a, sizeof(a));
}

// One strip of columns for the staged rows [0, rows) of a chunk starting at i0.
// staged[j] holds the mapped rows of operand j ([rows][width_j], zero rows up to a
// whole number of register blocks).
KFUSE_CPU_HOT void projection_strip(const ProjectionProblem& p, const PackedWeights& w,
                                    const std::vector<float>* staged, std::int64_t i0,
                                    std::int64_t rows, std::int64_t s) {
  const std::int64_t c0 = s * kStrip;
  const int cols = static_cast<int>(std::min<std::int64_t>(kStrip, p.l - c0));
  for (std::int64_t r0 = 0; r0 < rows; r0 += kMicroRows) {
    const int nrows = static_cast<int>(std::min<std::int64_t>(kMicroRows, rows - r0));
    float acc[kMicroRows][kStrip];
    float prod[kMicroRows][kStrip] = {};
    if (p.kind == ProjectionKind::Fourier) std::memset(acc, 0, sizeof(acc));
    for (int j = 0; j < p.count; ++j) {
      const std::int64_t width = p.in[j].width;
      if (p.kind == ProjectionKind::Product) {
        if (p.factor_row[j] != nullptr) {
          for (int r = 0; r < kMicroRows; ++r)
            for (int c = 0; c < kStrip; ++c)
              acc[r][c] = c < cols ? p.factor_row[j][c0 + c] : 0.0f;
        } else {
          std::memset(acc, 0, sizeof(acc));
          strip_chain(staged[j].data() + r0 * width, width, w.data[j].get() + s * width * kStrip,
                      width, acc);
        }
        for (int r = 0; r < kMicroRows; ++r)
          for (int c = 0; c < kStrip; ++c)
            prod[r][c] = detail::projection_combine(p, j, acc[r][c], prod[r][c]);
      } else {
        strip_chain(staged[j].data() + r0 * width, width, w.data[j].get() + s * width * kStrip,
                    width, acc);
      }
    }
    for (int r = 0; r < nrows; ++r) {
      float* out = p.out + (i0 + r0 + r) * p.ldo + c0;
      for (int c = 0; c < cols; ++c) {
        if (p.kind == ProjectionKind::Product) {
          out[c] = detail::mul_rn(prod[r][c], p.final_scale);
        } else {
          float sn, cs;
          detail::sincos_rn(acc[r][c], &sn, &cs);
          out[c] = detail::mul_rn(cs, p.amplitude);
          out[p.l + c] = detail::mul_rn(sn, p.amplitude);
        }
      }
    }
  }
}

// ------------------------------------------------------------------ product_kernel_topk

using detail::PairKernel;
using detail::TopkProblem;

constexpr std::int64_t kPanelRows = 64;  // gallery rows packed at once (4 strips)
// Queries per block: their packed rows (under 1.3 MiB at d1 + d2 = 1280) stay near the
// cores while the gallery streams past once per block. A block starts on a multiple of
// kMicroRows, so its register blocks read inside the packed queries (padded to
// padded_rows(M) only).
constexpr std::int64_t kQueryRows = 240;
static_assert(kQueryRows % kMicroRows == 0, "query blocks must start on a register block");
// The candidate lists of a block (parts x rows x k scores and indices) are kept under
// this many bytes by fewer rows per block for a large k (never under one register block).
constexpr std::int64_t kTopkListBytes = std::int64_t(64) << 20;

// Rows per query block for k candidates kept by each of `parts` threads: a multiple of
// kMicroRows. Any block size gives the same result (the lists' order is total).
std::int64_t topk_block_rows(std::int64_t m, std::int64_t k, int parts) {
  const std::int64_t per_row =
      std::int64_t(parts) * k * std::int64_t(sizeof(float) + sizeof(std::int64_t));
  const std::int64_t fit = kTopkListBytes / per_row / kMicroRows * kMicroRows;
  return std::min({kQueryRows, padded_rows(m), std::max<std::int64_t>(kMicroRows, fit)});
}

// A side's queries packed as [M][d] in float (zero rows up to padded_rows(M)).
std::vector<float> pack_queries(const detail::TopkSide& side, std::int64_t m) {
  const std::int64_t d = side.q.d;
  std::vector<float> q(static_cast<std::size_t>(padded_rows(m) * d), 0.0f);
#pragma omp parallel for schedule(static) if (m * d >= kParallelWork)
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      q[i * d + k] = detail::load_as<float>(side.q.data, side.q.dtype, i * side.q.ld + k);
  return q;
}

// Gallery rows [j0, j0 + nj) of a side packed as [strip][d][kStrip] in float, zero past
// the last row: one panel, packed by the thread that uses it, just before.
void pack_gallery_panel(const detail::TopkSide& side, std::int64_t j0, std::int64_t nj,
                        float* out) {
  const std::int64_t d = side.g.d;
  for (std::int64_t s = 0; s * kStrip < nj; ++s)
    for (int c = 0; c < kStrip; ++c) {
      const std::int64_t j = s * kStrip + c;
      float* dst = out + s * d * kStrip + c;
      if (j >= nj) {
        for (std::int64_t k = 0; k < d; ++k)
          dst[k * kStrip] = 0.0f;
        continue;
      }
      for (std::int64_t k = 0; k < d; ++k)
        dst[k * kStrip] =
            detail::load_as<float>(side.g.data, side.g.dtype, (j0 + j) * side.g.ld + k);
    }
}

template <PairKernel K>
KFUSE_CPU_HOT void pair_chain(const float* __restrict q, std::int64_t d, const float* __restrict g,
                              float (&acc)[kMicroRows][kStrip]) {
  float a[kMicroRows][kStrip] = {};
  for (std::int64_t k = 0; k < d; ++k) {
    const float* __restrict gk = g + k * kStrip;
#pragma GCC unroll 8
    for (int r = 0; r < kMicroRows; ++r) {
      const float qr = q[r * d + k];
#pragma omp simd
      for (int c = 0; c < kStrip; ++c)
        a[r][c] = detail::pair_step(K, qr, gk[c], a[r][c]);
    }
  }
  std::memcpy(acc, a, sizeof(a));
}

KFUSE_CPU_HOT void side_chain(PairKernel kind, const float* q, std::int64_t d, const float* g,
                              float (&acc)[kMicroRows][kStrip]) {
  if (kind == PairKernel::Rbf) return pair_chain<PairKernel::Rbf>(q, d, g, acc);
  pair_chain<PairKernel::Dot>(q, d, g, acc);  // Dot and Cosine share the chain
}

// The packed operands of one panel: both sides' queries (all M rows) and gallery
// panel, with their widths.
struct TopkOperands {
  const float* q[2];
  const float* g[2];
  std::int64_t d[2];
};

// Sorted candidate lists, list r at scores + r * k (and idx), count[r] entries each.
struct TopkLists {
  int k = 0;
  float* scores = nullptr;
  std::int64_t* idx = nullptr;
  int* count = nullptr;
};

// Queries [i0, i0 + nq) (list r for query i0 + r) against the panel's gallery rows
// [j0, j0 + nj).
KFUSE_CPU_HOT void topk_panel(const TopkProblem& p, const TopkOperands& o, std::int64_t i0,
                              std::int64_t nq, std::int64_t j0, std::int64_t nj,
                              const TopkLists& lists) {
  for (std::int64_t r0 = 0; r0 < nq; r0 += kMicroRows) {
    const int rows = static_cast<int>(std::min<std::int64_t>(kMicroRows, nq - r0));
    for (std::int64_t js = 0; js < nj; js += kStrip) {
      const int cols = static_cast<int>(std::min<std::int64_t>(kStrip, nj - js));
      float acc[2][kMicroRows][kStrip];
      for (int s = 0; s < 2; ++s)
        side_chain(p.side[s].kind, o.q[s] + (i0 + r0) * o.d[s], o.d[s],
                   o.g[s] + js / kStrip * o.d[s] * kStrip, acc[s]);
      for (int r = 0; r < rows; ++r) {
        const std::int64_t i = i0 + r0 + r;
        const std::int64_t local = r0 + r;
        float* sc = lists.scores + local * lists.k;
        std::int64_t* ix = lists.idx + local * lists.k;
        for (int c = 0; c < cols; ++c) {
          const std::int64_t j = j0 + js + c;
          const float s = detail::topk_score(p, acc[0][r][c], acc[1][r][c], i, j);
          detail::topk_insert(sc, ix, &lists.count[local], lists.k, s, j);
        }
      }
    }
  }
}

// ------------------------------------------------------------------ TensorSketch

// conv = a (*) b (circular, length l), a and b with their nonzero positions, a the
// sparser. Dense b: for each nonzero a_t, a shifted copy of b in two contiguous runs
// (vector code); where b is sparse too (under one in 8 nonzero), pairs of nonzeros.
KFUSE_CPU_HOT void circular_conv(const double* a, const std::vector<std::int64_t>& nz_a,
                                 const double* b, const std::vector<std::int64_t>& nz_b,
                                 std::int64_t l, double* __restrict conv) {
  std::fill(conv, conv + l, 0.0);
  if (static_cast<std::int64_t>(nz_b.size()) * 8 < l) {
    for (std::int64_t ta : nz_a)
      for (std::int64_t tb : nz_b) {
        const std::int64_t t = ta + tb < l ? ta + tb : ta + tb - l;
        conv[t] += a[ta] * b[tb];
      }
    return;
  }
  for (std::int64_t ta : nz_a) {
    const double va = a[ta];
    double* __restrict head = conv + ta;
#pragma omp simd
    for (std::int64_t tb = 0; tb < l - ta; ++tb)
      head[tb] += va * b[tb];
    double* __restrict tail = conv - (l - ta);
#pragma omp simd
    for (std::int64_t tb = l - ta; tb < l; ++tb)
      tail[tb] += va * b[tb];
  }
}

// ------------------------------------------------------------------ row norms

// row_inv_norm for rows [i0, i1), eight rows' chains interleaved (each row's chain
// is the same sequence of fmas; interleaving only hides their latency). Compiled per
// ISA, so that the fmas are FMA instructions, not libm calls.
template <class W>
KFUSE_CPU_HOT void inv_norms_rows(const FuseOperand& op, std::int64_t i0, std::int64_t i1, W* out) {
  constexpr int kLanes = 8;
  std::int64_t i = i0;
  for (; i + kLanes <= i1; i += kLanes) {
    W sum[kLanes] = {};
    for (std::int64_t k = 0; k < op.d; ++k)
#pragma GCC unroll 8
      for (int t = 0; t < kLanes; ++t) {
        const W x = detail::load_as<W>(op.data, op.dtype, (i + t) * op.ld + k);
        sum[t] = detail::fma_rn(x, x, sum[t]);
      }
    for (int t = 0; t < kLanes; ++t)
      out[i + t] = detail::row_inv_norm_of_sum<W>(op, i + t, sum[t]);
  }
  for (; i < i1; ++i)
    out[i] = detail::row_inv_norm<W>(op, i);
}

}  // namespace

// ------------------------------------------------------------------ entry points

template <class W>
void fuse_inv_norms(const FuseOperand& op, std::int64_t n, W* out) {
  auto* const rows_fn = cpu_entry_point<&inv_norms_rows<W>>();
  constexpr std::int64_t kRows = 64;
#pragma omp parallel for schedule(static) if (n * op.d >= kParallelPass)
  for (std::int64_t i0 = 0; i0 < n; i0 += kRows)
    rows_fn(op, i0, std::min(n, i0 + kRows), out);
}

void random_row_quads(const detail::RandomMatrix& r, std::int64_t row, std::int64_t quad0,
                      std::int64_t count, float* out) {
  row_quads_fn()(r, row, quad0, count, out);
}

void fuse_random_matrix(const detail::RandomMatrix& r, float* out) {
  const std::int64_t quads = (r.cols + 3) / 4;
  const RowQuadsFn draw = row_quads_fn();
#pragma omp parallel if (r.rows * r.cols >= kParallelWork / 16)
  {
    std::vector<float> line(static_cast<std::size_t>(4 * quads));
#pragma omp for schedule(static)
    for (std::int64_t row = 0; row < r.rows; ++row) {
      draw(r, row, 0, quads, line.data());
      std::memcpy(out + row * r.ld, line.data(), static_cast<std::size_t>(r.cols) * sizeof(float));
    }
  }
}

void fuse_random_matrix(const detail::RandomMatrix& r, float* out, detail::LruCache* draw_cache) {
  if (draw_cache == nullptr || r.rows == 0 || r.cols == 0) return fuse_random_matrix(r, out);
  detail::RandomMatrix packed = r;
  packed.ld = r.cols;
  const std::shared_ptr<const float> u =
      cached_draw(draw_cache, weight_key("fuse/rows", r, r.rows, r.cols), r.rows * r.cols,
                  [&](float* dst) { fuse_random_matrix(packed, dst); });
#pragma omp parallel for schedule(static) if (r.rows * r.cols >= kParallelPass)
  for (std::int64_t row = 0; row < r.rows; ++row)
    std::memcpy(out + row * r.ld, u.get() + row * r.cols,
                static_cast<std::size_t>(r.cols) * sizeof(float));
}

template <class W>
void kron_fuse(const KronProblem& p) {
  const int m = p.count;
  W* out = static_cast<W*>(p.out);
  const std::int64_t last = p.in[m - 1].width;
  const std::int64_t prefixes = p.width / last;
#pragma omp parallel if (p.n * p.width >= kParallelWork)
  {
    std::vector<W> v[detail::kFuseMaxOperands];
    for (int j = 0; j < m; ++j)
      v[j].resize(static_cast<std::size_t>(p.in[j].width));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < p.n; ++i) {
      for (int j = 0; j < m; ++j)
        for (std::int64_t k = 0; k < p.in[j].width; ++k)
          v[j][k] = detail::operand_value<W>(p.in[j], i, k);
      // An odometer over the prefix indices (k_0 .. k_{m-2}); the last input varies
      // fastest, in the innermost (vectorised) loop.
      std::int64_t idx[detail::kFuseMaxOperands] = {};
      W* row = out + i * p.ldo;
      for (std::int64_t q = 0; q < prefixes; ++q) {
        W prefix = v[0][idx[0]];
        for (int j = 1; j < m - 1; ++j)
          prefix = detail::mul_rn(prefix, v[j][idx[j]]);
        const W* vl = v[m - 1].data();
        W* dst = row + q * last;
        for (std::int64_t k = 0; k < last; ++k)
          dst[k] = detail::mul_rn(prefix, vl[k]);
        for (int j = m - 2; j >= 0; --j) {
          if (++idx[j] < p.in[j].width) break;
          idx[j] = 0;
        }
      }
    }
  }
}

void fuse_projection(const ProjectionProblem& p, detail::LruCache* draw_cache) {
  if (p.n == 0 || p.l == 0) return;
  const PackedWeights w = draw_weights(p, draw_cache);
  auto* const strip_fn = cpu_entry_point<&projection_strip>();
  std::vector<float> staged[detail::kFuseMaxOperands];
  std::int64_t chain = 0;
  for (int j = 0; j < p.count; ++j)
    chain += p.in[j].width;
  const std::int64_t chunk = chunk_rows(chain);
  for (std::int64_t i0 = 0; i0 < p.n; i0 += chunk) {
    const std::int64_t rows = std::min(chunk, p.n - i0);
    for (int j = 0; j < p.count; ++j) {
      if (p.factor_row[j] != nullptr) continue;
      const FuseOperand& op = p.in[j];
      staged[j].assign(static_cast<std::size_t>(padded_rows(rows) * op.width), 0.0f);
#pragma omp parallel for schedule(static) if (rows * op.width >= kParallelPass)
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t k = 0; k < op.width; ++k)
          staged[j][r * op.width + k] = detail::operand_value<float>(op, i0 + r, k);
    }
#pragma omp parallel for schedule(dynamic, 4) if (rows * p.l * chain >= kParallelWork)
    for (std::int64_t s = 0; s < w.strips; ++s)
      strip_fn(p, w, staged, i0, rows, s);
  }
}

namespace {

// Rows per block of the GEMM route: a block's products (rows x l floats per operand)
// stay within a few MiB at l = 5000.
constexpr std::int64_t kGemmBlockRows = 256;

// The TF32/BF16-permitted Product projection through the BLAS: U_j drawn whole once
// per call, then per block of rows Z = final_scale * prod_j (factor_scale * X_j U_j)
// with each X_j U_j one sgemm (fp32 products and accumulation, in the BLAS's order:
// not the exact path's chain, and not bitwise reproducible across BLAS builds or
// processors). The mapped rows are staged in float as in the exact path.
void fuse_projection_gemm(const ProjectionProblem& p, detail::LruCache* draw_cache) {
  std::shared_ptr<const float> U[detail::kFuseMaxOperands];
  for (int j = 0; j < p.count; ++j) {
    if (p.factor_row[j] != nullptr) continue;
    detail::RandomMatrix r = p.weight[j];
    r.rows = p.in[j].width;
    r.cols = r.ld = p.l;
    U[j] = cached_draw(draw_cache, weight_key("fuse/rows", r, r.rows, p.l), r.rows * r.cols,
                       [&](float* dst) { fuse_random_matrix(r, dst); });
  }
  std::vector<float> staged, factor;
  for (std::int64_t i0 = 0; i0 < p.n; i0 += kGemmBlockRows) {
    const std::int64_t rows = std::min(kGemmBlockRows, p.n - i0);
    float* z = p.out + i0 * p.ldo;
    for (int j = 0; j < p.count; ++j) {
      const FuseOperand& op = p.in[j];
      // Operand 0 is written straight into the output rows, the others into
      // `factor` and multiplied in.
      float* f = z;
      std::int64_t ldf = p.ldo;
      if (j > 0) {
        factor.resize(static_cast<std::size_t>(rows * p.l));
        f = factor.data();
        ldf = p.l;
      }
      if (p.factor_row[j] != nullptr) {
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t c = 0; c < p.l; ++c)
            f[r * ldf + c] = p.factor_row[j][c] * p.factor_scale;
      } else {
        staged.resize(static_cast<std::size_t>(rows * op.width));
#pragma omp parallel for schedule(static) if (rows * op.width >= kParallelPass)
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t k = 0; k < op.width; ++k)
            staged[r * op.width + k] = detail::operand_value<float>(op, i0 + r, k);
        sgemm(Trans::No, Trans::No, rows, p.l, op.width, p.factor_scale, staged.data(), op.width,
              U[j].get(), p.l, 0.0f, f, ldf);
      }
      if (j > 0) {
#pragma omp parallel for schedule(static) if (rows * p.l >= kParallelPass)
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t c = 0; c < p.l; ++c)
            z[r * p.ldo + c] *= f[r * ldf + c];
      }
    }
#pragma omp parallel for schedule(static) if (rows * p.l >= kParallelPass)
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < p.l; ++c)
        z[r * p.ldo + c] *= p.final_scale;
  }
}

}  // namespace

void fuse_projection(const ProjectionProblem& p, Precision precision,
                     detail::LruCache* draw_cache) {
  if (precision != Precision::Exact && p.kind == ProjectionKind::Product &&
      p.n >= kProjectionGemmMinRows && p.l > 0)
    return fuse_projection_gemm(p, draw_cache);
  fuse_projection(p, draw_cache);
}

namespace {

// The count sketch of row i of side s, in double: sketch[t * stride] (t < l) +=
// sign * value; the caller zeroes it.
// W: double for the direct convolution, float for the FFT route.
template <class W>
void count_sketch(const detail::SketchProblem& p, const std::vector<detail::SketchHash>& hash,
                  int s, std::int64_t i, W* sketch, std::int64_t stride) {
  for (std::int64_t k = 0; k < p.in[s].width; ++k)
    sketch[hash[k].bucket * stride] +=
        W(hash[k].sign) * W(detail::operand_value<float>(p.in[s], i, k));
}

}  // namespace

// Which route convolves the count sketches, by the work per row in vector
// operations: the direct convolution about nnz * l / 2 (the sparser sketch has at
// most min(width, l) nonzeros; a multiply and an add per term, 4 lanes), the FFT
// route three real transforms of length l (FFTW, about 2.5 l log2 l flops each at
// 4 lanes, taken at twice that for FFTW's loads, stores and twiddles): about
// 4 l log2 l. Below l = 16 a transform costs more in calls than it saves.
// (Before FFTW the route was a radix-2 FFT of 2l - 1 padded to a power of two,
// about 3x costlier at l = 3000.)
bool sketch_uses_fft(const detail::SketchProblem& p) {
  if (p.l < 16) return false;
  std::int64_t log2_l = 0;
  while ((std::int64_t(1) << log2_l) < p.l)
    ++log2_l;
  const std::int64_t nnz = std::min({p.in[0].width, p.in[1].width, p.l});
  return nnz * p.l / 2 > 4 * p.l * log2_l;
}

namespace {

// Row i through the FFT at the sketch's own length: the circular convolution of
// length l is the inverse transform of the product of the two half spectra (real
// signals: the other half is their conjugate), divided by l. In fp32, as the GPU's
// cuFFT route: the error is a few log2(l) ulps of the row's norm (test_fuse's sketch
// tests hold 1e-5 of it, at l up to 1500). x and y are l values, X and Y l / 2 + 1
// (fft buffers, reused across rows).
KFUSE_CPU_HOT void sketch_row_fft(const detail::SketchProblem& p,
                                  const std::vector<detail::SketchHash>* hash,
                                  const RealFft<float>& fft, std::int64_t i, float* x, float* y,
                                  std::complex<float>* X, std::complex<float>* Y) {
  const std::int64_t l = p.l;
  std::fill(x, x + l, 0.0f);
  std::fill(y, y + l, 0.0f);
  count_sketch(p, hash[0], 0, i, x, 1);
  count_sketch(p, hash[1], 1, i, y, 1);
  fft.forward(x, X);
  fft.forward(y, Y);
  for (std::int64_t k = 0; k < fft.spectrum_size(); ++k) {
    // (Written out: std::complex's operator* checks for NaN and calls libgcc.)
    const float xr = X[k].real(), xi = X[k].imag(), yr = Y[k].real(), yi = Y[k].imag();
    X[k] = {xr * yr - xi * yi, xr * yi + xi * yr};
  }
  fft.inverse(X, x);
  const float scale = 1.0f / float(l);
  float* out = p.out + i * p.ldo;
  for (std::int64_t t = 0; t < l; ++t)
    out[t] = x[t] * scale;
}

}  // namespace

void tensor_sketch(const detail::SketchProblem& p) {
  if (p.n == 0) return;
  const std::int64_t l = p.l;
  std::vector<detail::SketchHash> hash[2];
  for (int s = 0; s < 2; ++s) {
    hash[s].resize(static_cast<std::size_t>(p.in[s].width));
    for (std::int64_t k = 0; k < p.in[s].width; ++k)
      hash[s][k] = detail::sketch_hash(p.seed, s, k, l);
  }
  if (sketch_uses_fft(p)) {
    const RealFft<float>& fft = RealFft<float>::of_size(l);
    // Per instruction set (src/core/isa.hpp): the spectrum product and the scaling.
    auto* const row_fn = cpu_entry_point<&sketch_row_fft>();
#pragma omp parallel if (p.n > 1)
    {
      FftBuffer<float> x = fft_buffer<float>(l), y = fft_buffer<float>(l);
      FftBuffer<std::complex<float>> X = fft_buffer<std::complex<float>>(fft.spectrum_size()),
                                     Y = fft_buffer<std::complex<float>>(fft.spectrum_size());
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < p.n; ++i)
        row_fn(p, hash, fft, i, x.get(), y.get(), X.get(), Y.get());
    }
    return;
  }
  auto* const conv_fn = cpu_entry_point<&circular_conv>();
#pragma omp parallel if (p.n * (p.in[0].width * p.in[1].width + l) >= kParallelWork)
  {
    std::vector<double> sketch[2] = {std::vector<double>(l), std::vector<double>(l)};
    std::vector<double> conv(static_cast<std::size_t>(l));
    std::vector<std::int64_t> nonzero[2];
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < p.n; ++i) {
      for (int s = 0; s < 2; ++s) {
        std::fill(sketch[s].begin(), sketch[s].end(), 0.0);
        count_sketch(p, hash[s], s, i, sketch[s].data(), 1);
        nonzero[s].clear();
        for (std::int64_t t = 0; t < l; ++t)
          if (sketch[s][t] != 0.0) nonzero[s].push_back(t);
      }
      const int outer = nonzero[0].size() <= nonzero[1].size() ? 0 : 1;
      conv_fn(sketch[outer].data(), nonzero[outer], sketch[1 - outer].data(), nonzero[1 - outer], l,
              conv.data());
      float* out = p.out + i * p.ldo;
      for (std::int64_t t = 0; t < l; ++t)
        out[t] = static_cast<float>(conv[t]);
    }
  }
}

// Per block of queries, the gallery is split over the threads in contiguous ranges of
// panels; each thread packs its panels as it goes (the gallery is read once per block,
// never copied whole) and keeps lists for all the block's queries; the lists are then
// merged per query. The order of candidates (topk_before: score, then index) is total,
// so the result does not depend on the split or the number of threads.
void product_topk(const TopkProblem& p) {
  if (p.m == 0) return;
  const std::vector<float> q[2] = {pack_queries(p.side[0], p.m), pack_queries(p.side[1], p.m)};
  auto* const panel_fn = cpu_entry_point<&topk_panel>();
  const std::int64_t k = p.k;
  const std::int64_t panels = (p.n + kPanelRows - 1) / kPanelRows;
  const bool parallel = p.m * p.n * (p.side[0].q.d + p.side[1].q.d) >= kParallelWork;
  const int max_parts = parallel ? std::min<int>(detail::kMaxTopkParts, max_threads()) : 1;
  const std::int64_t block = topk_block_rows(p.m, k, max_parts);
  // [part][query of the block][k], padded for the merge with (NaN, index past the gallery).
  std::vector<float> scores(static_cast<std::size_t>(max_parts * block * k));
  std::vector<std::int64_t> idx(scores.size());
  const std::int64_t stride = block * k;
  for (std::int64_t i0 = 0; i0 < p.m; i0 += block) {
    const std::int64_t nq = std::min(block, p.m - i0);
    int parts = 1;
#pragma omp parallel num_threads(max_parts) if (parallel)
    {
      const int t = thread_index(), T = team_size();
      if (t == 0) parts = T;
      std::vector<int> count(static_cast<std::size_t>(nq), 0);
      const TopkLists lists{p.k, scores.data() + t * stride, idx.data() + t * stride, count.data()};
      std::vector<float> g[2] = {
          std::vector<float>(static_cast<std::size_t>(kPanelRows * p.side[0].g.d)),
          std::vector<float>(static_cast<std::size_t>(kPanelRows * p.side[1].g.d))};
      const TopkOperands o{
          {q[0].data(), q[1].data()}, {g[0].data(), g[1].data()}, {p.side[0].q.d, p.side[1].q.d}};
      for (std::int64_t b = panels * t / T; b < panels * (t + 1) / T; ++b) {
        const std::int64_t j0 = b * kPanelRows, nj = std::min(kPanelRows, p.n - j0);
        pack_gallery_panel(p.side[0], j0, nj, g[0].data());
        pack_gallery_panel(p.side[1], j0, nj, g[1].data());
        panel_fn(p, o, i0, nq, j0, nj, lists);
      }
      for (std::int64_t r = 0; r < nq; ++r)
        for (std::int64_t c = count[r]; c < k; ++c) {
          lists.scores[r * k + c] = std::numeric_limits<float>::quiet_NaN();
          lists.idx[r * k + c] = p.n;
        }
    }
#pragma omp parallel for schedule(static) if (parallel && nq * k * parts >= kParallelWork)
    for (std::int64_t r = 0; r < nq; ++r)
      detail::topk_merge(scores.data() + r * k, idx.data() + r * k, stride, parts, p.k, p.k,
                         p.scores + (i0 + r) * p.lds, p.indices + (i0 + r) * p.ldi);
  }
}

template void fuse_inv_norms<float>(const FuseOperand&, std::int64_t, float*);
template void fuse_inv_norms<double>(const FuseOperand&, std::int64_t, double*);
template void kron_fuse<float>(const KronProblem&);
template void kron_fuse<double>(const KronProblem&);

}  // namespace kfuse::cpu
