// Bindings of the mixture-of-experts family (kfuse/moe.hpp). A plan crosses the
// binding as its int32 storage array plus its layout (tokens, top_k, experts, pad_to,
// capacity); the Python class kfuse.MoePlan holds both.
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>

#include <array>

#include "arrays.hpp"

namespace kfuse_py {

using namespace nb::literals;

namespace {

using Layout = std::array<std::int64_t, 5>;  // tokens, top_k, experts, pad_to, capacity

kfuse::MoePlanLayout layout_of(const Layout& l, bool check_device_ids = false) {
  kfuse::MoePlanOptions o;
  o.pad_to = l[3];
  o.capacity = l[4];
  o.check_device_ids = check_device_ids;
  return kfuse::moe_plan_layout(l[0], l[1], l[2], o);
}

template <class A>
kfuse::MoePlan plan_of(Call& c, const A& storage, const Layout& l, bool check_device_ids = false) {
  const kfuse::MoePlanLayout layout = layout_of(l, check_device_ids);
  const auto s = c.vector<std::int32_t>(storage, "plan");
  if (s.size != layout.storage_size())
    throw nb::value_error((c.prefix("plan") + "has " + std::to_string(s.size) +
                           " int32 elements, its layout needs " +
                           std::to_string(layout.storage_size()))
                              .c_str());
  return kfuse::moe_plan_views(layout, s.data, s.memory);
}

void router_topk(const In& logits, const Out& ids, const Out& gates, kfuse::RouterMode mode,
                 bool renormalize, std::uintptr_t stream, bool torch_ws) {
  Call c("moe_router_topk", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16>(dtype(logits, c.op(), "logits"), c.op(), "logits",
                                     [&](auto tag) {
                                       using T = decltype(tag);
                                       const auto l = c.matrix<const T>(logits, "logits");
                                       const auto i = c.matrix<std::int32_t>(ids, "ids");
                                       const auto g = c.matrix<float>(gates, "gates");
                                       kfuse::Context& ctx = c.context();
                                       nb::gil_scoped_release release;
                                       kfuse::moe_router_topk(ctx, l, i, g, {mode, renormalize});
                                     });
}

void plan(const In& ids, const Out& storage, const Layout& l, bool check_device_ids,
          const OptOut& host_counts, std::uintptr_t stream, bool torch_ws) {
  Call c("moe_plan", stream, torch_ws);
  const auto i = c.matrix<const std::int32_t>(ids, "ids");
  const auto p = plan_of(c, storage, l, check_device_ids);
  kfuse::VectorView<std::int32_t> hc;
  if (host_counts) {
    Call h("moe_plan", 0, false);  // host memory whatever the plan's device
    hc = h.vector<std::int32_t>(*host_counts, "host_counts");
  }
  kfuse::Context& ctx = c.context();
  nb::gil_scoped_release release;
  kfuse::moe_plan(ctx, i, p, hc);
}

void scatter(const In& storage, const Layout& l, const In& X, const Out& Xp, std::uintptr_t stream,
             bool torch_ws) {
  Call c("moe_scatter", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(X, c.op(), "X"), c.op(), "X", [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, "X");
    const auto xp = c.matrix<T>(Xp, "Xp");
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_scatter(ctx, p, x, xp);
  });
}

void scatter_backward(const In& storage, const Layout& l, const In& dXp, const Out& dX,
                      std::uintptr_t stream, bool torch_ws) {
  Call c("moe_scatter_backward", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(dXp, c.op(), "dXp"), c.op(), "dXp", [&](auto tag) {
    using T = decltype(tag);
    const auto dxp = c.matrix<const T>(dXp, "dXp");
    const auto dx = c.matrix<T>(dX, "dX");
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_scatter_backward(ctx, p, dxp, dx);
  });
}

void gather(const In& storage, const Layout& l, const In& Yp, const In& gates, const Out& Y,
            std::uintptr_t stream, bool torch_ws) {
  Call c("moe_gather", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(Yp, c.op(), "Yp"), c.op(), "Yp", [&](auto tag) {
    using T = decltype(tag);
    const auto yp = c.matrix<const T>(Yp, "Yp");
    const auto g = c.matrix<const float>(gates, "gates");
    const auto y = c.matrix<T>(Y, "Y");
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_gather(ctx, p, yp, g, y);
  });
}

void gather_backward(const In& storage, const Layout& l, const In& Yp, const In& gates,
                     const In& dY, const Out& dYp, const Out& dgates, std::uintptr_t stream,
                     bool torch_ws) {
  Call c("moe_gather_backward", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(Yp, c.op(), "Yp"), c.op(), "Yp", [&](auto tag) {
    using T = decltype(tag);
    const auto yp = c.matrix<const T>(Yp, "Yp");
    const auto g = c.matrix<const float>(gates, "gates");
    const auto dy = c.matrix<const T>(dY, "dY");
    const auto dyp = c.matrix<T>(dYp, "dYp");
    const auto dg = c.matrix<float>(dgates, "dgates");
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_gather_backward(ctx, p, yp, g, dy, dyp, dg);
  });
}

enum class Gemm { Grouped, Gather };

template <Gemm kind>
void grouped_gemm(const In& storage, const Layout& l, const In& X, const In& W, const Out& Yp,
                  bool transpose_w, std::uintptr_t stream, bool torch_ws) {
  Call c(kind == Gemm::Grouped ? "moe_grouped_gemm" : "moe_gather_gemm", stream, torch_ws);
  const char* xname = kind == Gemm::Grouped ? "Xp" : "X";
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(X, c.op(), xname), c.op(), xname, [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, xname);
    const auto w = c.matrix<const T>(W, "W");
    const auto yp = c.matrix<T>(Yp, "Yp");
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    if constexpr (kind == Gemm::Grouped)
      kfuse::moe_grouped_gemm(ctx, p, x, w, yp, {transpose_w});
    else
      kfuse::moe_gather_gemm(ctx, p, x, w, yp, {transpose_w});
  });
}

void gemm_combine(const In& storage, const Layout& l, const In& Hp, const In& W, const In& gates,
                  const Out& Y, bool transpose_w, std::uintptr_t stream, bool torch_ws) {
  Call c("moe_gemm_combine", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(Hp, c.op(), "Hp"), c.op(), "Hp", [&](auto tag) {
    using T = decltype(tag);
    const auto hp = c.matrix<const T>(Hp, "Hp");
    const auto w = c.matrix<const T>(W, "W");
    const auto g = c.matrix<const float>(gates, "gates");
    const auto y = c.matrix<T>(Y, "Y");
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_gemm_combine(ctx, p, hp, w, g, y, {transpose_w});
  });
}

void gemm_wgrad(const In& storage, const Layout& l, const In& Xp, const In& dYp, const Out& dW,
                std::uintptr_t stream, bool torch_ws) {
  Call c("moe_grouped_gemm_wgrad", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(Xp, c.op(), "Xp"), c.op(), "Xp", [&](auto tag) {
    using T = decltype(tag);
    const auto xp = c.matrix<const T>(Xp, "Xp");
    const auto dyp = c.matrix<const T>(dYp, "dYp");
    const auto dw = c.matrix<T>(dW, "dW");
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_grouped_gemm_wgrad(ctx, p, xp, dyp, dw);
  });
}

void mlp_forward(const In& storage, const Layout& l, const In& X, const In& gates, const In& w1,
                 const In& w3, const In& w2, const Out& Y, const OptOut& h1, const OptOut& h3,
                 std::uintptr_t stream, bool torch_ws) {
  Call c("moe_mlp_forward", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(X, c.op(), "X"), c.op(), "X", [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, "X");
    const auto g = c.matrix<const float>(gates, "gates");
    const kfuse::MoeMlpWeights<T> w{c.matrix<const T>(w1, "w1"), c.matrix<const T>(w3, "w3"),
                                    c.matrix<const T>(w2, "w2")};
    const auto y = c.matrix<T>(Y, "Y");
    const kfuse::MoeMlpSaved<T> saved{c.matrix<T>(h1, "h1"), c.matrix<T>(h3, "h3")};
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_mlp_forward(ctx, p, x, g, w, y, saved);
  });
}

void mlp_backward(const In& storage, const Layout& l, const In& X, const In& gates, const In& w1,
                  const In& w3, const In& w2, const In& dY, const OptIn& h1, const OptIn& h3,
                  const Out& dX, const Out& dgates, const Out& dw1, const Out& dw3, const Out& dw2,
                  std::uintptr_t stream, bool torch_ws) {
  Call c("moe_mlp_backward", stream, torch_ws);
  const auto p = plan_of(c, storage, l);
  dispatch_dtype<float, kfuse::bf16>(dtype(X, c.op(), "X"), c.op(), "X", [&](auto tag) {
    using T = decltype(tag);
    const auto x = c.matrix<const T>(X, "X");
    const auto g = c.matrix<const float>(gates, "gates");
    const kfuse::MoeMlpWeights<T> w{c.matrix<const T>(w1, "w1"), c.matrix<const T>(w3, "w3"),
                                    c.matrix<const T>(w2, "w2")};
    const auto dy = c.matrix<const T>(dY, "dY");
    // The saved activations are read only; the struct's views are mutable by type.
    const auto s1 = c.matrix<const T>(h1, "h1"), s3 = c.matrix<const T>(h3, "h3");
    const kfuse::MoeMlpSaved<T> saved{
        {const_cast<T*>(s1.data), s1.rows, s1.cols, s1.ld, s1.memory},
        {const_cast<T*>(s3.data), s3.rows, s3.cols, s3.ld, s3.memory}};
    const kfuse::MoeMlpGrads<T> grads{c.matrix<T>(dX, "dX"), c.matrix<float>(dgates, "dgates"),
                                      c.matrix<T>(dw1, "dw1"), c.matrix<T>(dw3, "dw3"),
                                      c.matrix<T>(dw2, "dw2")};
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::moe_mlp_backward(ctx, p, x, g, w, dy, saved, grads);
  });
}

}  // namespace

void register_moe(nb::module_& m) {
  nb::enum_<kfuse::RouterMode>(m, "RouterMode")
      .value("SoftmaxTopK", kfuse::RouterMode::SoftmaxTopK)
      .value("TopKSoftmax", kfuse::RouterMode::TopKSoftmax);
  const kfuse::RouterOptions ro;
  const kfuse::MoePlanOptions po;
  const kfuse::MoeGemmOptions go;
  {
    nb::dict d = defaults(m, "moe_router_topk");
    d["mode"] = ro.mode;
    d["renormalize"] = ro.renormalize;
    d = defaults(m, "moe_plan");
    d["pad_to"] = po.pad_to;
    d["capacity"] = po.capacity;
    d["check_device_ids"] = po.check_device_ids;
    d = defaults(m, "moe_grouped_gemm");
    d["transpose_w"] = go.transpose_w;
  }
  m.def(
      "moe_plan_layout",
      [](std::int64_t tokens, std::int64_t top_k, std::int64_t experts, std::int64_t pad_to,
         std::int64_t capacity) {
        const auto l = layout_of({tokens, top_k, experts, pad_to, capacity});
        return std::make_pair(l.rows, l.storage_size());
      },
      "tokens"_a, "top_k"_a, "experts"_a, "pad_to"_a = po.pad_to, "capacity"_a = po.capacity,
      "(rows of every permuted buffer, int32 elements of the plan's storage)");
  m.def("moe_router_topk", &router_topk, "logits"_a, "ids"_a, "gates"_a, nb::kw_only(),
        "mode"_a = ro.mode, "renormalize"_a = ro.renormalize, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("moe_plan", &plan, "ids"_a, "storage"_a, "layout"_a, nb::kw_only(),
        "check_device_ids"_a = po.check_device_ids, "host_counts"_a.none() = nb::none(),
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("moe_scatter", &scatter, "storage"_a, "layout"_a, "X"_a, "Xp"_a, nb::kw_only(),
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("moe_scatter_backward", &scatter_backward, "storage"_a, "layout"_a, "dXp"_a, "dX"_a,
        nb::kw_only(), "stream"_a = 0, "torch_workspace"_a = false);
  m.def("moe_gather", &gather, "storage"_a, "layout"_a, "Yp"_a, "gates"_a, "Y"_a, nb::kw_only(),
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("moe_gather_backward", &gather_backward, "storage"_a, "layout"_a, "Yp"_a, "gates"_a, "dY"_a,
        "dYp"_a, "dgates"_a, nb::kw_only(), "stream"_a = 0, "torch_workspace"_a = false);
  m.def("moe_grouped_gemm", &grouped_gemm<Gemm::Grouped>, "storage"_a, "layout"_a, "Xp"_a, "W"_a,
        "Yp"_a, nb::kw_only(), "transpose_w"_a = go.transpose_w, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("moe_gather_gemm", &grouped_gemm<Gemm::Gather>, "storage"_a, "layout"_a, "X"_a, "W"_a,
        "Yp"_a, nb::kw_only(), "transpose_w"_a = go.transpose_w, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("moe_gemm_combine", &gemm_combine, "storage"_a, "layout"_a, "Hp"_a, "W"_a, "gates"_a, "Y"_a,
        nb::kw_only(), "transpose_w"_a = go.transpose_w, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("moe_grouped_gemm_wgrad", &gemm_wgrad, "storage"_a, "layout"_a, "Xp"_a, "dYp"_a, "dW"_a,
        nb::kw_only(), "stream"_a = 0, "torch_workspace"_a = false);
  m.def("moe_mlp_forward", &mlp_forward, "storage"_a, "layout"_a, "X"_a, "gates"_a, "w1"_a, "w3"_a,
        "w2"_a, "Y"_a, "h1"_a.none() = nb::none(), "h3"_a.none() = nb::none(), nb::kw_only(),
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("moe_mlp_backward", &mlp_backward, "storage"_a, "layout"_a, "X"_a, "gates"_a, "w1"_a,
        "w3"_a, "w2"_a, "dY"_a, "h1"_a.none(), "h3"_a.none(), "dX"_a, "dgates"_a, "dw1"_a, "dw3"_a,
        "dw2"_a, nb::kw_only(), "stream"_a = 0, "torch_workspace"_a = false);
}

}  // namespace kfuse_py
