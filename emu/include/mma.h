// WMMA (nvcuda::wmma) on the emulated device. A fragment holds 1/32 of its tile in
// each lane: element e of lane l is tile element e * 32 + l (row-major numbering), an
// order the kernels must not rely on, as on the hardware. load/store/mma are warp
// collectives: the warp converges, then each lane loads or stores only the elements
// it owns (a missing __syncwarp after a store then shows), and mma_sync multiplies
// the whole tile once every lane has arrived: operands rounded to the fragment type
// (tf32: 10-bit mantissa, round to nearest), products exact, accumulation in fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "kfuse_emu/device.hpp"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

namespace detail {

template <class Use, int M, int N, int K>
struct Shape;
template <int M, int N, int K>
struct Shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <class T>
struct Storage {
  using type = T;
};
template <>
struct Storage<precision::tf32> {
  using type = float;
};

inline float to_f(float v) {
  return v;
}
inline float to_f(__half v) {
  return __half2float(v);
}
inline float to_f(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <class S>
S from_f(float v);
template <>
inline float from_f<float>(float v) {
  return v;
}
template <>
inline __half from_f<__half>(float v) {
  return __float2half_rn(v);
}
template <>
inline __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Round to TF32: 10 mantissa bits, to nearest with ties away from zero (cvt.rna.tf32.f32).
inline float round_tf32(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}

void check_pointer(const void* p, unsigned ldm, std::size_t element_bytes, const char* what);

}  // namespace detail

inline float __float_to_tf32(float v) {
  return detail::round_tf32(v);
}

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
 public:
  using element_type = typename detail::Storage<T>::type;
  using shape = detail::Shape<Use, M, N, K>;
  static constexpr int num_elements = shape::rows * shape::cols / 32;
  static constexpr bool is_tf32 = std::is_same<T, precision::tf32>::value;
  element_type x[num_elements];
};

template <class F>
void fill_fragment(F& f, float value) {
  for (int e = 0; e < F::num_elements; ++e)
    f.x[e] = detail::from_f<typename F::element_type>(value);
}

namespace detail {

// Element (r, c) of a tile in memory of leading dimension ldm.
inline std::size_t offset(int r, int c, unsigned ldm, bool row_major_layout) {
  return row_major_layout ? static_cast<std::size_t>(r) * ldm + c
                          : static_cast<std::size_t>(c) * ldm + r;
}

template <class F, class P>
void load(F& f, const P* p, unsigned ldm, bool row_major_layout) {
  check_pointer(p, ldm, sizeof(P), "wmma::load_matrix_sync");
  ::kfuse::emu::WarpSlot slot;
  ::kfuse::emu::warp_collective(0xffffffffu, ::kfuse::emu::WarpOp::WmmaLoad,
                                "wmma::load_matrix_sync", slot, nullptr);
  const unsigned lane = ::kfuse::emu::lane_id();
  for (int e = 0; e < F::num_elements; ++e) {
    const int i = e * 32 + static_cast<int>(lane);
    const int r = i / F::shape::cols, c = i % F::shape::cols;
    f.x[e] = static_cast<typename F::element_type>(p[offset(r, c, ldm, row_major_layout)]);
  }
}

struct MmaOperands {
  const void* a;
  const void* b;
  const void* c;
  void* d;
};

template <class D, class A, class B, class C>
void mma_combine(::kfuse::emu::WarpSlot* const* slots, unsigned) {
  constexpr int Mr = A::shape::rows, Kr = A::shape::cols, Nc = B::shape::cols;
  float a[Mr][Kr], b[Kr][Nc], c[Mr][Nc];
  auto operand = [](auto v, bool tf32) {
    const float f = to_f(v);
    return tf32 ? round_tf32(f) : f;
  };
  for (int lane = 0; lane < 32; ++lane) {
    const auto* ops = static_cast<const MmaOperands*>(slots[lane]->data);
    const A& fa = *static_cast<const A*>(ops->a);
    const B& fb = *static_cast<const B*>(ops->b);
    const C& fc = *static_cast<const C*>(ops->c);
    for (int e = 0; e < A::num_elements; ++e) {
      const int i = e * 32 + lane;
      a[i / Kr][i % Kr] = operand(fa.x[e], A::is_tf32);
    }
    for (int e = 0; e < B::num_elements; ++e) {
      const int i = e * 32 + lane;
      b[i / Nc][i % Nc] = operand(fb.x[e], B::is_tf32);
    }
    for (int e = 0; e < C::num_elements; ++e) {
      const int i = e * 32 + lane;
      c[i / Nc][i % Nc] = to_f(fc.x[e]);
    }
  }
  float d[Mr][Nc];
  for (int m = 0; m < Mr; ++m)
    for (int n = 0; n < Nc; ++n) {
      float acc = c[m][n];
      for (int k = 0; k < Kr; ++k)
        acc = std::fma(a[m][k], b[k][n], acc);  // exact products
      d[m][n] = acc;
    }
  for (int lane = 0; lane < 32; ++lane) {
    auto* ops = static_cast<const MmaOperands*>(slots[lane]->data);
    D& fd = *static_cast<D*>(ops->d);
    for (int e = 0; e < D::num_elements; ++e) {
      const int i = e * 32 + lane;
      fd.x[e] = from_f<typename D::element_type>(d[i / Nc][i % Nc]);
    }
  }
}

}  // namespace detail

template <int M, int N, int K, class T, class L, class P>
void load_matrix_sync(fragment<matrix_a, M, N, K, T, L>& f, const P* p, unsigned ldm) {
  detail::load(f, p, ldm, std::is_same<L, row_major>::value);
}
template <int M, int N, int K, class T, class L, class P>
void load_matrix_sync(fragment<matrix_b, M, N, K, T, L>& f, const P* p, unsigned ldm) {
  detail::load(f, p, ldm, std::is_same<L, row_major>::value);
}
template <int M, int N, int K, class T, class P>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const P* p, unsigned ldm,
                      layout_t layout) {
  detail::load(f, p, ldm, layout == mem_row_major);
}

template <int M, int N, int K, class T, class P>
void store_matrix_sync(P* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm,
                       layout_t layout) {
  using F = fragment<accumulator, M, N, K, T>;
  detail::check_pointer(p, ldm, sizeof(P), "wmma::store_matrix_sync");
  ::kfuse::emu::WarpSlot slot;
  ::kfuse::emu::warp_collective(0xffffffffu, ::kfuse::emu::WarpOp::WmmaStore,
                                "wmma::store_matrix_sync", slot, nullptr);
  const unsigned lane = ::kfuse::emu::lane_id();
  for (int e = 0; e < F::num_elements; ++e) {
    const int i = e * 32 + static_cast<int>(lane);
    const int r = i / F::shape::cols, c = i % F::shape::cols;
    p[detail::offset(r, c, ldm, layout == mem_row_major)] = static_cast<P>(f.x[e]);
  }
}

template <class D, class A, class B, class C>
void mma_sync(D& d, const A& a, const B& b, const C& c) {
  detail::MmaOperands ops{&a, &b, &c, &d};
  ::kfuse::emu::WarpSlot slot;
  slot.data = &ops;
  ::kfuse::emu::warp_collective(0xffffffffu, ::kfuse::emu::WarpOp::WmmaMma, "wmma::mma_sync", slot,
                                &detail::mma_combine<D, A, B, C>);
}

}  // namespace wmma
}  // namespace nvcuda
