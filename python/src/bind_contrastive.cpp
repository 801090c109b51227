// Bindings of the contrastive loss family (kfuse/contrastive.hpp).
#include <nanobind/stl/optional.h>

#include <type_traits>

#include "arrays.hpp"

namespace kfuse_py {

using namespace nb::literals;

namespace {

// A scalar option: the host value, or one float32 in the call's memory (read by the
// backend when the call runs, without a host synchronisation).
kfuse::LossScalar scalar(Call& c, double value, const OptIn& array, const char* name) {
  if (!array) return kfuse::LossScalar(value);
  return kfuse::LossScalar(value, c.vector<const float>(*array, name));
}

kfuse::ClipLossOptions clip_options(Call& c, kfuse::ClipDirection direction, double logit_scale,
                                    const OptIn& logit_scale_array, double bias,
                                    const OptIn& bias_array, double label_smoothing,
                                    kfuse::Precision precision, bool deterministic,
                                    bool check_device_labels) {
  kfuse::ClipLossOptions o;
  o.direction = direction;
  o.logit_scale = scalar(c, logit_scale, logit_scale_array, "logit_scale");
  o.bias = scalar(c, bias, bias_array, "bias");
  o.label_smoothing = label_smoothing;
  o.precision = precision;
  o.deterministic = deterministic;
  o.check_device_labels = check_device_labels;
  return o;
}

kfuse::SiglipLossOptions siglip_options(Call& c, double logit_scale, const OptIn& logit_scale_array,
                                        double bias, const OptIn& bias_array,
                                        kfuse::Precision precision, bool deterministic,
                                        bool check_device_labels) {
  kfuse::SiglipLossOptions o;
  o.logit_scale = scalar(c, logit_scale, logit_scale_array, "logit_scale");
  o.bias = scalar(c, bias, bias_array, "bias");
  o.precision = precision;
  o.deterministic = deterministic;
  o.check_device_labels = check_device_labels;
  return o;
}

void clip_forward(const In& A, const In& B, const OptIn& labels, const Out& loss,
                  const OptOut& row_losses, const OptOut& col_losses, const OptOut& lse_rows,
                  const OptOut& lse_cols, kfuse::ClipDirection direction, double logit_scale,
                  const OptIn& logit_scale_array, double bias, const OptIn& bias_array,
                  double label_smoothing, kfuse::Precision precision, bool deterministic,
                  bool check_device_labels, std::uintptr_t stream, bool torch_ws) {
  Call c("clip_loss_forward", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(dtype(A, c.op(), "A"), c.op(), "A", [&](auto tag) {
    using T = decltype(tag);
    const auto a = c.matrix<const T>(A, "A"), b = c.matrix<const T>(B, "B");
    const auto lab = c.vector<const std::int64_t>(labels, "labels");
    kfuse::ClipForwardOutputs out;
    out.loss = c.vector<float>(loss, "loss");
    out.row_losses = c.vector<float>(row_losses, "row_losses");
    out.col_losses = c.vector<float>(col_losses, "col_losses");
    out.lse_rows = c.vector<float>(lse_rows, "lse_rows");
    out.lse_cols = c.vector<float>(lse_cols, "lse_cols");
    const auto opt = clip_options(c, direction, logit_scale, logit_scale_array, bias, bias_array,
                                  label_smoothing, precision, deterministic, check_device_labels);
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::clip_loss_forward(ctx, a, b, lab, out, opt);
  });
}

// Runs f(T{}, G{}) for the inputs' type T and the gradients' type G: T, or float when
// the first present gradient array is float32.
template <class F>
void dispatch_grads(Call& c, const In& A, const OptOut& dA, const OptOut& dB, F&& f) {
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(dtype(A, c.op(), "A"), c.op(), "A", [&](auto tag) {
    using T = decltype(tag);
    const OptOut& g = dA ? dA : dB;
    const bool f32 = g && dtype(*g, c.op(), dA ? "dA" : "dB") == kfuse::DType::F32;
    if constexpr (std::is_same_v<T, float>) {
      f(T{}, float{});
    } else {
      if (f32)
        f(T{}, float{});
      else
        f(T{}, T{});
    }
  });
}

void clip_backward(const In& A, const In& B, const OptIn& labels, const OptIn& lse_rows,
                   const OptIn& lse_cols, const OptOut& dA, const OptOut& dB, const OptOut& dt,
                   const OptOut& db, double grad_loss, const OptIn& grad_loss_array,
                   kfuse::ClipDirection direction, double logit_scale,
                   const OptIn& logit_scale_array, double bias, const OptIn& bias_array,
                   double label_smoothing, kfuse::Precision precision, bool deterministic,
                   bool check_device_labels, std::uintptr_t stream, bool torch_ws) {
  Call c("clip_loss_backward", stream, torch_ws);
  dispatch_grads(c, A, dA, dB, [&](auto ttag, auto gtag) {
    using T = decltype(ttag);
    using G = decltype(gtag);
    const auto a = c.matrix<const T>(A, "A"), b = c.matrix<const T>(B, "B");
    const auto lab = c.vector<const std::int64_t>(labels, "labels");
    kfuse::ClipSavedStats saved;
    saved.lse_rows = c.vector<const float>(lse_rows, "lse_rows");
    saved.lse_cols = c.vector<const float>(lse_cols, "lse_cols");
    kfuse::ContrastiveGradients<G> g;
    g.dA = c.matrix<G>(dA, "dA");
    g.dB = c.matrix<G>(dB, "dB");
    g.dt = c.vector<float>(dt, "dt");
    g.db = c.vector<float>(db, "db");
    const auto dl = scalar(c, grad_loss, grad_loss_array, "grad_loss");
    const auto opt = clip_options(c, direction, logit_scale, logit_scale_array, bias, bias_array,
                                  label_smoothing, precision, deterministic, check_device_labels);
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::clip_loss_backward(ctx, a, b, lab, saved, dl, g, opt);
  });
}

void siglip_forward(const In& A, const In& B, const OptIn& labels, const Out& loss,
                    const OptOut& row_losses, double logit_scale, const OptIn& logit_scale_array,
                    double bias, const OptIn& bias_array, kfuse::Precision precision,
                    bool deterministic, bool check_device_labels, std::uintptr_t stream,
                    bool torch_ws) {
  Call c("siglip_loss_forward", stream, torch_ws);
  dispatch_dtype<float, kfuse::bf16, kfuse::f16>(dtype(A, c.op(), "A"), c.op(), "A", [&](auto tag) {
    using T = decltype(tag);
    const auto a = c.matrix<const T>(A, "A"), b = c.matrix<const T>(B, "B");
    const auto lab = c.vector<const std::int64_t>(labels, "labels");
    const auto l = c.vector<float>(loss, "loss");
    const auto rl = c.vector<float>(row_losses, "row_losses");
    const auto opt = siglip_options(c, logit_scale, logit_scale_array, bias, bias_array, precision,
                                    deterministic, check_device_labels);
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::siglip_loss_forward(ctx, a, b, lab, l, rl, opt);
  });
}

void siglip_backward(const In& A, const In& B, const OptIn& labels, const OptOut& dA,
                     const OptOut& dB, const OptOut& dt, const OptOut& db, double grad_loss,
                     const OptIn& grad_loss_array, double logit_scale,
                     const OptIn& logit_scale_array, double bias, const OptIn& bias_array,
                     kfuse::Precision precision, bool deterministic, bool check_device_labels,
                     std::uintptr_t stream, bool torch_ws) {
  Call c("siglip_loss_backward", stream, torch_ws);
  dispatch_grads(c, A, dA, dB, [&](auto ttag, auto gtag) {
    using T = decltype(ttag);
    using G = decltype(gtag);
    const auto a = c.matrix<const T>(A, "A"), b = c.matrix<const T>(B, "B");
    const auto lab = c.vector<const std::int64_t>(labels, "labels");
    kfuse::ContrastiveGradients<G> g;
    g.dA = c.matrix<G>(dA, "dA");
    g.dB = c.matrix<G>(dB, "dB");
    g.dt = c.vector<float>(dt, "dt");
    g.db = c.vector<float>(db, "db");
    const auto dl = scalar(c, grad_loss, grad_loss_array, "grad_loss");
    const auto opt = siglip_options(c, logit_scale, logit_scale_array, bias, bias_array, precision,
                                    deterministic, check_device_labels);
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::siglip_loss_backward(ctx, a, b, lab, dl, g, opt);
  });
}

void clip_forward_backward(const In& A, const In& B, const OptIn& labels, const Out& loss,
                           const OptOut& row_losses, const OptOut& col_losses, const OptOut& dA,
                           const OptOut& dB, const OptOut& dt, const OptOut& db, double grad_loss,
                           const OptIn& grad_loss_array, kfuse::ClipDirection direction,
                           double logit_scale, const OptIn& logit_scale_array, double bias,
                           const OptIn& bias_array, double label_smoothing,
                           kfuse::Precision precision, bool deterministic, bool check_device_labels,
                           std::uintptr_t stream, bool torch_ws) {
  Call c("clip_loss_forward_backward", stream, torch_ws);
  dispatch_grads(c, A, dA, dB, [&](auto ttag, auto gtag) {
    using T = decltype(ttag);
    using G = decltype(gtag);
    const auto a = c.matrix<const T>(A, "A"), b = c.matrix<const T>(B, "B");
    const auto lab = c.vector<const std::int64_t>(labels, "labels");
    kfuse::ClipForwardOutputs out;
    out.loss = c.vector<float>(loss, "loss");
    out.row_losses = c.vector<float>(row_losses, "row_losses");
    out.col_losses = c.vector<float>(col_losses, "col_losses");
    kfuse::ContrastiveGradients<G> g;
    g.dA = c.matrix<G>(dA, "dA");
    g.dB = c.matrix<G>(dB, "dB");
    g.dt = c.vector<float>(dt, "dt");
    g.db = c.vector<float>(db, "db");
    const auto dl = scalar(c, grad_loss, grad_loss_array, "grad_loss");
    const auto opt = clip_options(c, direction, logit_scale, logit_scale_array, bias, bias_array,
                                  label_smoothing, precision, deterministic, check_device_labels);
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::clip_loss_forward_backward(ctx, a, b, lab, out, dl, g, opt);
  });
}

void siglip_forward_backward(const In& A, const In& B, const OptIn& labels, const Out& loss,
                             const OptOut& row_losses, const OptOut& dA, const OptOut& dB,
                             const OptOut& dt, const OptOut& db, double grad_loss,
                             const OptIn& grad_loss_array, double logit_scale,
                             const OptIn& logit_scale_array, double bias, const OptIn& bias_array,
                             kfuse::Precision precision, bool deterministic,
                             bool check_device_labels, std::uintptr_t stream, bool torch_ws) {
  Call c("siglip_loss_forward_backward", stream, torch_ws);
  dispatch_grads(c, A, dA, dB, [&](auto ttag, auto gtag) {
    using T = decltype(ttag);
    using G = decltype(gtag);
    const auto a = c.matrix<const T>(A, "A"), b = c.matrix<const T>(B, "B");
    const auto lab = c.vector<const std::int64_t>(labels, "labels");
    const auto l = c.vector<float>(loss, "loss");
    const auto rl = c.vector<float>(row_losses, "row_losses");
    kfuse::ContrastiveGradients<G> g;
    g.dA = c.matrix<G>(dA, "dA");
    g.dB = c.matrix<G>(dB, "dB");
    g.dt = c.vector<float>(dt, "dt");
    g.db = c.vector<float>(db, "db");
    const auto dl = scalar(c, grad_loss, grad_loss_array, "grad_loss");
    const auto opt = siglip_options(c, logit_scale, logit_scale_array, bias, bias_array, precision,
                                    deterministic, check_device_labels);
    kfuse::Context& ctx = c.context();
    nb::gil_scoped_release release;
    kfuse::siglip_loss_forward_backward(ctx, a, b, lab, l, rl, dl, g, opt);
  });
}

}  // namespace

void register_contrastive(nb::module_& m) {
  nb::enum_<kfuse::ClipDirection>(m, "ClipDirection")
      .value("Both", kfuse::ClipDirection::Both)
      .value("AtoB", kfuse::ClipDirection::AtoB)
      .value("BtoA", kfuse::ClipDirection::BtoA);
  const kfuse::ClipLossOptions co;
  const kfuse::SiglipLossOptions so;
  {
    nb::dict d = defaults(m, "clip_loss");
    d["direction"] = co.direction;
    d["logit_scale"] = co.logit_scale.value;
    d["bias"] = co.bias.value;
    d["label_smoothing"] = co.label_smoothing;
    d["precision"] = co.precision;
    d["deterministic"] = co.deterministic;
    d["check_device_labels"] = co.check_device_labels;
    d = defaults(m, "siglip_loss");
    d["logit_scale"] = so.logit_scale.value;
    d["bias"] = so.bias.value;
    d["precision"] = so.precision;
    d["deterministic"] = so.deterministic;
    d["check_device_labels"] = so.check_device_labels;
  }
  m.def("clip_loss_forward", &clip_forward, "A"_a, "B"_a, "labels"_a.none(), "loss"_a,
        "row_losses"_a.none(), "col_losses"_a.none(), "lse_rows"_a.none(), "lse_cols"_a.none(),
        nb::kw_only(), "direction"_a = co.direction, "logit_scale"_a = co.logit_scale.value,
        "logit_scale_array"_a.none() = nb::none(), "bias"_a = co.bias.value,
        "bias_array"_a.none() = nb::none(), "label_smoothing"_a = co.label_smoothing,
        "precision"_a = co.precision, "deterministic"_a = co.deterministic,
        "check_device_labels"_a = co.check_device_labels, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("clip_loss_backward", &clip_backward, "A"_a, "B"_a, "labels"_a.none(), "lse_rows"_a.none(),
        "lse_cols"_a.none(), "dA"_a.none(), "dB"_a.none(), "dt"_a.none(), "db"_a.none(),
        nb::kw_only(), "grad_loss"_a = 1.0, "grad_loss_array"_a.none() = nb::none(),
        "direction"_a = co.direction, "logit_scale"_a = co.logit_scale.value,
        "logit_scale_array"_a.none() = nb::none(), "bias"_a = co.bias.value,
        "bias_array"_a.none() = nb::none(), "label_smoothing"_a = co.label_smoothing,
        "precision"_a = co.precision, "deterministic"_a = co.deterministic,
        "check_device_labels"_a = co.check_device_labels, "stream"_a = 0,
        "torch_workspace"_a = false);
  m.def("clip_loss_forward_backward", &clip_forward_backward, "A"_a, "B"_a, "labels"_a.none(),
        "loss"_a, "row_losses"_a.none(), "col_losses"_a.none(), "dA"_a.none(), "dB"_a.none(),
        "dt"_a.none(), "db"_a.none(), nb::kw_only(), "grad_loss"_a = 1.0,
        "grad_loss_array"_a.none() = nb::none(), "direction"_a = co.direction,
        "logit_scale"_a = co.logit_scale.value, "logit_scale_array"_a.none() = nb::none(),
        "bias"_a = co.bias.value, "bias_array"_a.none() = nb::none(),
        "label_smoothing"_a = co.label_smoothing, "precision"_a = co.precision,
        "deterministic"_a = co.deterministic, "check_device_labels"_a = co.check_device_labels,
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("siglip_loss_forward_backward", &siglip_forward_backward, "A"_a, "B"_a, "labels"_a.none(),
        "loss"_a, "row_losses"_a.none(), "dA"_a.none(), "dB"_a.none(), "dt"_a.none(), "db"_a.none(),
        nb::kw_only(), "grad_loss"_a = 1.0, "grad_loss_array"_a.none() = nb::none(),
        "logit_scale"_a = so.logit_scale.value, "logit_scale_array"_a.none() = nb::none(),
        "bias"_a = so.bias.value, "bias_array"_a.none() = nb::none(), "precision"_a = so.precision,
        "deterministic"_a = so.deterministic, "check_device_labels"_a = so.check_device_labels,
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("siglip_loss_forward", &siglip_forward, "A"_a, "B"_a, "labels"_a.none(), "loss"_a,
        "row_losses"_a.none(), nb::kw_only(), "logit_scale"_a = so.logit_scale.value,
        "logit_scale_array"_a.none() = nb::none(), "bias"_a = so.bias.value,
        "bias_array"_a.none() = nb::none(), "precision"_a = so.precision,
        "deterministic"_a = so.deterministic, "check_device_labels"_a = so.check_device_labels,
        "stream"_a = 0, "torch_workspace"_a = false);
  m.def("siglip_loss_backward", &siglip_backward, "A"_a, "B"_a, "labels"_a.none(), "dA"_a.none(),
        "dB"_a.none(), "dt"_a.none(), "db"_a.none(), nb::kw_only(), "grad_loss"_a = 1.0,
        "grad_loss_array"_a.none() = nb::none(), "logit_scale"_a = so.logit_scale.value,
        "logit_scale_array"_a.none() = nb::none(), "bias"_a = so.bias.value,
        "bias_array"_a.none() = nb::none(), "precision"_a = so.precision,
        "deterministic"_a = so.deterministic, "check_device_labels"_a = so.check_device_labels,
        "stream"_a = 0, "torch_workspace"_a = false);
}

}  // namespace kfuse_py
