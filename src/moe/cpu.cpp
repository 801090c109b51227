// The CPU path of the mixture-of-experts family. Obviously correct first: loops
// over rows (OpenMP where the rows are independent), sums in double (the combine:
// fp32 fma chains, as the GPU's), matrix
// products through the BLAS's sgemm (fp32 accumulation, blas.hpp) per expert: fp32
// operands in place (a transposed weight as the BLAS's transpose flag), bf16 ones
// and gathered rows as float copies of the expert's panel. The
// rounding points match the GPU path (every stored intermediate is rounded to the
// element type, and the same per-element functions of kernels/moe/math.hpp are used) with
// one exception: the bf16 weight gradient with gates scales dY by the gate in fp32
// here, while the GPU rounds gate * dY to bf16 for its tensor cores (at most 2^-9
// relative per term, within the bf16 tolerance of the tests).
#include "src/moe/cpu.hpp"
#include "src/core/isa.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/core/float16.hpp"
#include "kernels/moe/math.hpp"
#include "src/core/blas.hpp"
#include "src/core/openmp.hpp"

namespace kfuse::cpu {
namespace {

using detail::PlanArrays;
using std::int64_t;

// Parallel regions are few and large: each ends on a barrier, and on a shared
// machine a descheduled thread stalls every one of them. A loop with little work,
// or one already inside a parallel region, runs serially.
bool worth_parallel(int64_t work, int64_t minimum = int64_t(1) << 15) {
  return work >= minimum && max_threads() > 1 && !in_parallel();
}
// A memory-bound loop (a few operations per element moved) gains from a second
// thread only when it streams well past the caches.
bool worth_parallel_stream(int64_t elements) {
  return worth_parallel(elements, int64_t(1) << 21);
}

// body(e) for every expert (with rows, unless include_empty): one parallel region
// over the experts when there are enough of them to keep every thread busy (each
// expert's own loops then run serially), otherwise one expert after another with
// parallel loops inside.
template <class F>
void for_each_expert(const PlanArrays& p, bool include_empty, F&& body) {
  std::vector<int64_t> todo;
  for (int64_t e = 0; e < p.experts; ++e)
    if (include_empty || p.counts[e] > 0) todo.push_back(e);
  const int64_t n = static_cast<int64_t>(todo.size());
  if (n >= 2 * max_threads()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i)
      body(todo[i]);
  } else {
    for (int64_t i = 0; i < n; ++i)
      body(todo[i]);
  }
}

template <class T>
float load(T v) {
  return static_cast<float>(detail::to_float(v));
}
template <class T>
T store(float v) {
  return detail::from_float<T>(v);
}

template <class T>
void zero_row(T* row, int64_t cols) {
  std::fill(row, row + cols, store<T>(0.0f));
}

// Zeroes the padding rows [offsets[e] + counts[e], offsets[e + 1]) of a permuted buffer.
template <class T>
void zero_padding_rows(const PlanArrays& p, int64_t cols, T* dst, int64_t ld) {
  if (dst == nullptr || p.pad_to == 1) return;
  for (int64_t e = 0; e < p.experts; ++e)
    for (int64_t r = int64_t(p.offsets[e]) + p.counts[e]; r < p.offsets[e + 1]; ++r)
      zero_row(dst + r * ld, cols);
}

// The rows of one operand for the m permuted rows r0.. of an expert, as a float
// matrix: row i is the source row of permuted row r0 + i (itself, or its token's
// row when `gather`), scaled by its slot's gate when `gates` is set. fp32 inputs
// read in place need no copy.
template <class T>
const float* operand_rows(const T* base, int64_t ld, int64_t cols, bool gather, const float* gates,
                          int64_t ld_gates, const PlanArrays& p, int64_t r0, int64_t m,
                          std::vector<float>& buf, int64_t* ld_out) {
  if constexpr (std::is_same_v<T, float>) {
    if (!gather && gates == nullptr) {
      *ld_out = ld;
      return base + r0 * ld;
    }
  }
  buf.resize(static_cast<std::size_t>(m * cols));
#pragma omp parallel for schedule(static) if (worth_parallel_stream(m * cols))
  for (int64_t i = 0; i < m; ++i) {
    const int64_t slot = p.row_slot[r0 + i];
    const int64_t src = gather ? detail::slot_token(slot, p.top_k) : r0 + i;
    const float w = gates ? gates[detail::slot_gate_offset(slot, p.top_k, ld_gates)] : 1.0f;
    const T* row = base + src * ld;
    float* out = buf.data() + i * cols;
    for (int64_t c = 0; c < cols; ++c)
      out[c] = gates ? w * load(row[c]) : load(row[c]);
  }
  *ld_out = cols;
  return buf.data();
}

// Expert e's weight block as a float matrix, in its stored layout: [k x n], or
// [n x k] when `trans` (*trans_out tells the product which). fp32 weights are read
// in place; bf16 ones are converted without transposing (a contiguous pass).
template <class T>
const float* weight_block(const T* b, int64_t ldb, bool trans, int64_t e, int64_t k, int64_t n,
                          std::vector<float>& buf, int64_t* ld_out) {
  const int64_t rows = trans ? n : k, cols = trans ? k : n;
  const T* block = b + e * rows * ldb;
  if constexpr (std::is_same_v<T, float>) {
    *ld_out = ldb;
    return block;
  }
  buf.resize(static_cast<std::size_t>(rows * cols));
#pragma omp parallel for schedule(static) if (worth_parallel_stream(rows * cols))
  for (int64_t p = 0; p < rows; ++p)
    for (int64_t j = 0; j < cols; ++j)
      buf[p * cols + j] = load(block[p * ldb + j]);
  *ld_out = cols;
  return buf.data();
}

}  // namespace

template <class L>
void moe_router_topk(const detail::RouterProblem<L>& a) {
  const int k = static_cast<int>(a.top_k);
  const bool need_sum = a.mode == RouterMode::SoftmaxTopK && !a.renormalize;
#pragma omp parallel if (worth_parallel(a.tokens * a.experts))
  {
    std::vector<std::uint64_t> list(k);
    std::vector<float> v(k), g(k);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < a.tokens; ++t) {
      const L* row = a.logits + t * a.ld_logits;
      int count = 0;
      for (int64_t e = 0; e < a.experts; ++e)
        count = detail::topk_insert(
            list.data(), k, count,
            detail::topk_pack(detail::topk_key(load(row[e])), static_cast<std::int32_t>(e)));
      for (int j = 0; j < k; ++j) {
        const std::int32_t idx = detail::topk_index(list[j]);
        a.ids[t * a.ld_ids + j] = idx;
        v[j] = load(row[idx]);
      }
      float sum_all = 0.0f;
      if (need_sum)
        for (int64_t e = 0; e < a.experts; ++e)
          sum_all += detail::router_softmax_term(load(row[e]), v[0]);
      detail::router_gates(a.mode, a.renormalize, v.data(), k, sum_all, g.data());
      for (int j = 0; j < k; ++j)
        a.gates[t * a.ld_gates + j] = g[j];
    }
  }
}

void moe_plan(const detail::PlanProblem& a) {
  const int64_t slots = a.tokens * a.top_k;
  auto expert_of = [&](int64_t s) -> int64_t {
    const std::int32_t id = a.ids[(s / a.top_k) * a.ld_ids + s % a.top_k];
    return id >= 0 && id < a.experts ? id : -1;  // out of range: a dropped slot
  };
  std::vector<int64_t> routed(static_cast<std::size_t>(a.experts), 0);
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = expert_of(s);
    if (e >= 0) ++routed[e];
  }
  int64_t offset = 0;
  for (int64_t e = 0; e < a.experts; ++e) {
    a.counts[e] = static_cast<std::int32_t>(detail::kept_rows(routed[e], a.capacity));
    a.offsets[e] = static_cast<std::int32_t>(offset);
    offset += detail::padded_rows(routed[e], a.capacity, a.pad_to);
  }
  a.offsets[a.experts] = static_cast<std::int32_t>(offset);
  std::fill(a.row_slot, a.row_slot + a.rows, -1);
  // Slots in order: each expert's rows fill in slot order (stable), the first
  // `counts[e]` kept.
  std::vector<int64_t> filled(static_cast<std::size_t>(a.experts), 0);
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = expert_of(s);
    if (e < 0 || filled[e] == a.counts[e]) {
      a.slot_row[s] = -1;
      continue;
    }
    const int64_t r = a.offsets[e] + filled[e]++;
    a.slot_row[s] = static_cast<std::int32_t>(r);
    a.row_slot[r] = static_cast<std::int32_t>(s);
  }
}

template <class T>
void moe_scatter(const detail::ScatterProblem<T>& a) {
  const PlanArrays& p = a.plan;
  const int64_t used = p.offsets[p.experts];
#pragma omp parallel for schedule(static) if (worth_parallel_stream(used * a.cols))
  for (int64_t r = 0; r < used; ++r) {
    T* out = a.dst + r * a.ld_dst;
    const std::int32_t slot = p.row_slot[r];
    if (slot < 0) {
      zero_row(out, a.cols);
      continue;
    }
    const T* in = a.src + detail::slot_token(slot, p.top_k) * a.ld_src;
    std::copy(in, in + a.cols, out);
  }
}

// dst[t] for the tokens [t0, t1): sum_j w_tj src[row of (t, j)], j in slot order, as
// fp32 fma chains from 0, the chains of the GPU's combine_kernel (kernels/moe/rows.cu), so
// both backends give the same bits. acc: cols floats of scratch.
template <class T>
KFUSE_CPU_HOT void combine_tokens(const detail::CombineProblem<T>& a, int64_t t0, int64_t t1,
                                  float* acc) {
  const PlanArrays& p = a.plan;
  for (int64_t t = t0; t < t1; ++t) {
    std::fill(acc, acc + a.cols, 0.0f);
    for (int64_t j = 0; j < p.top_k; ++j) {
      const int64_t s = t * p.top_k + j;
      const std::int32_t r = p.slot_row[s];
      if (r < 0) continue;
      const T* row = a.src + (a.source == detail::CombineSource::Permuted ? r : s) * a.ld_src;
      const float w = a.gates ? a.gates[t * a.ld_gates + j] : 1.0f;
      for (int64_t c = 0; c < a.cols; ++c)
        acc[c] = std::fma(w, load(row[c]), acc[c]);
    }
    T* out = a.dst + t * a.ld_dst;
    for (int64_t c = 0; c < a.cols; ++c)
      out[c] = store<T>(acc[c]);
  }
}

template <class T>
void moe_combine(const detail::CombineProblem<T>& a) {
  const PlanArrays& p = a.plan;
  // Per instruction set (src/core/isa.hpp): the fma chains vectorise across columns where
  // the processor has FMA.
  auto* const tokens_fn = cpu_entry_point<&combine_tokens<T>>();
  constexpr int64_t kTokens = 16;
  const int64_t chunks = (p.tokens + kTokens - 1) / kTokens;
#pragma omp parallel if (worth_parallel_stream(p.tokens * p.top_k * a.cols))
  {
    std::vector<float> acc(static_cast<std::size_t>(a.cols));
#pragma omp for schedule(static)
    for (int64_t q = 0; q < chunks; ++q)
      tokens_fn(a, q * kTokens, std::min(p.tokens, (q + 1) * kTokens), acc.data());
  }
}

template <class T>
void moe_gather_backward(const detail::GatherBackwardProblem<T>& a) {
  const PlanArrays& p = a.plan;
  const int64_t used = p.offsets[p.experts];
#pragma omp parallel for schedule(static) if (worth_parallel_stream(used * a.cols))
  for (int64_t r = 0; r < used; ++r) {
    T* out = a.dyp + r * a.ld_dyp;
    const std::int32_t slot = p.row_slot[r];
    if (slot < 0) {
      zero_row(out, a.cols);
      continue;
    }
    const float g = a.gates[detail::slot_gate_offset(slot, p.top_k, a.ld_gates)];
    const T* dy = a.dy + detail::slot_token(slot, p.top_k) * a.ld_dy;
    const T* yp = a.yp + r * a.ld_yp;
    double dot = 0.0;
    for (int64_t c = 0; c < a.cols; ++c) {
      out[c] = store<T>(g * load(dy[c]));
      dot += double(load(yp[c])) * double(load(dy[c]));
    }
    a.dgates[detail::slot_gate_offset(slot, p.top_k, a.ld_dgates)] = static_cast<float>(dot);
  }
  for (int64_t s = 0; s < p.tokens * p.top_k; ++s)
    if (p.slot_row[s] < 0) a.dgates[detail::slot_gate_offset(s, p.top_k, a.ld_dgates)] = 0.0f;
}

template <class T>
void moe_grouped_gemm(const detail::GroupedGemmProblem<T>& g) {
  const PlanArrays& p = g.plan;
  const bool swiglu = g.epilogue == detail::GemmEpilogue::SwiGLU;
  for_each_expert(p, false, [&](int64_t e) {
    const int64_t m = p.counts[e], r0 = p.offsets[e];
    std::vector<float> abuf, bbuf, acc[2];
    // Products: SwiGLU q -> A_0 B_q; otherwise the sum over segments of A_g B_g.
    for (int q = 0; q < (swiglu ? 2 : 1); ++q) {
      acc[q].resize(static_cast<std::size_t>(m * g.n));
      for (int term = 0; term < (swiglu ? 1 : g.segments); ++term) {
        const int ai = swiglu ? 0 : term, bi = swiglu ? q : term;
        int64_t lda = 0, ldb = 0;
        const float* A =
            operand_rows(g.a[ai], g.lda[ai], g.k, g.a_gather, nullptr, 0, p, r0, m, abuf, &lda);
        const float* B = weight_block(g.b[bi], g.ldb[bi], g.b_trans, e, g.k, g.n, bbuf, &ldb);
        sgemm(Trans::No, g.b_trans ? Trans::Yes : Trans::No, m, g.n, g.k, 1.0f, A, lda, B, ldb,
              term == 0 ? 0.0f : 1.0f, acc[q].data(), g.n);
      }
    }
#pragma omp parallel for schedule(static) if (worth_parallel(m * g.n))
    for (int64_t i = 0; i < m; ++i) {
      const int64_t r = r0 + i;
      const float* x1 = acc[0].data() + i * g.n;
      if (g.epilogue == detail::GemmEpilogue::Rows) {
        for (int64_t j = 0; j < g.n; ++j)
          g.c[r * g.ldc + j] = store<T>(x1[j]);
      } else if (g.epilogue == detail::GemmEpilogue::Slots) {
        const int64_t slot = p.row_slot[r];
        const float w =
            g.gates ? g.gates[detail::slot_gate_offset(slot, p.top_k, g.ld_gates)] : 1.0f;
        for (int64_t j = 0; j < g.n; ++j)
          g.c[slot * g.ldc + j] = store<T>(w * x1[j]);
      } else {
        const float* x3 = acc[1].data() + i * g.n;
        for (int64_t j = 0; j < g.n; ++j) {
          const T h1 = store<T>(x1[j]), h3 = store<T>(x3[j]);
          if (g.h1) g.h1[r * g.ld_h1 + j] = h1;
          if (g.h3) g.h3[r * g.ld_h3 + j] = h3;
          g.c[r * g.ldc + j] = store<T>(detail::swiglu(load(h1), load(h3)));
        }
      }
    }
  });
  if (g.epilogue != detail::GemmEpilogue::Slots) {
    zero_padding_rows(p, g.n, g.c, g.ldc);
    zero_padding_rows(p, g.n, g.h1, g.ld_h1);
    zero_padding_rows(p, g.n, g.h3, g.ld_h3);
  }
}

template <class T>
void moe_wgrad(const detail::WgradProblem<T>& w) {
  const PlanArrays& p = w.plan;
  for_each_expert(p, true, [&](int64_t e) {
    const int64_t rows = p.counts[e], r0 = p.offsets[e];
    T* out = w.c + e * w.m * w.ldc;
    if (rows == 0) {
      for (int64_t i = 0; i < w.m; ++i)
        zero_row(out + i * w.ldc, w.n);
      return;
    }
    std::vector<float> abuf, bbuf, acc(static_cast<std::size_t>(w.m * w.n));
    int64_t lda = 0, ldb = 0;
    const float* A = operand_rows(w.a, w.lda, w.m, w.a_gather, nullptr, 0, p, r0, rows, abuf, &lda);
    const float* B =
        operand_rows(w.b, w.ldb, w.n, w.b_gather, w.b_gates, w.ld_gates, p, r0, rows, bbuf, &ldb);
    sgemm(Trans::Yes, Trans::No, w.m, w.n, rows, 1.0f, A, lda, B, ldb, 0.0f, acc.data(), w.n);
#pragma omp parallel for schedule(static) if (worth_parallel(w.m * w.n))
    for (int64_t i = 0; i < w.m; ++i)
      for (int64_t j = 0; j < w.n; ++j)
        out[i * w.ldc + j] = store<T>(acc[i * w.n + j]);
  });
}

template <class T>
void moe_swiglu_backward(const detail::SwigluBackwardProblem<T>& a) {
  const PlanArrays& p = a.plan;
  const int64_t used = p.offsets[p.experts];
#pragma omp parallel for schedule(static) if (worth_parallel_stream(used * a.cols))
  for (int64_t r = 0; r < used; ++r) {
    T* dh1 = a.dh1 + r * a.ld_dh1;
    T* dh3 = a.dh3 + r * a.ld_dh3;
    T* out_a = a.a_out + r * a.ld_a;
    const std::int32_t slot = p.row_slot[r];
    if (slot < 0) {
      zero_row(dh1, a.cols);
      zero_row(dh3, a.cols);
      zero_row(out_a, a.cols);
      continue;
    }
    const float g = a.gates[detail::slot_gate_offset(slot, p.top_k, a.ld_gates)];
    const T* h1 = a.h1 + r * a.ld_h1;
    const T* h3 = a.h3 + r * a.ld_h3;
    const T* u = a.u + r * a.ld_u;
    double dot = 0.0;
    for (int64_t c = 0; c < a.cols; ++c) {
      const float x1 = load(h1[c]), x3 = load(h3[c]), uc = load(u[c]);
      const T act = store<T>(detail::swiglu(x1, x3));
      out_a[c] = act;
      dot += double(load(act)) * double(uc);
      float d1 = 0.0f, d3 = 0.0f;
      detail::swiglu_backward(x1, x3, g * uc, &d1, &d3);
      dh1[c] = store<T>(d1);
      dh3[c] = store<T>(d3);
    }
    a.dgates[detail::slot_gate_offset(slot, p.top_k, a.ld_dgates)] = static_cast<float>(dot);
  }
  for (int64_t s = 0; s < p.tokens * p.top_k; ++s)
    if (p.slot_row[s] < 0) a.dgates[detail::slot_gate_offset(s, p.top_k, a.ld_dgates)] = 0.0f;
}

template void moe_router_topk<float>(const detail::RouterProblem<float>&);
template void moe_router_topk<bf16>(const detail::RouterProblem<bf16>&);
#define KFUSE_MOE_CPU_INSTANTIATE(T)                                             \
  template void moe_scatter<T>(const detail::ScatterProblem<T>&);                \
  template void moe_combine<T>(const detail::CombineProblem<T>&);                \
  template void moe_gather_backward<T>(const detail::GatherBackwardProblem<T>&); \
  template void moe_grouped_gemm<T>(const detail::GroupedGemmProblem<T>&);       \
  template void moe_wgrad<T>(const detail::WgradProblem<T>&);                    \
  template void moe_swiglu_backward<T>(const detail::SwigluBackwardProblem<T>&);
KFUSE_MOE_CPU_INSTANTIATE(float)
KFUSE_MOE_CPU_INSTANTIATE(bf16)
#undef KFUSE_MOE_CPU_INSTANTIATE

}  // namespace kfuse::cpu
