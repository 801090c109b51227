// CPU path of the contrastive loss family: the same passes as the GPU, in double.
//
// Logits are formed tile by tile (16 rows x 64 columns) from double copies of the
// rows involved, with products and sums in double; no more than a tile of them
// exists at any time, so a 64k-pair call needs megabytes, not the 16 GiB of S.
// Forward: OpenMP over the rectangles of the plan, whose partial states are
// merged afterwards in a fixed order. Backward: OpenMP over blocks of 16 rows, each
// walking all columns. Every sum has a fixed order, so the results do not depend
// on the number of threads.
#include "contrastive.hpp"
#include "isa.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "../../kernels/common/float16.hpp"

namespace kfuse::cpu {
namespace {

using namespace detail::contrastive;

constexpr std::int64_t kRows = 16;  // geometry(cpu).block_rows
constexpr std::int64_t kCols = 64;  // geometry(cpu).tile_cols
constexpr int kVec = 4;             // doubles per 256-bit vector
constexpr int kStrip = 8;           // d-columns per register block of the gradient product

// Below this many merged states, a parallel region costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 16;

#define KFUSE_CPU_HOT inline __attribute__((always_inline))

// Packed rows are padded with zeros to a multiple of kStrip (itself of kVec), and
// by one more strip when that is a multiple of 256 bytes: the gradient product
// walks 64 rows at this stride, which at 4 KiB (d = 512) would map them all to
// the same few L1 sets.
std::int64_t packed_ld(std::int64_t d) {
  const std::int64_t ld = (d + kStrip - 1) / kStrip * kStrip;
  return ld % 32 == 0 ? ld + kStrip : ld;
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

template <class T>
void pack_typed(const T* src, std::int64_t ld, std::int64_t row0, std::int64_t rows, std::int64_t d,
                std::int64_t ldp, std::int64_t capacity, double* dst) {
  for (std::int64_t r = 0; r < capacity; ++r) {
    double* out = dst + r * ldp;
    if (r < rows) {
      const T* in = src + (row0 + r) * ld;
      for (std::int64_t k = 0; k < d; ++k)
        out[k] = static_cast<double>(detail::to_float(in[k]));
      for (std::int64_t k = d; k < ldp; ++k)
        out[k] = 0.0;
    } else {
      std::fill(out, out + ldp, 0.0);
    }
  }
}

// dst [capacity x ldp] = rows [row0, row0 + rows) of src in double, zero elsewhere.
void pack_rows(DType dtype, const void* src, std::int64_t ld, std::int64_t row0, std::int64_t rows,
               std::int64_t d, std::int64_t ldp, std::int64_t capacity, double* dst) {
  switch (dtype) {
    case DType::BF16:
      return pack_typed(static_cast<const bf16*>(src), ld, row0, rows, d, ldp, capacity, dst);
    case DType::F16:
      return pack_typed(static_cast<const f16*>(src), ld, row0, rows, d, ldp, capacity, dst);
    default:
      return pack_typed(static_cast<const float*>(src), ld, row0, rows, d, ldp, capacity, dst);
  }
}

// ------------------------------------------------------------------ hot loops
// Always inlined into the per-ISA entry points at the end of the file, so that
// each is compiled whole for its instruction set.

// Four doubles in one (256-bit) vector: GCC/Clang vector extensions, so that the
// accumulators of a register block are named values the compiler keeps in
// registers (arrays of them it spills). The baseline entry point lowers them to
// pairs of 128-bit operations.
typedef double v4d __attribute__((vector_size(32)));

KFUSE_CPU_HOT v4d load4(const double* p) {
  v4d v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
KFUSE_CPU_HOT void store4(double* p, v4d v) {
  std::memcpy(p, &v, sizeof(v));
}
KFUSE_CPU_HOT double lanes_sum(v4d v) {
  return (v[0] + v[1]) + (v[2] + v[3]);
}

// out[ii][jj] = x_ii . y_jj for a 4 x 2 block of packed rows: 8 vector
// accumulators over k, summed lane by lane in a fixed order at the end.
KFUSE_CPU_HOT void dot_4x2(const double* __restrict x, const double* __restrict y, std::int64_t ldp,
                           double (&out)[4][2]) {
  v4d a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {};
  for (std::int64_t k = 0; k < ldp; k += kVec) {
    const v4d y0 = load4(y + k), y1 = load4(y + ldp + k);
    v4d xv = load4(x + k);
    a00 += xv * y0;
    a01 += xv * y1;
    xv = load4(x + ldp + k);
    a10 += xv * y0;
    a11 += xv * y1;
    xv = load4(x + 2 * ldp + k);
    a20 += xv * y0;
    a21 += xv * y1;
    xv = load4(x + 3 * ldp + k);
    a30 += xv * y0;
    a31 += xv * y1;
  }
  out[0][0] = lanes_sum(a00);
  out[0][1] = lanes_sum(a01);
  out[1][0] = lanes_sum(a10);
  out[1][1] = lanes_sum(a11);
  out[2][0] = lanes_sum(a20);
  out[2][1] = lanes_sum(a21);
  out[3][0] = lanes_sum(a30);
  out[3][1] = lanes_sum(a31);
}

// s [kRows x kCols] = tau * xp yp^T + b over whole packed blocks (padding rows give b).
KFUSE_CPU_HOT void logit_tile(const double* xp, const double* yp, std::int64_t ldp,
                              const Scalars& sc, double* s) {
  for (int r0 = 0; r0 < kRows; r0 += 4)
    for (int c0 = 0; c0 < kCols; c0 += 2) {
      double dot[4][2];
      dot_4x2(xp + r0 * ldp, yp + c0 * ldp, ldp, dot);
      for (int ii = 0; ii < 4; ++ii)
        for (int jj = 0; jj < 2; ++jj)
          s[(r0 + ii) * kCols + c0 + jj] = logit(dot[ii][jj], sc.tau, sc.bias);
    }
}

// acc [kRows x ldp] += g [kRows x kCols] yp [kCols x ldp] over the first `cols`
// columns of g, in register blocks of 4 rows x kStrip d-columns.
KFUSE_CPU_HOT void accumulate_tile(const double* __restrict g, const double* __restrict yp,
                                   std::int64_t cols, std::int64_t ldp, double* __restrict acc) {
  for (int r0 = 0; r0 < kRows; r0 += 4)
    for (std::int64_t k0 = 0; k0 < ldp; k0 += kStrip) {
      double* a = acc + r0 * ldp + k0;
      v4d a00 = load4(a), a01 = load4(a + 4), a10 = load4(a + ldp), a11 = load4(a + ldp + 4),
          a20 = load4(a + 2 * ldp), a21 = load4(a + 2 * ldp + 4), a30 = load4(a + 3 * ldp),
          a31 = load4(a + 3 * ldp + 4);
      const double* gr = g + r0 * kCols;
      for (std::int64_t jj = 0; jj < cols; ++jj) {
        const v4d y0 = load4(yp + jj * ldp + k0), y1 = load4(yp + jj * ldp + k0 + 4);
        a00 += gr[jj] * y0;
        a01 += gr[jj] * y1;
        a10 += gr[kCols + jj] * y0;
        a11 += gr[kCols + jj] * y1;
        a20 += gr[2 * kCols + jj] * y0;
        a21 += gr[2 * kCols + jj] * y1;
        a30 += gr[3 * kCols + jj] * y0;
        a31 += gr[3 * kCols + jj] * y1;
      }
      store4(a, a00);
      store4(a + 4, a01);
      store4(a + ldp, a10);
      store4(a + ldp + 4, a11);
      store4(a + 2 * ldp, a20);
      store4(a + 2 * ldp + 4, a21);
      store4(a + 3 * ldp, a30);
      store4(a + 3 * ldp + 4, a31);
    }
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

// One rectangle of the plan: column tiles outer (each packed once), row blocks
// inner; the rectangle's row states persist across its column tiles, a column's
// state is complete after the inner loop.
KFUSE_CPU_HOT void forward_rect(const Forward& p, std::int64_t g, std::int64_t h) {
  const RectPlan& plan = p.plan;
  const Logits& s = p.s;
  const Scalars sc = resolve(s);
  const bool clip = p.loss == Loss::Clip;
  const std::int64_t ldp = packed_ld(s.d);
  const std::int64_t r_begin = g * plan.blocks_per_group * kRows;
  const std::int64_t r_end = std::min(s.nx, r_begin + plan.blocks_per_group * kRows);
  const std::int64_t c_begin = h * plan.tiles_per_group * kCols;
  const std::int64_t c_end = std::min(s.ny, c_begin + plan.tiles_per_group * kCols);
  if (r_begin >= r_end || c_begin >= c_end) return;

  std::vector<double> xp(static_cast<std::size_t>(kRows * ldp));
  std::vector<double> yp(static_cast<std::size_t>(kCols * ldp));
  std::vector<double> tile(static_cast<std::size_t>(kRows * kCols));
  std::vector<State> rows(static_cast<std::size_t>(r_end - r_begin),
                          State{lse_empty<double>(), 0.0});
  auto* row_part = static_cast<double*>(p.row_part);
  auto* col_part = static_cast<double*>(p.col_part);

  for (std::int64_t j0 = c_begin; j0 < c_end; j0 += kCols) {
    const std::int64_t cols = std::min(kCols, c_end - j0);
    pack_rows(s.dtype, s.y, s.ldy, j0, cols, s.d, ldp, kCols, yp.data());
    State col[kCols];
    for (auto& c : col)
      c = State{lse_empty<double>(), 0.0};
    for (std::int64_t i0 = r_begin; i0 < r_end; i0 += kRows) {
      const std::int64_t nr = std::min(kRows, r_end - i0);
      pack_rows(s.dtype, s.x, s.ldx, i0, nr, s.d, ldp, kRows, xp.data());
      logit_tile(xp.data(), yp.data(), ldp, sc, tile.data());
      for (std::int64_t r = 0; r < nr; ++r) {
        const std::int64_t i = i0 + r;
        const double* srow = tile.data() + r * kCols;
        State& st = rows[i - r_begin];
        // The row's positive column, as a tile offset or -1 (a forward pass has
        // its labels on its rows: modes Identity and Rows only).
        const std::int64_t target = s.label_mode == LabelMode::Rows
                                        ? s.labels[i]
                                        : (s.label_mode == LabelMode::Identity ? i : -1);
        const std::int64_t pc = target >= j0 && target < j0 + cols ? target - j0 : -1;
        if (!clip) {
          double sum = 0.0;
          for (std::int64_t c = 0; c < cols; ++c)
            sum += siglip_term(srow[c], c == pc);
          st.sum += sum;
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
      if (clip && p.want_cols) {
        // Column by column, vectorised across the tile's columns.
        double cmax[kCols], csum[kCols], cexp[kCols];
        for (std::int64_t c = 0; c < kCols; ++c) {
          cmax[c] = -INFINITY;
          csum[c] = 0.0;
          cexp[c] = 0.0;
        }
        for (std::int64_t r = 0; r < nr; ++r) {
          const double* srow = tile.data() + r * kCols;
#pragma omp simd
          for (std::int64_t c = 0; c < kCols; ++c) {
            cmax[c] = std::max(cmax[c], srow[c]);
            csum[c] += srow[c];
          }
        }
        for (std::int64_t c = 0; c < kCols; ++c)
          cmax[c] = std::max(cmax[c], col[c].lse.m);
        for (std::int64_t r = 0; r < nr; ++r) {
          const double* srow = tile.data() + r * kCols;
#pragma omp simd
          for (std::int64_t c = 0; c < kCols; ++c)
            cexp[c] += c_exp(srow[c] - cmax[c]);
        }
        for (std::int64_t c = 0; c < cols; ++c) {
          col[c].lse = lse_merge(col[c].lse, Lse<double>{cmax[c], cexp[c]});
          col[c].sum += csum[c];
        }
      }
    }
    if (clip && p.want_cols)
      for (std::int64_t c = 0; c < cols; ++c)
        store_state(col_part + (g * s.ny + j0 + c) * kStateFloats, col[c]);
  }
  for (std::int64_t i = r_begin; i < r_end; ++i)
    store_state(row_part + (h * s.nx + i) * kStateFloats, rows[i - r_begin]);
}

// ------------------------------------------------------------------ backward

// One block of rows against every column: dX rows, and the per-row sums.
KFUSE_CPU_HOT void backward_rows(const Backward& p, std::int64_t i0) {
  const Logits& s = p.s;
  const Scalars sc = resolve(s);
  const bool clip = p.loss == Loss::Clip;
  const std::int64_t ldp = packed_ld(s.d);
  const std::int64_t nr = std::min(kRows, s.nx - i0);
  const double eps = p.smoothing, nx = double(s.nx), ny = double(s.ny);

  std::vector<double> xp(static_cast<std::size_t>(kRows * ldp));
  std::vector<double> yp(static_cast<std::size_t>(kCols * ldp));
  std::vector<double> tile(static_cast<std::size_t>(kRows * kCols));
  std::vector<double> grad(static_cast<std::size_t>(kRows * kCols), 0.0);
  std::vector<double> acc(p.dx != nullptr ? static_cast<std::size_t>(kRows * ldp) : 0, 0.0);
  double dt[kRows] = {}, db[kRows] = {}, loss[kRows] = {};
  pack_rows(s.dtype, s.x, s.ldx, i0, nr, s.d, ldp, kRows, xp.data());

  for (std::int64_t j0 = 0; j0 < s.ny; j0 += kCols) {
    const std::int64_t cols = std::min(kCols, s.ny - j0);
    pack_rows(s.dtype, s.y, s.ldy, j0, cols, s.d, ldp, kCols, yp.data());
    logit_tile(xp.data(), yp.data(), ldp, sc, tile.data());
    // The tile's column data; a pair is positive when j == target (Identity: i,
    // Rows: labels[i]) or labels[j] == i (Cols).
    double lse_col[kCols];
    std::int64_t label_col[kCols];
    for (std::int64_t c = 0; c < kCols; ++c) {
      lse_col[c] = clip && p.ry != 0.0 && c < cols ? double(p.lse_y[j0 + c]) : 0.0;
      label_col[c] = s.label_mode == LabelMode::Cols && c < cols ? s.labels[j0 + c] : -1;
    }
    for (std::int64_t r = 0; r < nr; ++r) {
      const std::int64_t i = i0 + r;
      const std::int64_t target = s.label_mode == LabelMode::Rows
                                      ? s.labels[i]
                                      : (s.label_mode == LabelMode::Identity ? i : -1);
      const double lse_row = clip && p.rx != 0.0 ? double(p.lse_x[i]) : 0.0;
      const double* v = tile.data() + r * kCols;
      double* gr = grad.data() + r * kCols;
      double tdt = 0.0, tdb = 0.0;
      if (clip) {
#pragma omp simd reduction(+ : tdt, tdb)
        for (std::int64_t c = 0; c < cols; ++c) {
          const bool pos = j0 + c == target || label_col[c] == i;
          const double g = clip_dlogit(v[c], lse_row, lse_col[c], pos, p.rx, p.ry, eps, nx, ny);
          gr[c] = g;
          tdt += g * (v[c] - sc.bias);
          tdb += g;
        }
      } else {
#pragma omp simd reduction(+ : tdt, tdb)
        for (std::int64_t c = 0; c < cols; ++c) {
          const bool pos = j0 + c == target || label_col[c] == i;
          const double g = siglip_dlogit(v[c], pos);
          gr[c] = g;
          tdt += g * (v[c] - sc.bias);
          tdb += g;
        }
        if (p.loss_rows != nullptr)
          for (std::int64_t c = 0; c < cols; ++c)
            loss[r] += siglip_term(v[c], j0 + c == target || label_col[c] == i);
      }
      dt[r] += tdt;
      db[r] += tdb;
    }
    if (p.dx != nullptr) accumulate_tile(grad.data(), yp.data(), cols, ldp, acc.data());
  }

  const double c0 = p.coef * resolve(p.grad_loss);
  for (std::int64_t r = 0; r < nr; ++r) {
    const std::int64_t i = i0 + r;
    if (p.dt_rows != nullptr) p.dt_rows[i] = c0 * dt[r];
    if (p.db_rows != nullptr) p.db_rows[i] = c0 * db[r];
    if (p.loss_rows != nullptr) p.loss_rows[i] = static_cast<float>(loss[r]);
    if (p.dx == nullptr) continue;
    const double scale = sc.tau * c0;
    const double* a = acc.data() + r * ldp;
    switch (p.dx_dtype) {
      case DType::BF16: {
        auto* out = static_cast<bf16*>(p.dx) + i * p.lddx;
        for (std::int64_t k = 0; k < s.d; ++k)
          out[k] = detail::to_bf16(static_cast<float>(scale * a[k]));
        break;
      }
      case DType::F16: {
        auto* out = static_cast<f16*>(p.dx) + i * p.lddx;
        for (std::int64_t k = 0; k < s.d; ++k)
          out[k] = detail::to_f16(static_cast<float>(scale * a[k]));
        break;
      }
      default: {
        auto* out = static_cast<float*>(p.dx) + i * p.lddx;
        for (std::int64_t k = 0; k < s.d; ++k)
          out[k] = static_cast<float>(scale * a[k]);
        break;
      }
    }
  }
}

// ------------------------------------------------------------------ entry points

void forward_rect_baseline(const Forward& p, std::int64_t g, std::int64_t h) {
  forward_rect(p, g, h);
}
void backward_rows_baseline(const Backward& p, std::int64_t i0) {
  backward_rows(p, i0);
}

#ifdef KFUSE_CPU_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) void forward_rect_avx2(const Forward& p, std::int64_t g,
                                                           std::int64_t h) {
  forward_rect(p, g, h);
}
__attribute__((target("avx2,fma"))) void backward_rows_avx2(const Backward& p, std::int64_t i0) {
  backward_rows(p, i0);
}
#endif

// Folds the [parts][n] states of one direction in order 0, 1, ... into its outputs.
void merge_states(const Forward& p, const double* part, std::int64_t parts, std::int64_t n,
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

}  // namespace

void contrastive_forward(const Forward& p) {
  const RectPlan& plan = p.plan;
  auto* rect_fn = &forward_rect_baseline;
#ifdef KFUSE_CPU_HAVE_AVX2_PATH
  if (use_avx2()) rect_fn = &forward_rect_avx2;
#endif
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (p.loss == Loss::Clip) {
    if (p.want_rows) std::fill(p.pos_x, p.pos_x + p.s.nx, nan);
    if (p.want_cols) std::fill(p.pos_y, p.pos_y + p.s.ny, nan);
  }
  const std::int64_t rects = plan.row_groups * plan.col_groups;
#pragma omp parallel for schedule(dynamic, 1) if (rects > 1)
  for (std::int64_t r = 0; r < rects; ++r)
    rect_fn(p, r / plan.col_groups, r % plan.col_groups);
  if (p.want_rows || p.loss == Loss::Siglip)
    merge_states(p, static_cast<const double*>(p.row_part), plan.col_groups, p.s.nx, p.pos_x,
                 double(p.s.ny), p.lse_x, p.loss_x);
  if (p.loss == Loss::Clip && p.want_cols)
    merge_states(p, static_cast<const double*>(p.col_part), plan.row_groups, p.s.ny, p.pos_y,
                 double(p.s.nx), p.lse_y, p.loss_y);
}

void contrastive_backward(const Backward& p) {
  auto* rows_fn = &backward_rows_baseline;
#ifdef KFUSE_CPU_HAVE_AVX2_PATH
  if (use_avx2()) rows_fn = &backward_rows_avx2;
#endif
  const std::int64_t blocks = (p.s.nx + kRows - 1) / kRows;
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (std::int64_t b = 0; b < blocks; ++b)
    rows_fn(p, b * kRows);
}

}  // namespace kfuse::cpu
