// Small device helpers shared by the contrastive kernels: scalars resolved on the
// device, the choice of compute mode, and typed stores of gradients.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/contrastive/problem.hpp"
#include "kernels/contrastive/tile.cuh"
#include "kernels/core/float16.hpp"
#include "kernels/core/precision_switch.hpp"
#include "kfuse/error.hpp"

namespace kfuse::cuda::contrastive {

namespace cd = kfuse::detail::contrastive;

template <Mode M>
using ModeTag = std::integral_constant<Mode, M>;

constexpr Mode mode_of_precision(Precision p) {
  return p == Precision::TF32 ? Mode::Tf32 : (p == Precision::BF16 ? Mode::Bf16 : Mode::Simt);
}

// The one map from a pass's element dtype and precision to its compute mode and the
// input type its kernels read, as body(ModeTag<M>{}, In{}): fp32 inputs follow the
// precision (Exact: SIMT FMAs; TF32, BF16: tensor cores on rounded inputs); 16-bit
// inputs use tensor cores of their own type.
template <class Body>
void visit_mode(const cd::Logits& s, Body&& body) {
  if (s.dtype == DType::BF16) return body(ModeTag<Mode::Bf16>{}, kfuse::bf16{});
  if (s.dtype == DType::F16) return body(ModeTag<Mode::F16>{}, kfuse::f16{});
  const bool visited =
      kfuse::detail::visit_precision<Precision::Exact, Precision::TF32, Precision::BF16>(
          s.precision,
          [&](auto P) { body(ModeTag<mode_of_precision(decltype(P)::value)>{}, float{}); });
  if (!visited) throw Error(Status::Internal, "contrastive: a precision without kernels");
}

// A host value (as fp32) or the fp32 it points at: both give the same bits.
__device__ __forceinline__ float scalar_value(const cd::Scalar& s) {
  return s.ptr != nullptr ? *s.ptr : static_cast<float>(s.value);
}

// tau = exp(t) and b, computed the same way by every kernel of a call.
struct Scales {
  float tau, bias;
};
__device__ __forceinline__ Scales scales_of(const cd::Logits& s) {
  return {expf(scalar_value(s.t)), scalar_value(s.b)};
}

// dX = tau c0 acc with c0 = coef * grad_loss.
__device__ __forceinline__ float gradient_scale(const cd::BackwardProblem& p) {
  return scales_of(p.s).tau * (static_cast<float>(p.coef) * scalar_value(p.grad_loss));
}

__device__ __forceinline__ void store_element(void* base, DType dtype, std::int64_t offset,
                                              float v) {
  switch (dtype) {
    case DType::BF16:
      static_cast<kfuse::bf16*>(base)[offset] = detail::to_bf16(v);
      break;
    case DType::F16:
      static_cast<kfuse::f16*>(base)[offset] = detail::to_f16(v);
      break;
    default:
      static_cast<float*>(base)[offset] = v;
      break;
  }
}

// Labels out of their range (unchecked device labels) poison the affected row or
// column with NaN instead of being read past an array.
__device__ __forceinline__ bool label_ok(std::int64_t label, std::int64_t lo, std::int64_t n) {
  return label >= lo && label < n;
}

}  // namespace kfuse::cuda::contrastive
