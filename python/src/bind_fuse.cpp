// Bindings of the fusion family (kfuse/fuse.hpp).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <vector>

#include "arrays.hpp"

namespace kfuse_py {

using namespace nb::literals;

namespace {

using Sides = std::vector<kfuse::FuseSide>;

template <class T>
std::vector<kfuse::MatrixView<const T>> input_views(Call& c, const std::vector<In>& inputs) {
  static const char* names[] = {"inputs[0]", "inputs[1]", "inputs[2]", "inputs[3]"};
  std::vector<kfuse::MatrixView<const T>> views;
  for (std::size_t j = 0; j < inputs.size(); ++j)
    views.push_back(c.matrix<const T>(inputs[j], j < 4 ? names[j] : "inputs[j]"));
  return views;
}

kfuse::DType first_dtype(Call& c, const std::vector<In>& inputs) {
  if (inputs.empty())
    throw nb::value_error((std::string(c.op()) + ": argument 'inputs' is empty").c_str());
  return dtype(inputs[0], c.op(), "inputs[0]");
}

void kron_fuse(const std::vector<In>& inputs, const Out& out, const Sides& sides,
               std::uint64_t seed, std::uintptr_t stream, bool torch_ws) {
  Call c("kron_fuse", stream, torch_ws);
  dispatch_dtype<float, double, kfuse::bf16, kfuse::f16>(
      first_dtype(c, inputs), c.op(), "inputs[0]", [&](auto tag) {
        using T = decltype(tag);
        const auto in = input_views<T>(c, inputs);
        const auto o = c.matrix<FuseOut<T>>(out, "out");
        kfuse::Context& ctx = c.context();
        kfuse::KronFuseOptions opt;
        opt.sides = sides;
        opt.seed = seed;
        nb::gil_scoped_release release;
        kfuse::kron_fuse(ctx, in, o, opt);
      });
}

kfuse::RpFuseOptions rp_options(const Sides& sides, std::uint64_t seed,
                                kfuse::RpDistribution distribution, kfuse::RpScaling scaling,
                                kfuse::Precision precision) {
  kfuse::RpFuseOptions opt;
  opt.sides = sides;
  opt.seed = seed;
  opt.distribution = distribution;
  opt.scaling = scaling;
  opt.precision = precision;
  return opt;
}

void rp_fuse(const std::vector<In>& inputs, const Out& out, const Sides& sides, std::uint64_t seed,
             kfuse::RpDistribution distribution, kfuse::RpScaling scaling,
             kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c("rp_fuse", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(
      first_dtype(c, inputs), c.op(), "inputs[0]", [&](auto tag) {
        using T = decltype(tag);
        const auto in = input_views<T>(c, inputs);
        const auto o = c.matrix<float>(out, "out");
        kfuse::Context& ctx = c.context();
        const auto opt = rp_options(sides, seed, distribution, scaling, precision);
        nb::gil_scoped_release release;
        kfuse::rp_fuse(ctx, in, o, opt);
      });
}

template <class O>
std::vector<kfuse::MatrixView<O>> grad_views(Call& c, const std::vector<Out>& grads) {
  static const char* names[] = {"grads[0]", "grads[1]", "grads[2]", "grads[3]"};
  std::vector<kfuse::MatrixView<O>> views;
  for (std::size_t j = 0; j < grads.size(); ++j)
    views.push_back(c.matrix<O>(grads[j], j < 4 ? names[j] : "grads[j]"));
  return views;
}

void kron_fuse_backward(const std::vector<In>& inputs, const In& grad_out,
                        const std::vector<Out>& grads, const Sides& sides, std::uint64_t seed,
                        std::uintptr_t stream, bool torch_ws) {
  Call c("kron_fuse_backward", stream, torch_ws);
  dispatch_dtype<float, double, kfuse::bf16, kfuse::f16>(
      first_dtype(c, inputs), c.op(), "inputs[0]", [&](auto tag) {
        using T = decltype(tag);
        const auto in = input_views<T>(c, inputs);
        const auto dz = c.matrix<const FuseOut<T>>(grad_out, "grad_out");
        const auto g = grad_views<FuseOut<T>>(c, grads);
        kfuse::Context& ctx = c.context();
        kfuse::KronFuseOptions opt;
        opt.sides = sides;
        opt.seed = seed;
        nb::gil_scoped_release release;
        kfuse::kron_fuse_backward(ctx, in, dz, g, opt);
      });
}

void rp_fuse_backward(const std::vector<In>& inputs, const In& grad_out,
                      const std::vector<Out>& grads, const Sides& sides, std::uint64_t seed,
                      kfuse::RpDistribution distribution, kfuse::RpScaling scaling,
                      kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c("rp_fuse_backward", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(
      first_dtype(c, inputs), c.op(), "inputs[0]", [&](auto tag) {
        using T = decltype(tag);
        const auto in = input_views<T>(c, inputs);
        const auto dz = c.matrix<const float>(grad_out, "grad_out");
        const auto g = grad_views<float>(c, grads);
        kfuse::Context& ctx = c.context();
        const auto opt = rp_options(sides, seed, distribution, scaling, precision);
        nb::gil_scoped_release release;
        kfuse::rp_fuse_backward(ctx, in, dz, g, opt);
      });
}

void rp_projection_matrix(int input, const Out& out, const Sides& sides, std::uint64_t seed,
                          kfuse::RpDistribution distribution, kfuse::RpScaling scaling,
                          kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c("rp_projection_matrix", stream, torch_ws);
  const auto o = c.matrix<float>(out, "out");
  kfuse::Context& ctx = c.context();
  const auto opt = rp_options(sides, seed, distribution, scaling, precision);
  nb::gil_scoped_release release;
  kfuse::rp_projection_matrix(ctx, input, o, opt);
}

kfuse::CrossModalOptions cross_options(double C, std::int64_t image_dim, std::int64_t text_dim,
                                       const kfuse::FuseSide& shared,
                                       const kfuse::FuseSide& image_expert,
                                       const kfuse::FuseSide& text_expert, std::uint64_t seed,
                                       kfuse::RpDistribution distribution, kfuse::RpScaling scaling,
                                       kfuse::Precision precision) {
  kfuse::CrossModalOptions o;
  o.C = C;
  o.image_dim = image_dim;
  o.text_dim = text_dim;
  o.shared = shared;
  o.image_expert = image_expert;
  o.text_expert = text_expert;
  o.seed = seed;
  o.distribution = distribution;
  o.scaling = scaling;
  o.precision = precision;
  return o;
}

template <bool Rp>
void cross_modal(kfuse::Modality modality, const In& shared, const In& expert, const Out& out,
                 double C, std::int64_t image_dim, std::int64_t text_dim,
                 const kfuse::FuseSide& shared_side, const kfuse::FuseSide& image_side,
                 const kfuse::FuseSide& text_side, std::uint64_t seed,
                 kfuse::RpDistribution distribution, kfuse::RpScaling scaling,
                 kfuse::Precision precision, std::uintptr_t stream, bool torch_ws) {
  Call c(Rp ? "cross_modal_rp" : "cross_modal_kron", stream, torch_ws);
  const kfuse::DType dt = dtype(shared, c.op(), "shared");
  auto body = [&](auto tag) {
    using T = decltype(tag);
    const auto s = c.matrix<const T>(shared, "shared"), e = c.matrix<const T>(expert, "expert");
    const auto o = c.matrix<FuseOut<T>>(out, "out");
    kfuse::Context& ctx = c.context();
    const auto opt = cross_options(C, image_dim, text_dim, shared_side, image_side, text_side, seed,
                                   distribution, scaling, precision);
    nb::gil_scoped_release release;
    if constexpr (Rp)
      kfuse::cross_modal_rp(ctx, modality, s, e, o, opt);
    else
      kfuse::cross_modal_kron(ctx, modality, s, e, o, opt);
  };
  if constexpr (Rp)
    dispatch_dtype<float, kfuse::bf16, kfuse::f16>(dt, c.op(), "shared", body);
  else
    dispatch_dtype<float, double, kfuse::bf16, kfuse::f16>(dt, c.op(), "shared", body);
}

void rff_fuse(const std::vector<In>& inputs, const Out& out, const std::vector<double>& sigmas,
              std::uint64_t seed, std::uintptr_t stream, bool torch_ws) {
  Call c("rff_fuse", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(first_dtype(c, inputs), c.op(), "inputs[0]",
                                                 [&](auto tag) {
                                                   using T = decltype(tag);
                                                   const auto in = input_views<T>(c, inputs);
                                                   const auto o = c.matrix<float>(out, "out");
                                                   kfuse::Context& ctx = c.context();
                                                   kfuse::RffOptions opt;
                                                   opt.sigmas = sigmas;
                                                   opt.seed = seed;
                                                   nb::gil_scoped_release release;
                                                   kfuse::rff_fuse(ctx, in, o, opt);
                                                 });
}

void tensor_sketch(const In& A, const In& B, const Out& out, const kfuse::FuseSide& side_a,
                   const kfuse::FuseSide& side_b, std::uint64_t seed, std::uintptr_t stream,
                   bool torch_ws) {
  Call c("tensor_sketch", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(dtype(A, c.op(), "A"), c.op(), "A", [&](auto tag) {
    using T = decltype(tag);
    const auto a = c.matrix<const T>(A, "A"), b = c.matrix<const T>(B, "B");
    const auto o = c.matrix<float>(out, "out");
    kfuse::Context& ctx = c.context();
    kfuse::TensorSketchOptions opt;
    opt.side_a = side_a;
    opt.side_b = side_b;
    opt.seed = seed;
    nb::gil_scoped_release release;
    kfuse::tensor_sketch(ctx, a, b, o, opt);
  });
}

void product_kernel_topk(const In& Q1, const In& Q2, const In& G1, const In& G2, const Out& indices,
                         const Out& scores, const kfuse::FuseSide& side1,
                         const kfuse::FuseSide& side2, double C, kfuse::Precision precision,
                         std::uintptr_t stream, bool torch_ws) {
  Call c("product_kernel_topk", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(
      dtype(Q1, c.op(), "Q1"), c.op(), "Q1", [&](auto tag) {
        using T = decltype(tag);
        const auto q1 = c.matrix<const T>(Q1, "Q1"), q2 = c.matrix<const T>(Q2, "Q2"),
                   g1 = c.matrix<const T>(G1, "G1"), g2 = c.matrix<const T>(G2, "G2");
        const auto idx = c.matrix<std::int64_t>(indices, "indices");
        const auto sc = c.matrix<float>(scores, "scores");
        kfuse::Context& ctx = c.context();
        kfuse::ProductTopkOptions opt;
        opt.side1 = side1;
        opt.side2 = side2;
        opt.C = C;
        opt.precision = precision;
        nb::gil_scoped_release release;
        kfuse::product_kernel_topk(ctx, q1, q2, g1, g2, idx, sc, opt);
      });
}

const char* side_kernel_label(kfuse::SideKernel k) {
  switch (k) {
    case kfuse::SideKernel::Linear:
      return "Linear";
    case kfuse::SideKernel::Cosine:
      return "Cosine";
    case kfuse::SideKernel::Rbf:
      return "Rbf";
  }
  return "?";
}

}  // namespace

void register_fuse(nb::module_& m) {
  nb::enum_<kfuse::SideKernel>(m, "SideKernel")
      .value("Linear", kfuse::SideKernel::Linear)
      .value("Cosine", kfuse::SideKernel::Cosine)
      .value("Rbf", kfuse::SideKernel::Rbf);
  nb::enum_<kfuse::RpDistribution>(m, "RpDistribution")
      .value("Uniform", kfuse::RpDistribution::Uniform)
      .value("Gaussian", kfuse::RpDistribution::Gaussian)
      .value("Rademacher", kfuse::RpDistribution::Rademacher);
  nb::enum_<kfuse::RpScaling>(m, "RpScaling")
      .value("Unbiased", kfuse::RpScaling::Unbiased)
      .value("AuthorsCompat", kfuse::RpScaling::AuthorsCompat);
  nb::enum_<kfuse::Modality>(m, "Modality")
      .value("Image", kfuse::Modality::Image)
      .value("Text", kfuse::Modality::Text);

  const kfuse::FuseSide side0;
  nb::class_<kfuse::FuseSide>(m, "FuseSide",
                              "The kernel of one input: Linear, Cosine or Rbf (sigma, and "
                              "rff_features for the feature-map functions).")
      .def(
          "__init__",
          [](kfuse::FuseSide* s, kfuse::SideKernel kernel, double sigma, std::int64_t rff) {
            new (s) kfuse::FuseSide{kernel, sigma, rff};
          },
          "kernel"_a = side0.kernel, "sigma"_a = side0.sigma, "rff_features"_a = side0.rff_features)
      .def_rw("kernel", &kfuse::FuseSide::kernel)
      .def_rw("sigma", &kfuse::FuseSide::sigma)
      .def_rw("rff_features", &kfuse::FuseSide::rff_features)
      .def("__repr__", [](const kfuse::FuseSide& s) {
        return std::string("FuseSide(") + side_kernel_label(s.kernel) +
               ", sigma=" + std::to_string(s.sigma) +
               ", rff_features=" + std::to_string(s.rff_features) + ")";
      });
  m.def("fuse_side_width", &kfuse::fuse_side_width, "side"_a, "d"_a,
        "The width of an input's feature map: d (Linear, Cosine) or 2 rff_features (Rbf).");
  m.def(
      "cross_modal_width",
      [](std::int64_t shared_dim, double C, std::int64_t image_dim, std::int64_t text_dim,
         const kfuse::FuseSide& shared, const kfuse::FuseSide& image_expert,
         const kfuse::FuseSide& text_expert) {
        kfuse::CrossModalOptions o;
        o.C = C;
        o.image_dim = image_dim;
        o.text_dim = text_dim;
        o.shared = shared;
        o.image_expert = image_expert;
        o.text_expert = text_expert;
        return kfuse::cross_modal_width(o, shared_dim);
      },
      "shared_dim"_a, "C"_a, "image_dim"_a, "text_dim"_a, "shared"_a, "image_expert"_a,
      "text_expert"_a);

  const kfuse::KronFuseOptions kr;
  const kfuse::RpFuseOptions rp;
  const kfuse::CrossModalOptions cm;
  const kfuse::RffOptions rf;
  const kfuse::TensorSketchOptions ts;
  const kfuse::ProductTopkOptions tk;
  {
    nb::dict d = defaults(m, "kron_fuse");
    d["seed"] = kr.seed;
    d = defaults(m, "rp_fuse");
    d["seed"] = rp.seed;
    d["distribution"] = rp.distribution;
    d["scaling"] = rp.scaling;
    d["precision"] = rp.precision;
    d = defaults(m, "cross_modal");
    d["C"] = cm.C;
    d["seed"] = cm.seed;
    d["distribution"] = cm.distribution;
    d["scaling"] = cm.scaling;
    d["precision"] = cm.precision;
    d = defaults(m, "rff_fuse");
    d["seed"] = rf.seed;
    d = defaults(m, "tensor_sketch");
    d["seed"] = ts.seed;
    d = defaults(m, "product_kernel_topk");
    d["C"] = tk.C;
    d["precision"] = tk.precision;
  }
  m.def("kron_fuse", &kron_fuse, "inputs"_a, "out"_a, nb::kw_only(), "sides"_a = Sides{},
        "seed"_a = kr.seed, "stream"_a = 0, "torch_workspace"_a = false);
  m.def("rp_fuse", &rp_fuse, "inputs"_a, "out"_a, nb::kw_only(), "sides"_a = Sides{},
        "seed"_a = rp.seed, "distribution"_a = rp.distribution, "scaling"_a = rp.scaling,
        "precision"_a = rp.precision, "stream"_a = 0, "torch_workspace"_a = false);
  m.def("kron_fuse_backward", &kron_fuse_backward, "inputs"_a, "grad_out"_a, "grads"_a,
        nb::kw_only(), "sides"_a = Sides{}, "seed"_a = kr.seed, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("rp_fuse_backward", &rp_fuse_backward, "inputs"_a, "grad_out"_a, "grads"_a, nb::kw_only(),
        "sides"_a = Sides{}, "seed"_a = rp.seed, "distribution"_a = rp.distribution,
        "scaling"_a = rp.scaling, "precision"_a = rp.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("rp_projection_matrix", &rp_projection_matrix, "input"_a, "out"_a, nb::kw_only(),
        "sides"_a = Sides{}, "seed"_a = rp.seed, "distribution"_a = rp.distribution,
        "scaling"_a = rp.scaling, "precision"_a = rp.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("cross_modal_kron", &cross_modal<false>, "modality"_a, "shared"_a, "expert"_a, "out"_a,
        nb::kw_only(), "C"_a = cm.C, "image_dim"_a, "text_dim"_a, "shared_side"_a, "image_side"_a,
        "text_side"_a, "seed"_a = cm.seed, "distribution"_a = cm.distribution,
        "scaling"_a = cm.scaling, "precision"_a = cm.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("cross_modal_rp", &cross_modal<true>, "modality"_a, "shared"_a, "expert"_a, "out"_a,
        nb::kw_only(), "C"_a = cm.C, "image_dim"_a, "text_dim"_a, "shared_side"_a, "image_side"_a,
        "text_side"_a, "seed"_a = cm.seed, "distribution"_a = cm.distribution,
        "scaling"_a = cm.scaling, "precision"_a = cm.precision, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("rff_fuse", &rff_fuse, "inputs"_a, "out"_a, nb::kw_only(), "sigmas"_a, "seed"_a = rf.seed,
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("tensor_sketch", &tensor_sketch, "A"_a, "B"_a, "out"_a, nb::kw_only(), "side_a"_a,
        "side_b"_a, "seed"_a = ts.seed, "stream"_a = 0, "torch_workspace"_a = false);
  m.def("product_kernel_topk", &product_kernel_topk, "Q1"_a, "Q2"_a, "G1"_a, "G2"_a, "indices"_a,
        "scores"_a, nb::kw_only(), "side1"_a, "side2"_a, "C"_a = tk.C, "precision"_a = tk.precision,
        "stream"_a = 0, "torch_workspace"_a = false);
}

}  // namespace kfuse_py
