// Temporary: the CUDA path of the MoE family is not written yet.
#include "kfuse/error.hpp"
#include "moe_launch.hpp"

namespace kfuse::cuda {
namespace {
[[noreturn]] void missing() {
  throw Error(Status::Unsupported, "moe: the CUDA path is not built yet");
}
}  // namespace
template <class L>
void moe_router_topk(Context&, const detail::RouterArgs<L>&) {
  missing();
}
void moe_plan(Context&, const detail::PlanArgs&) {
  missing();
}
bool moe_ids_valid(Context&, const std::int32_t*, std::int64_t, std::int64_t, std::int64_t,
                   std::int64_t) {
  missing();
}
void moe_copy_to_host(Context&, const std::int32_t*, std::int64_t, std::int32_t*) {
  missing();
}
template <class T>
void moe_scatter(Context&, const detail::ScatterArgs<T>&) {
  missing();
}
template <class T>
void moe_combine(Context&, const detail::CombineArgs<T>&) {
  missing();
}
template <class T>
void moe_gather_backward(Context&, const detail::GatherBackwardArgs<T>&) {
  missing();
}
template <class T>
void moe_swiglu_backward(Context&, const detail::SwigluBackwardArgs<T>&) {
  missing();
}
template <class T>
void moe_grouped_gemm(Context&, const detail::GroupedGemmArgs<T>&) {
  missing();
}
template <class T>
void moe_wgrad(Context&, const detail::WgradArgs<T>&) {
  missing();
}
template void moe_router_topk<float>(Context&, const detail::RouterArgs<float>&);
template void moe_router_topk<bf16>(Context&, const detail::RouterArgs<bf16>&);
#define X(T)                                                                            \
  template void moe_scatter<T>(Context&, const detail::ScatterArgs<T>&);                \
  template void moe_combine<T>(Context&, const detail::CombineArgs<T>&);                \
  template void moe_gather_backward<T>(Context&, const detail::GatherBackwardArgs<T>&); \
  template void moe_swiglu_backward<T>(Context&, const detail::SwigluBackwardArgs<T>&); \
  template void moe_grouped_gemm<T>(Context&, const detail::GroupedGemmArgs<T>&);       \
  template void moe_wgrad<T>(Context&, const detail::WgradArgs<T>&);
X(float)
X(bf16)
}  // namespace kfuse::cuda
