// CPU path of the contrastive loss family: the same passes as the GPU, with the
// dot products in fp32 and everything after them in double. Two schemes:
//
// - The BLAS scheme (section below), wherever dS' (nx x ny fp32) fits a budget
//   (256 MiB: N up to 8192 square; kept_ds_budget): the products through OpenBLAS's sgemm, one
//   gradient pass forming dX and dY, and a CLIP forward + backward call reusing
//   the forward's dot products: 3 products for either loss's forward + backward,
//   as PyTorch's materialised S.
// - The register-block scheme (this header), beyond that budget, in O(N) memory:
//
// Logits are formed tile by tile (16 rows x 64 columns); no more than a tile of
// them exists at any time, so a 64k-pair call needs megabytes, not the 16 GiB of S.
// Operands are packed in fp32: a block of 16 rows transposed (16 floats per k, two
// vectors), a tile's 64 columns as contiguous rows (padded so that their stride is
// not a multiple of 256 bytes). The logit product keeps a 16 x 6 block of dot
// products in 12 vector accumulators, fp32 FMAs over d in order (as the GPU's fp32
// path accumulates); each dot product then becomes a double logit, and the
// log-sum-exp states, dS' = dL/dS, the loss and scalar-gradient sums are double.
// The dX product (dS' rounded to fp32, an O(1) factor) keeps a 6 rows x 16 d-columns
// block in 12 accumulators over a tile's columns, then adds it to a double dX
// accumulator once per tile. The per-pair terms (exponentials, softplus) run over a
// whole tile row in a branch-free loop that the compiler vectorises, with every
// pair as a negative, then the row's positives again.
//
// Forward: OpenMP over the rectangles of the plan, whose partial states are merged
// afterwards in a fixed order. Backward: OpenMP over tasks of 4 blocks of 16 rows
// (sharing each packed column tile), each walking all columns; the logits are
// formed again there (once per pass, so 5 products for a CLIP forward + backward
// against the 3 of a materialised S). Every sum has a fixed order, so the results
// do not depend on the number of threads.
#include "src/contrastive/cpu.hpp"
#include "src/core/isa.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/core/float16.hpp"
#include "src/core/blas.hpp"
#include "src/core/env.hpp"

namespace kfuse::cpu {
namespace {

using namespace detail::contrastive;

constexpr std::int64_t kRows = 16;  // geometry(cpu).block_rows
constexpr std::int64_t kCols = 64;  // geometry(cpu).tile_cols
constexpr int kColBlock = 6;        // columns per register block of the logit product
// Packed column rows of a tile: kCols rounded up to whole register blocks (zero).
constexpr std::int64_t kColsPacked = (kCols + kColBlock - 1) / kColBlock * kColBlock;
constexpr int kStrip = 16;  // d-columns (two fp32 vectors) per register block of dX
// Row blocks of a forward rectangle packed at a time (256 rows: 1 MiB at d = 1024).
constexpr std::int64_t kPackBlocks = 16;
// Row blocks of one backward task, which share each packed column tile.
constexpr std::int64_t kTaskBlocks = 4;

// Below this many merged states, a parallel region costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 16;

// Packed columns (rows of y, in fp32) are padded with zeros to a multiple of kStrip,
// and by one more strip when that is a multiple of 256 bytes: the gradient product
// walks 64 of them at this stride, which at 2 KiB (d = 512) would map them all to
// the same few L1 sets.
std::int64_t packed_ld(std::int64_t d) {
  const std::int64_t ld = (d + kStrip - 1) / kStrip * kStrip;
  return ld % 64 == 0 ? ld + kStrip : ld;
}

struct Scalars {
  double tau, bias;
};

Scalars resolve(const Logits& s) {
  const double t = s.t.ptr != nullptr ? double(*s.t.ptr) : s.t.value;
  const double b = s.b.ptr != nullptr ? double(*s.b.ptr) : s.b.value;
  return {std::exp(t), b};
}

double resolve(const Scalar& v) {
  return v.ptr != nullptr ? double(*v.ptr) : v.value;
}

// Calls f with src cast to its element type (bf16, f16 or float).
template <class F>
void with_type(DType dtype, const void* src, F&& f) {
  switch (dtype) {
    case DType::BF16:
      return f(static_cast<const bf16*>(src));
    case DType::F16:
      return f(static_cast<const f16*>(src));
    default:
      return f(static_cast<const float*>(src));
  }
}

// dst [capacity x ldp] = rows [row0, row0 + rows) of src in fp32, zero elsewhere:
// the columns of a tile, one contiguous row each.
void pack_cols(DType dtype, const void* src, std::int64_t ld, std::int64_t row0, std::int64_t rows,
               std::int64_t d, std::int64_t ldp, std::int64_t capacity, float* dst) {
  with_type(dtype, src, [&](const auto* in_base) {
    for (std::int64_t r = 0; r < capacity; ++r) {
      float* out = dst + r * ldp;
      std::int64_t k = 0;
      if (r < rows) {
        const auto* in = in_base + (row0 + r) * ld;
        for (; k < d; ++k)
          out[k] = detail::to_float(in[k]);
      }
      std::fill(out + k, out + ldp, 0.0f);
    }
  });
}

// dst [d x kRows] = rows [row0, row0 + rows) of src in fp32, transposed (zero in
// the lanes of missing rows): a block of rows, kRows values per k, so that the
// logit product loads one block column as two vectors.
void pack_rows_t(DType dtype, const void* src, std::int64_t ld, std::int64_t row0,
                 std::int64_t rows, std::int64_t d, float* dst) {
  with_type(dtype, src, [&](const auto* in_base) {
    for (std::int64_t r = 0; r < kRows; ++r) {
      if (r >= rows) {
        for (std::int64_t k = 0; k < d; ++k)
          dst[k * kRows + r] = 0.0f;
        continue;
      }
      const auto* in = in_base + (row0 + r) * ld;
      for (std::int64_t k = 0; k < d; ++k)
        dst[k * kRows + r] = detail::to_float(in[k]);
    }
  });
}

// ------------------------------------------------------------------ hot loops
// Always inlined into the per-ISA entry points (cpu_entry_point, src/core/isa.hpp), so
// that each is compiled whole for its instruction set.

// Eight floats in one (256-bit) vector: GCC/Clang vector extensions, so that the
// accumulators of a register block are values the compiler keeps in registers
// (the loops over them are fully unrolled). The baseline entry point lowers them
// to pairs of 128-bit operations.
typedef float v8f __attribute__((vector_size(32)));

KFUSE_CPU_HOT v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
KFUSE_CPU_HOT void store8(float* p, v8f v) {
  std::memcpy(p, &v, sizeof(v));
}

// out[c][r] = x_r . y_c for the kRows rows of a transposed block xt [d x kRows]
// and C packed columns y: 2 C vector accumulators (rows 0-7 and 8-15 of each
// column), fp32 FMAs over k in order.
template <int C>
KFUSE_CPU_HOT void dot_block(const float* __restrict xt, const float* __restrict y,
                             std::int64_t ldp, std::int64_t d, float (&out)[C][kRows]) {
  v8f lo[C], hi[C];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c)
    lo[c] = hi[c] = v8f{};
  for (std::int64_t k = 0; k < d; ++k) {
    const v8f x0 = load8(xt + k * kRows), x1 = load8(xt + k * kRows + 8);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const float yc = y[c * ldp + k];
      lo[c] += x0 * yc;
      hi[c] += x1 * yc;
    }
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    store8(out[c], lo[c]);
    store8(out[c] + 8, hi[c]);
  }
}

// s [kRows x kCols] = tau * xt^T yp^T + b in double, from fp32 dot products over
// whole packed blocks (padding rows and columns give b). Columns in register
// blocks of kColBlock; yp holds kColsPacked >= kCols rows, the extra ones zero.
KFUSE_CPU_HOT void logit_tile(const float* xt, const float* yp, std::int64_t ldp, std::int64_t d,
                              const Scalars& sc, double* s) {
  for (int c0 = 0; c0 < kCols; c0 += kColBlock) {
    float dot[kColBlock][kRows];
    dot_block<kColBlock>(xt, yp + c0 * ldp, ldp, d, dot);
    const int nc = std::min<int>(kColBlock, kCols - c0);
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < nc; ++c)
        s[r * kCols + c0 + c] = logit(double(dot[c][r]), sc.tau, sc.bias);
  }
}

// acc [R x ldp] += g [R x kCols] yp [kCols x ldp] over the first `cols` columns
// of g, for d-columns [k0, k0 + kStrip): 2 R vector accumulators in fp32 over the
// tile's columns, added to the double accumulator once per tile.
template <int R>
KFUSE_CPU_HOT void grad_block(const float* __restrict g, const float* __restrict yp,
                              std::int64_t cols, std::int64_t ldp, std::int64_t k0,
                              double* __restrict acc) {
  v8f lo[R], hi[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    lo[r] = hi[r] = v8f{};
  for (std::int64_t j = 0; j < cols; ++j) {
    const v8f y0 = load8(yp + j * ldp + k0), y1 = load8(yp + j * ldp + k0 + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float gr = g[r * kCols + j];
      lo[r] += gr * y0;
      hi[r] += gr * y1;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float part[kStrip];
    store8(part, lo[r]);
    store8(part + 8, hi[r]);
    double* a = acc + r * ldp + k0;
    for (int q = 0; q < kStrip; ++q)
      a[q] += double(part[q]);
  }
}

// acc [kRows x ldp] += g [kRows x kCols] yp [kCols x ldp] over the first `cols`
// columns of g: strips of kStrip d-columns (one strip of yp, 64 rows x 64 bytes,
// stays in L1 across the row blocks), row blocks of 6, 6 and 4.
KFUSE_CPU_HOT void accumulate_tile(const float* g, const float* yp, std::int64_t cols,
                                   std::int64_t ldp, double* acc) {
  static_assert(kRows == 16, "row blocks 6 + 6 + 4");
  for (std::int64_t k0 = 0; k0 < ldp; k0 += kStrip) {
    grad_block<6>(g, yp, cols, ldp, k0, acc);
    grad_block<6>(g + 6 * kCols, yp, cols, ldp, k0, acc + 6 * ldp);
    grad_block<4>(g + 12 * kCols, yp, cols, ldp, k0, acc + 12 * ldp);
  }
}

// ------------------------------------------------------------------ per-pair terms

// out[c] = f(c, positive) over one row of a tile, zero beyond `cols`: every pair
// as a negative first, in a branch-free loop over the whole tile that the compiler
// vectorises (the exponentials and logarithms are most of the non-product work),
// then the row's few positive columns pos[0, npos) again.
template <class F>
KFUSE_CPU_HOT void row_terms(std::int64_t cols, const std::int64_t* pos, int npos, double* out,
                             F&& f) {
  for (std::int64_t c = 0; c < kCols; ++c)
    out[c] = f(c, false);
  for (std::int64_t c = cols; c < kCols; ++c)
    out[c] = 0.0;
  for (int q = 0; q < npos; ++q)
    out[pos[q]] = f(pos[q], true);
}

// SigLIP's dS' (g) and loss terms of one tile row together, as row_terms would
// give them: a negative pair's sigmoid(s) and softplus(s) share e^-|s| (the same
// operations on the same values as siglip_dlogit and siglip_term, so the same
// bits, with one exponential instead of three).
KFUSE_CPU_HOT void siglip_row(const double* v, std::int64_t cols, const std::int64_t* pos, int npos,
                              double* g, double* terms) {
  for (std::int64_t c = 0; c < kCols; ++c) {
    const double s = v[c];
    const double e = c_exp(-(s < 0.0 ? -s : s));
    g[c] = (s >= 0.0 ? 1.0 : e) / (1.0 + e);
    terms[c] = c_max(s, 0.0) + c_log1p_unit(e);
  }
  for (std::int64_t c = cols; c < kCols; ++c)
    g[c] = terms[c] = 0.0;
  for (int q = 0; q < npos; ++q) {
    g[pos[q]] = siglip_dlogit(v[pos[q]], true);
    terms[pos[q]] = siglip_term(v[pos[q]], true);
  }
}

// The sum of a row of kCols terms, in a fixed (vector lane) order.
KFUSE_CPU_HOT double row_sum(const double* t) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t c = 0; c < kCols; ++c)
    sum += t[c];
  return sum;
}

// ------------------------------------------------------------------ forward

// A partial state in the workspace: kStateFloats doubles.
struct State {
  Lse<double> lse;
  double sum;
};

void store_state(double* part, const State& st) {
  part[0] = st.lse.m;
  part[1] = st.lse.s;
  part[2] = st.sum;
}

// Folds one tile of logits (rows [i0, i0 + nr), columns [j0, j0 + cols)) into the
// states of its rows (rows[0, nr)) and of its columns (col[0, cols)), and records
// the positives' logits.
KFUSE_CPU_HOT void tile_stats(const ForwardProblem& p, const double* tile, std::int64_t i0,
                              std::int64_t nr, std::int64_t j0, std::int64_t cols, State* rows,
                              State* col) {
  const Logits& s = p.s;
  const bool clip = p.loss == Loss::Clip;
  for (std::int64_t r = 0; r < nr; ++r) {
    const std::int64_t i = i0 + r;
    const double* srow = tile + r * kCols;
    State& st = rows[r];
    // The row's positive column, as a tile offset or -1 (a forward pass has
    // its labels on its rows: modes Identity and Rows only).
    const std::int64_t target = s.label_mode == LabelMode::Rows
                                    ? s.labels[i]
                                    : (s.label_mode == LabelMode::Identity ? i : -1);
    const std::int64_t pc = target >= j0 && target < j0 + cols ? target - j0 : -1;
    if (!clip) {
      const std::int64_t pos[1] = {pc};
      double terms[kCols];
      row_terms(cols, pos, pc >= 0 ? 1 : 0, terms,
                [&](std::int64_t c, bool positive) { return siglip_term(srow[c], positive); });
      st.sum += row_sum(terms);
      continue;
    }
    double block_max = -INFINITY, sum = 0.0;
#pragma omp simd reduction(max : block_max) reduction(+ : sum)
    for (std::int64_t c = 0; c < cols; ++c) {
      block_max = std::max(block_max, srow[c]);
      sum += srow[c];
    }
    const double m = std::max(st.lse.m, block_max);
    double e = 0.0;
#pragma omp simd reduction(+ : e)
    for (std::int64_t c = 0; c < cols; ++c)
      e += c_exp(srow[c] - m);
    st.lse = lse_merge(st.lse, Lse<double>{m, e});
    st.sum += sum;
    if (pc >= 0) {
      p.pos_x[i] = static_cast<float>(srow[pc]);
      if (p.want_cols) p.pos_y[j0 + pc] = static_cast<float>(srow[pc]);
    }
  }
  if (!clip || !p.want_cols) return;
  // Column by column, vectorised across the tile's columns.
  double cmax[kCols], csum[kCols], cexp[kCols];
  for (std::int64_t c = 0; c < kCols; ++c) {
    cmax[c] = -INFINITY;
    csum[c] = 0.0;
    cexp[c] = 0.0;
  }
  for (std::int64_t r = 0; r < nr; ++r) {
    const double* srow = tile + r * kCols;
#pragma omp simd
    for (std::int64_t c = 0; c < kCols; ++c) {
      cmax[c] = std::max(cmax[c], srow[c]);
      csum[c] += srow[c];
    }
  }
  for (std::int64_t c = 0; c < cols; ++c)
    cmax[c] = std::max(cmax[c], col[c].lse.m);
  for (std::int64_t r = 0; r < nr; ++r) {
    const double* srow = tile + r * kCols;
#pragma omp simd
    for (std::int64_t c = 0; c < kCols; ++c)
      cexp[c] += c_exp(srow[c] - cmax[c]);
  }
  for (std::int64_t c = 0; c < cols; ++c) {
    col[c].lse = lse_merge(col[c].lse, Lse<double>{cmax[c], cexp[c]});
    col[c].sum += csum[c];
  }
}

// One rectangle of the plan, in chunks of up to kPackBlocks row blocks (packed once
// per chunk, so that the packed rows stay bounded); in a chunk, column tiles outer
// (each packed once), row blocks inner. Row and column states persist across the
// rectangle; each column's state meets the row blocks in increasing order.
KFUSE_CPU_HOT void forward_rect(const ForwardProblem& p, std::int64_t g, std::int64_t h) {
  const RectPlan& plan = p.plan;
  const Logits& s = p.s;
  const Scalars sc = resolve(s);
  const std::int64_t ldp = packed_ld(s.d);
  const std::int64_t r_begin = g * plan.blocks_per_group * kRows;
  const std::int64_t r_end = std::min(s.nx, r_begin + plan.blocks_per_group * kRows);
  const std::int64_t c_begin = h * plan.tiles_per_group * kCols;
  const std::int64_t c_end = std::min(s.ny, c_begin + plan.tiles_per_group * kCols);
  if (r_begin >= r_end || c_begin >= c_end) return;

  std::vector<float> xt(static_cast<std::size_t>(kPackBlocks * kRows * s.d));
  std::vector<float> yp(static_cast<std::size_t>(kColsPacked * ldp));
  std::vector<double> tile(static_cast<std::size_t>(kRows * kCols));
  std::vector<State> rows(static_cast<std::size_t>(r_end - r_begin),
                          State{lse_empty<double>(), 0.0});
  std::vector<State> cols_st(static_cast<std::size_t>(c_end - c_begin),
                             State{lse_empty<double>(), 0.0});

  for (std::int64_t k0 = r_begin; k0 < r_end; k0 += kPackBlocks * kRows) {
    const std::int64_t k1 = std::min(r_end, k0 + kPackBlocks * kRows);
    for (std::int64_t i0 = k0; i0 < k1; i0 += kRows)
      pack_rows_t(s.dtype, s.x, s.ldx, i0, std::min(kRows, k1 - i0), s.d,
                  xt.data() + (i0 - k0) * s.d);
    for (std::int64_t j0 = c_begin; j0 < c_end; j0 += kCols) {
      const std::int64_t cols = std::min(kCols, c_end - j0);
      pack_cols(s.dtype, s.y, s.ldy, j0, cols, s.d, ldp, kColsPacked, yp.data());
      for (std::int64_t i0 = k0; i0 < k1; i0 += kRows) {
        logit_tile(xt.data() + (i0 - k0) * s.d, yp.data(), ldp, s.d, sc, tile.data());
        tile_stats(p, tile.data(), i0, std::min(kRows, k1 - i0), j0, cols,
                   rows.data() + (i0 - r_begin), cols_st.data() + (j0 - c_begin));
      }
    }
  }
  auto* row_part = static_cast<double*>(p.row_part);
  auto* col_part = static_cast<double*>(p.col_part);
  if (p.loss == Loss::Clip && p.want_cols)
    for (std::int64_t j = c_begin; j < c_end; ++j)
      store_state(col_part + (g * s.ny + j) * kStateFloats, cols_st[j - c_begin]);
  for (std::int64_t i = r_begin; i < r_end; ++i)
    store_state(row_part + (h * s.nx + i) * kStateFloats, rows[i - r_begin]);
}

// ------------------------------------------------------------------ backward

// The positive columns of row i in a tile of `cols` columns, as tile offsets into
// pos: `target` (the row's own label as an offset, any value) when in range, and
// each column whose label is i (label_col: the tile's column labels, null unless
// the labels are on the columns). Returns their count.
int positive_columns(std::int64_t target, const std::int64_t* label_col, std::int64_t cols,
                     std::int64_t i, std::int64_t* pos) {
  int n = 0;
  if (target >= 0 && target < cols) pos[n++] = target;
  if (label_col != nullptr)
    for (std::int64_t c = 0; c < cols; ++c)
      if (label_col[c] == i && c != target) pos[n++] = c;
  return n;
}

// The backward's per-pass constants.
struct BackwardScalars {
  Scalars sc;
  bool clip;
  std::int64_t ldp;
  double eps, nx, ny;
};

// One block of rows of a backward task: its packed rows, its dX accumulator and
// its per-row sums, which only its own tiles touch (so their values do not depend
// on how blocks are grouped into tasks or tasks onto threads).
struct RowBlock {
  std::int64_t i0, nr;
  const float* xt;  // [d x kRows]
  double* acc;      // [kRows x ldp] (rows >= nr: scratch)
  double dt[kRows], db[kRows], loss[kRows];
};

// The per-row work of one tile of one block (columns [j0, j0 + cols), logits in
// tile [kRows x kCols]): dS', the per-row sums, and dS' rounded to fp32 into
// grad (row stride ldg, the first `cols` columns of each of the block's rows).
KFUSE_CPU_HOT void tile_gradients(const BackwardProblem& p, const BackwardScalars& k, RowBlock& blk,
                                  std::int64_t j0, std::int64_t cols, const double* tile,
                                  const double* lse_col, const std::int64_t* label_col, float* grad,
                                  std::int64_t ldg) {
  const Logits& s = p.s;
  for (std::int64_t r = 0; r < blk.nr; ++r) {
    const std::int64_t i = blk.i0 + r;
    // A pair is positive when j == target (Identity: i, Rows: labels[i]) or
    // labels[j] == i (Cols).
    const std::int64_t target = s.label_mode == LabelMode::Rows
                                    ? s.labels[i]
                                    : (s.label_mode == LabelMode::Identity ? i : -1);
    std::int64_t pos[kCols];
    const int npos = positive_columns(
        target - j0, s.label_mode == LabelMode::Cols ? label_col : nullptr, cols, i, pos);
    const double lse_row = k.clip && p.rx != 0.0 ? double(p.lse_x[i]) : 0.0;
    const double* v = tile + r * kCols;
    double g[kCols];
    const bool siglip_loss = !k.clip && p.loss_rows != nullptr;
    double terms[kCols];
    if (k.clip)
      row_terms(cols, pos, npos, g, [&](std::int64_t c, bool positive) {
        return clip_dlogit(v[c], lse_row, lse_col[c], positive, p.rx, p.ry, k.eps, k.nx, k.ny);
      });
    else if (siglip_loss)
      siglip_row(v, cols, pos, npos, g, terms);
    else
      row_terms(cols, pos, npos, g,
                [&](std::int64_t c, bool positive) { return siglip_dlogit(v[c], positive); });
    double tdt = 0.0, tdb = 0.0;
#pragma omp simd reduction(+ : tdt, tdb)
    for (std::int64_t c = 0; c < kCols; ++c) {
      tdt += g[c] * (v[c] - k.sc.bias);
      tdb += g[c];
    }
    float* gr = grad + r * ldg;
    for (std::int64_t c = 0; c < cols; ++c)
      gr[c] = static_cast<float>(g[c]);
    blk.dt[r] += tdt;
    blk.db[r] += tdb;
    if (siglip_loss) blk.loss[r] += row_sum(terms);
  }
}

// One tile (columns [j0, j0 + cols), packed in yp) of one block: its logits, dS',
// the per-row sums and the dX product. tile and grad are scratch.
KFUSE_CPU_HOT void backward_tile(const BackwardProblem& p, const BackwardScalars& k, RowBlock& blk,
                                 std::int64_t j0, std::int64_t cols, const float* yp,
                                 const double* lse_col, const std::int64_t* label_col, double* tile,
                                 float* grad) {
  logit_tile(blk.xt, yp, k.ldp, p.s.d, k.sc, tile);
  tile_gradients(p, k, blk, j0, cols, tile, lse_col, label_col, grad, kCols);
  // Rows beyond the block's own (the pass's last block only) add nothing; the
  // product reads only the first `cols` columns.
  std::fill(grad + blk.nr * kCols, grad + kRows * kCols, 0.0f);
  if (p.dx != nullptr) accumulate_tile(grad, yp, cols, k.ldp, blk.acc);
}

// A block's outputs: dX rows (tau c0 acc) and the per-row sums.
void store_rows(const BackwardProblem& p, const BackwardScalars& k, const RowBlock& blk) {
  const Logits& s = p.s;
  const double c0 = p.coef * resolve(p.grad_loss);
  for (std::int64_t r = 0; r < blk.nr; ++r) {
    const std::int64_t i = blk.i0 + r;
    if (p.dt_rows != nullptr) p.dt_rows[i] = c0 * blk.dt[r];
    if (p.db_rows != nullptr) p.db_rows[i] = c0 * blk.db[r];
    if (p.loss_rows != nullptr) p.loss_rows[i] = static_cast<float>(blk.loss[r]);
    if (p.dx == nullptr) continue;
    const double scale = k.sc.tau * c0;
    const double* a = blk.acc + r * k.ldp;
    switch (p.dx_dtype) {
      case DType::BF16: {
        auto* out = static_cast<bf16*>(p.dx) + i * p.lddx;
        for (std::int64_t q = 0; q < s.d; ++q)
          out[q] = detail::to_bf16(static_cast<float>(scale * a[q]));
        break;
      }
      case DType::F16: {
        auto* out = static_cast<f16*>(p.dx) + i * p.lddx;
        for (std::int64_t q = 0; q < s.d; ++q)
          out[q] = detail::to_f16(static_cast<float>(scale * a[q]));
        break;
      }
      default: {
        auto* out = static_cast<float*>(p.dx) + i * p.lddx;
        for (std::int64_t q = 0; q < s.d; ++q)
          out[q] = static_cast<float>(scale * a[q]);
        break;
      }
    }
  }
}

// One task: the row blocks starting at rows [i_begin, i_end) against every column,
// column tiles outer (each packed once for all the task's blocks).
KFUSE_CPU_HOT void backward_rows(const BackwardProblem& p, std::int64_t i_begin,
                                 std::int64_t i_end) {
  const Logits& s = p.s;
  const BackwardScalars k{resolve(s),  p.loss == Loss::Clip, packed_ld(s.d),
                          p.smoothing, double(s.nx),         double(s.ny)};
  const std::int64_t nblk = (i_end - i_begin + kRows - 1) / kRows;
  std::vector<float> xt(static_cast<std::size_t>(nblk * kRows * s.d));
  std::vector<double> acc(p.dx != nullptr ? static_cast<std::size_t>(nblk * kRows * k.ldp) : 0,
                          0.0);
  std::vector<RowBlock> blocks(static_cast<std::size_t>(nblk));
  for (std::int64_t b = 0; b < nblk; ++b) {
    RowBlock& blk = blocks[b];
    blk = RowBlock{};
    blk.i0 = i_begin + b * kRows;
    blk.nr = std::min(kRows, i_end - blk.i0);
    float* x = xt.data() + b * kRows * s.d;
    pack_rows_t(s.dtype, s.x, s.ldx, blk.i0, blk.nr, s.d, x);
    blk.xt = x;
    blk.acc = p.dx != nullptr ? acc.data() + b * kRows * k.ldp : nullptr;
  }
  std::vector<float> yp(static_cast<std::size_t>(kColsPacked * k.ldp));
  std::vector<double> tile(static_cast<std::size_t>(kRows * kCols));
  // dS' of a tile in fp32 (an O(1) factor of the gradient product).
  std::vector<float> grad(static_cast<std::size_t>(kRows * kCols), 0.0f);

  for (std::int64_t j0 = 0; j0 < s.ny; j0 += kCols) {
    const std::int64_t cols = std::min(kCols, s.ny - j0);
    pack_cols(s.dtype, s.y, s.ldy, j0, cols, s.d, k.ldp, kColsPacked, yp.data());
    double lse_col[kCols];
    std::int64_t label_col[kCols];
    for (std::int64_t c = 0; c < kCols; ++c) {
      lse_col[c] = k.clip && p.ry != 0.0 && c < cols ? double(p.lse_y[j0 + c]) : 0.0;
      label_col[c] = s.label_mode == LabelMode::Cols && c < cols ? s.labels[j0 + c] : -1;
    }
    for (RowBlock& blk : blocks)
      backward_tile(p, k, blk, j0, cols, yp.data(), lse_col, label_col, tile.data(), grad.data());
  }
  for (const RowBlock& blk : blocks)
    store_rows(p, k, blk);
}

// ------------------------------------------------------------------ BLAS scheme
// Where dS' fits kept_ds_budget(): every logit, dX and dY product through the BLAS's
// sgemm (~2.5x the register blocks above on an AVX2 core), and one gradient pass
// over the rows that forms dX and keeps dS' (fp32, nx x ny) for dY (4 products for a
// CLIP forward + backward instead of 5, 3 instead of 4 for SigLIP's).
//
// Same bits in both passes: the backward meets the forward's log-sum-exps with
// logits it forms again, and at tau = 2^16 one ulp of a dot product moves a
// probability by ~1e-3. A BLAS sums in an order of its choosing, which may differ
// between calls of different shapes, so both passes form S through identical calls:
// one per piece of a fixed grid (the forward plan's row groups cut into pieces of at
// most kPieceRows rows from each group's start, times kPieceCols columns), with the same
// operands, leading dimensions and k = d; every call runs inside a parallel region,
// where OpenBLAS's OpenMP build computes it on the calling thread alone, so its
// result does not depend on the number of threads either.
//
// dX and dY sum in fp32 within a product (over at most ~kGradCols columns of dS',
// or kGradRows rows) and in double across products, in a fixed order: dX per row
// piece over column chunks, dY per block of kDyCols columns over row chunks.

constexpr std::int64_t kPieceRows = 256;
constexpr std::int64_t kPieceCols = 512;
// Columns of dS' per dX product (at least; whole pieces).
constexpr std::int64_t kGradCols = 512;
// Rows of dS' per dY product, and the columns of one dY task.
constexpr std::int64_t kGradRows = 512;
constexpr std::int64_t kDyCols = 128;
// Bytes of dS' the scheme may keep for dY: KFUSE_CPU_CONTRASTIVE_KEEP_BYTES (a whole
// number; 0 keeps none, and every call takes the tiled scheme above, whose memory is
// O(N)), else 256 MiB (N up to 8192 square). Read once, so that a workspace size asked
// for and the call it serves agree.
std::int64_t kept_ds_budget() {
  static const std::int64_t budget = [] {
    const auto bytes = detail::env_whole_number("KFUSE_CPU_CONTRASTIVE_KEEP_BYTES");
    constexpr std::uint64_t kMax = std::uint64_t(1) << 62;
    return static_cast<std::int64_t>(bytes ? std::min(*bytes, kMax) : std::uint64_t(1) << 28);
  }();
  return budget;
}

// Symmetric in nx and ny: both orientations of a problem decide alike.
bool blas_scheme(std::int64_t nx, std::int64_t ny, std::int64_t) {
  return ny > 0 && nx <= kept_ds_budget() / 4 / ny;
}

// Row or column pieces of the grid: [begin, end) ranges in order.
using Pieces = std::vector<std::pair<std::int64_t, std::int64_t>>;
Pieces pieces(std::int64_t n, std::int64_t group, std::int64_t piece) {
  Pieces out;
  for (std::int64_t g0 = 0; g0 < n; g0 += group) {
    const std::int64_t g1 = std::min(n, g0 + group);
    for (std::int64_t p0 = g0; p0 < g1; p0 += piece)
      out.emplace_back(p0, std::min(g1, p0 + piece));
  }
  return out;
}

// The operands in fp32: the caller's own (F32) or converted copies, whose leading
// dimension is d in every pass.
struct Operands {
  const float* x;
  std::int64_t ldx;
  const float* y;
  std::int64_t ldy;
  std::vector<float> xc, yc;
};

void to_f32(DType dtype, const void* src, std::int64_t ld, std::int64_t n, std::int64_t d,
            std::vector<float>& dst) {
  dst.resize(static_cast<std::size_t>(n * d));
  with_type(dtype, src, [&](const auto* in) {
#pragma omp parallel for schedule(static) if (n * d > kParallelMin)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = 0; k < d; ++k)
        dst[i * d + k] = detail::to_float(in[i * ld + k]);
  });
}

void operands(const Logits& s, Operands& o) {
  if (s.dtype == DType::F32) {
    o.x = static_cast<const float*>(s.x);
    o.y = static_cast<const float*>(s.y);
    o.ldx = s.ldx;
    o.ldy = s.ldy;
    return;
  }
  to_f32(s.dtype, s.x, s.ldx, s.nx, s.d, o.xc);
  to_f32(s.dtype, s.y, s.ldy, s.ny, s.d, o.yc);
  o.x = o.xc.data();
  o.y = o.yc.data();
  o.ldx = o.ldy = s.d;
}

// dots [rows x cols] = x[r0, r1) y[c0, c1)^T: the one call that forms a piece of S.
void piece_dots(const Operands& o, std::int64_t d, std::int64_t r0, std::int64_t r1,
                std::int64_t c0, std::int64_t c1, float* dots) {
  sgemm(Trans::No, Trans::Yes, r1 - r0, c1 - c0, d, 1.0f, o.x + r0 * o.ldx, o.ldx, o.y + c0 * o.ldy,
        o.ldy, 0.0f, dots, c1 - c0);
}

// tile [kRows x kCols] = logits of rows [i0, i0 + nr) and columns [j0, j0 + cols) of
// a piece's dots (row r0, column c0, stride ld); b elsewhere (as a zero dot product).
KFUSE_CPU_HOT void piece_tile(const float* dots, std::int64_t ld, std::int64_t i0, std::int64_t nr,
                              std::int64_t j0, std::int64_t cols, const Scalars& sc, double* tile) {
  for (std::int64_t r = 0; r < kRows; ++r) {
    double* t = tile + r * kCols;
    const float* in = dots + (i0 + r) * ld + j0;
    const std::int64_t n = r < nr ? cols : 0;
    for (std::int64_t c = 0; c < n; ++c)
      t[c] = logit(double(in[c]), sc.tau, sc.bias);
    for (std::int64_t c = n; c < kCols; ++c)
      t[c] = sc.bias;
  }
}

// The forward's row group g of the plan against every column, by pieces: row
// pieces outer, column pieces inner, and in a piece 64-column tiles outer, 16-row
// blocks inner, so that each row state meets the columns and each column state the
// rows in increasing order. Row states complete (part 0 of row_part), column
// states partial (part g of col_part), as a plan of one column group.
KFUSE_CPU_HOT void forward_rect_blas(const ForwardProblem& p, const Operands& o, std::int64_t g,
                                     std::int64_t h, float* kept) {
  const RectPlan& plan = p.plan;
  const Logits& s = p.s;
  const Scalars sc = resolve(s);
  const std::int64_t r_begin = g * plan.blocks_per_group * kRows;
  const std::int64_t r_end = std::min(s.nx, r_begin + plan.blocks_per_group * kRows);
  const std::int64_t c_begin = 0, c_end = s.ny;
  if (r_begin >= r_end || c_begin >= c_end) return;
  std::unique_ptr<float[]> dots(new float[kPieceRows * kPieceCols]);  // written before read
  std::vector<double> tile(static_cast<std::size_t>(kRows * kCols));
  std::vector<State> rows(static_cast<std::size_t>(r_end - r_begin),
                          State{lse_empty<double>(), 0.0});
  std::vector<State> cols_st(static_cast<std::size_t>(c_end - c_begin),
                             State{lse_empty<double>(), 0.0});
  for (std::int64_t r0 = r_begin; r0 < r_end; r0 += kPieceRows) {
    const std::int64_t r1 = std::min(r_end, r0 + kPieceRows);
    for (std::int64_t c0 = c_begin; c0 < c_end; c0 += kPieceCols) {
      const std::int64_t c1 = std::min(c_end, c0 + kPieceCols);
      piece_dots(o, s.d, r0, r1, c0, c1, dots.get());
      if (kept != nullptr)
        for (std::int64_t r = r0; r < r1; ++r)
          std::copy(dots.get() + (r - r0) * (c1 - c0), dots.get() + (r - r0 + 1) * (c1 - c0),
                    kept + r * s.ny + c0);
      for (std::int64_t j0 = c0; j0 < c1; j0 += kCols) {
        const std::int64_t cols = std::min(kCols, c1 - j0);
        for (std::int64_t i0 = r0; i0 < r1; i0 += kRows) {
          const std::int64_t nr = std::min(kRows, r1 - i0);
          piece_tile(dots.get(), c1 - c0, i0 - r0, nr, j0 - c0, cols, sc, tile.data());
          tile_stats(p, tile.data(), i0, nr, j0, cols, rows.data() + (i0 - r_begin),
                     cols_st.data() + (j0 - c_begin));
        }
      }
    }
  }
  auto* row_part = static_cast<double*>(p.row_part);
  auto* col_part = static_cast<double*>(p.col_part);
  if (p.loss == Loss::Clip && p.want_cols)
    for (std::int64_t j = c_begin; j < c_end; ++j)
      store_state(col_part + (g * s.ny + j) * kStateFloats, cols_st[j - c_begin]);
  for (std::int64_t i = r_begin; i < r_end; ++i)
    store_state(row_part + (h * s.nx + i) * kStateFloats, rows[i - r_begin]);
}

// One row group of the grid ([r_begin, r_end)) against every column: dX rows, the
// per-row sums and (ds non-null) the group's rows of dS' [nx x ny]; kept: ds holds
// the forward's dot products on entry (each tile read before its dS' is written).
KFUSE_CPU_HOT void backward_group_blas(const BackwardProblem& p, const Operands& o,
                                       const Pieces& cp, std::int64_t r_begin, std::int64_t r_end,
                                       float* ds, bool kept) {
  const Logits& s = p.s;
  const std::int64_t d = s.d;
  const BackwardScalars k{resolve(s),  p.loss == Loss::Clip, d,
                          p.smoothing, double(s.nx),         double(s.ny)};
  // Scratch that every use writes before it reads: not initialised.
  std::unique_ptr<float[]> dots(new float[kPieceRows * kPieceCols]);
  std::unique_ptr<float[]> chunk(ds == nullptr ? new float[kPieceRows * (kGradCols + kPieceCols)]
                                               : nullptr);
  std::unique_ptr<float[]> prod(p.dx != nullptr ? new float[kPieceRows * d] : nullptr);
  std::vector<double> acc(p.dx != nullptr ? static_cast<std::size_t>(kPieceRows * d) : 0);
  std::vector<double> tile(static_cast<std::size_t>(kRows * kCols));
  std::vector<RowBlock> blocks;
  for (std::int64_t r0 = r_begin; r0 < r_end; r0 += kPieceRows) {
    const std::int64_t r1 = std::min(r_end, r0 + kPieceRows), rows = r1 - r0;
    blocks.clear();
    for (std::int64_t i0 = r0; i0 < r1; i0 += kRows) {
      RowBlock blk{};
      blk.i0 = i0;
      blk.nr = std::min(kRows, r1 - i0);
      blk.acc = p.dx != nullptr ? acc.data() + (i0 - r0) * d : nullptr;
      blocks.push_back(blk);
    }
    std::fill(acc.begin(), acc.end(), 0.0);
    // Chunks of whole pieces, each at least kGradCols wide (but the last): the
    // gradient products' k, so that their fixed costs (packing, C) amortise.
    for (std::size_t q0 = 0; q0 < cp.size();) {
      std::size_t q1 = q0;
      const std::int64_t g0 = cp[q0].first;
      while (q1 < cp.size() && cp[q1].first - g0 < kGradCols)
        ++q1;
      const std::int64_t width = cp[q1 - 1].second - g0;
      // dS' of the chunk: in ds (row stride ny) or in the chunk buffer.
      float* grad = ds != nullptr ? ds + r0 * s.ny + g0 : chunk.get();
      const std::int64_t ldg = ds != nullptr ? s.ny : width;
      for (std::size_t q = q0; q < q1; ++q) {
        const auto [c0, c1] = cp[q];
        const std::int64_t ncols = c1 - c0;
        const float* pd = kept ? ds + r0 * s.ny + c0 : dots.get();
        const std::int64_t ldd = kept ? s.ny : ncols;
        if (!kept) piece_dots(o, d, r0, r1, c0, c1, dots.get());
        for (std::int64_t j0 = c0; j0 < c1; j0 += kCols) {
          const std::int64_t cols = std::min(kCols, c1 - j0);
          double lse_col[kCols];
          std::int64_t label_col[kCols];
          for (std::int64_t c = 0; c < kCols; ++c) {
            lse_col[c] = k.clip && p.ry != 0.0 && c < cols ? double(p.lse_y[j0 + c]) : 0.0;
            label_col[c] = s.label_mode == LabelMode::Cols && c < cols ? s.labels[j0 + c] : -1;
          }
          for (RowBlock& blk : blocks) {
            piece_tile(pd, ldd, blk.i0 - r0, blk.nr, j0 - c0, cols, k.sc, tile.data());
            tile_gradients(p, k, blk, j0, cols, tile.data(), lse_col, label_col,
                           grad + (blk.i0 - r0) * ldg + (j0 - g0), ldg);
          }
        }
      }
      if (p.dx != nullptr) {
        // fp32 over the chunk's columns, double across chunks.
        sgemm(Trans::No, Trans::No, rows, d, width, 1.0f, grad, ldg, o.y + g0 * o.ldy, o.ldy, 0.0f,
              prod.get(), d);
        for (std::int64_t e = 0; e < rows * d; ++e)
          acc[e] += double(prod[e]);
      }
      q0 = q1;
    }
    for (const RowBlock& blk : blocks)
      store_rows(p, k, blk);
  }
}

// Folds the [parts][n] states of one direction in order 0, 1, ... into its outputs.
void merge_states(const ForwardProblem& p, const double* part, std::int64_t parts, std::int64_t n,
                  const float* pos, double classes, float* lse_out, float* loss_out) {
  const bool clip = p.loss == Loss::Clip;
#pragma omp parallel for schedule(static) if (n * parts > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    Lse<double> st = lse_empty<double>();
    double sum = 0.0;
    for (std::int64_t q = 0; q < parts; ++q) {
      const double* s = part + (q * n + i) * kStateFloats;
      st = lse_merge(st, Lse<double>{s[0], s[1]});
      sum += s[2];
    }
    if (!clip) {
      loss_out[i] = static_cast<float>(sum);
      continue;
    }
    const double lse = lse_value(st);
    lse_out[i] = static_cast<float>(lse);
    loss_out[i] = static_cast<float>(ce_loss(lse, double(pos[i]), sum, p.smoothing, classes));
  }
}

// The BLAS scheme's forward: the row groups of the plan by pieces (every call
// inside a parallel region, see above), then the same merge.
void forward_blas(const ForwardProblem& p, KeptDots* keep) {
  const RectPlan& plan = p.plan;
  auto* const rect_fn = cpu_entry_point<&forward_rect_blas>();
  Operands o;
  operands(p.s, o);
  float* kept = nullptr;
  if (keep != nullptr) {
    keep->dots.reset(new float[p.s.nx * p.s.ny]);  // every element written
    kept = keep->dots.get();
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t g = 0; g < plan.row_groups; ++g)
    rect_fn(p, o, g, 0, kept);
}

// dY rows [j0, j1) += scale dS'[:, j0:j1)^T x: fp32 over chunks of kGradRows rows,
// double across them.
void dy_block(const BackwardProblem& p, const Operands& o, const float* ds, double scale,
              std::int64_t j0, std::int64_t j1) {
  const std::int64_t nx = p.s.nx, ny = p.s.ny, d = p.s.d, cols = j1 - j0;
  std::unique_ptr<float[]> prod(new float[cols * d]);  // written before read
  std::vector<double> acc(static_cast<std::size_t>(cols * d), 0.0);
  for (std::int64_t r0 = 0; r0 < nx; r0 += kGradRows) {
    const std::int64_t rows = std::min(kGradRows, nx - r0);
    sgemm(Trans::Yes, Trans::No, cols, d, rows, 1.0f, ds + r0 * ny + j0, ny, o.x + r0 * o.ldx,
          o.ldx, 0.0f, prod.get(), d);
    for (std::int64_t e = 0; e < cols * d; ++e)
      acc[e] += double(prod[e]);
  }
  for (std::int64_t j = 0; j < cols; ++j)
    for (std::int64_t q = 0; q < d; ++q)
      p.dy_accum[(j0 + j) * p.ld_dy_accum + q] += static_cast<float>(scale * acc[j * d + q]);
}

// The BLAS scheme's gradient pass: one task per row group of the forward's plan
// (keeping dS' when p.dy_accum is set), then dY by blocks of kDyCols columns.
void backward_blas(const BackwardProblem& p, KeptDots* kept) {
  auto* const group_fn = cpu_entry_point<&backward_group_blas>();
  const Logits& s = p.s;
  const RectPlan plan = forward_layout(Machine{}, s.nx, s.ny).plan;
  const Pieces rp = pieces(s.nx, plan.blocks_per_group * kRows, s.nx);
  const Pieces cp = pieces(s.ny, s.ny, kPieceCols);
  Operands o;
  operands(s, o);
  const std::int64_t groups = static_cast<std::int64_t>(rp.size());
  // Not initialised: the row pass writes every element.
  std::unique_ptr<float[]> ds;
  const bool from_kept = kept != nullptr && kept->dots != nullptr;
  if (from_kept)
    ds = std::move(kept->dots);
  else if (p.dy_accum != nullptr)
    ds.reset(new float[s.nx * s.ny]);
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t g = 0; g < groups; ++g)
    group_fn(p, o, cp, rp[g].first, rp[g].second, ds.get(), from_kept);
  if (p.dy_accum == nullptr) return;
  const double scale = resolve(s).tau * p.coef * resolve(p.grad_loss);
  const std::int64_t blocks = (s.ny + kDyCols - 1) / kDyCols;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t b = 0; b < blocks; ++b)
    dy_block(p, o, ds.get(), scale, b * kDyCols, std::min(s.ny, (b + 1) * kDyCols));
}

}  // namespace

bool contrastive_dy_in_row_pass(std::int64_t nx, std::int64_t ny, std::int64_t d) {
  return blas_scheme(nx, ny, d);
}

void contrastive_store_rows(const float* src, std::int64_t ld_src, std::int64_t rows,
                            std::int64_t d, void* dst, DType dtype, std::int64_t ld_dst) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* in = src + i * ld_src;
    switch (dtype) {
      case DType::BF16:
        for (std::int64_t q = 0; q < d; ++q)
          static_cast<bf16*>(dst)[i * ld_dst + q] = detail::to_bf16(in[q]);
        break;
      case DType::F16:
        for (std::int64_t q = 0; q < d; ++q)
          static_cast<f16*>(dst)[i * ld_dst + q] = detail::to_f16(in[q]);
        break;
      default:
        std::copy(in, in + d, static_cast<float*>(dst) + i * ld_dst);
        break;
    }
  }
}

void contrastive_forward(const ForwardProblem& p, KeptDots* keep) {
  const RectPlan& plan = p.plan;
  // One entry point per instruction set (src/core/isa.hpp). The register blocks are
  // written in 256-bit vectors: the AVX-512 entry point gains the wider epilogue loops and
  // 32 vector registers, not 512-bit dot products.
  auto* const rect_fn = cpu_entry_point<&forward_rect>();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (p.loss == Loss::Clip) {
    if (p.want_rows) std::fill(p.pos_x, p.pos_x + p.s.nx, nan);
    if (p.want_cols) std::fill(p.pos_y, p.pos_y + p.s.ny, nan);
  }
  const std::int64_t rects = plan.row_groups * plan.col_groups;
  if (blas_scheme(p.s.nx, p.s.ny, p.s.d)) {
    forward_blas(p, keep);
  } else {
#pragma omp parallel for schedule(dynamic, 1) if (rects > 1)
    for (std::int64_t r = 0; r < rects; ++r)
      rect_fn(p, r / plan.col_groups, r % plan.col_groups);
  }
  if (p.want_rows || p.loss == Loss::Siglip)
    merge_states(p, static_cast<const double*>(p.row_part),
                 blas_scheme(p.s.nx, p.s.ny, p.s.d) ? 1 : plan.col_groups, p.s.nx, p.pos_x,
                 double(p.s.ny), p.lse_x, p.loss_x);
  if (p.loss == Loss::Clip && p.want_cols)
    merge_states(p, static_cast<const double*>(p.col_part), plan.row_groups, p.s.ny, p.pos_y,
                 double(p.s.nx), p.lse_y, p.loss_y);
}

void contrastive_backward(const BackwardProblem& p, KeptDots* kept) {
  if (blas_scheme(p.s.nx, p.s.ny, p.s.d)) return backward_blas(p, kept);
  auto* const rows_fn = cpu_entry_point<&backward_rows>();
  const std::int64_t task_rows = kTaskBlocks * kRows;
  const std::int64_t tasks = (p.s.nx + task_rows - 1) / task_rows;
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1)
  for (std::int64_t t = 0; t < tasks; ++t)
    rows_fn(p, t * task_rows, std::min(p.s.nx, (t + 1) * task_rows));
}

}  // namespace kfuse::cpu
