// Fuzz cases for the contrastive loss family (kfuse_contrastive.h).
#include <array>
#include <cmath>
#include <memory>
#include <string>

#include "enum_calls.h"
#include "fuzz_core.hpp"

namespace fuzz {
namespace {

bool any_finite(double v) {
  return std::isfinite(v);
}
bool log_scale(double v) {
  return std::isfinite(v) && v <= 88.0;
}
bool smoothing(double v) {
  return v >= 0.0 && v < 1.0;
}

int input_dtype(Rng& r) {
  return r.pick(std::vector<int>{KFUSE_F32, KFUSE_BF16, KFUSE_F16});
}

// A loss scalar: a value, or one f32 in host memory (an input of the call).
void scalar(Builder& b, kfuse_loss_scalar_t& s, const std::string& name, double value,
            bool (*valid)(double)) {
  Case& c = b.c();
  s = kfuse_loss_scalar(value);
  if (!b.rng().chance(0.25)) {
    b.double_option(name, &s.value, valid);
    return;
  }
  const int i = b.vector(name, Role::In, KFUSE_F32, 1);
  const float v = static_cast<float>(value);
  std::memcpy(c.args[i].v.data, &v, 4);
  c.args[i].mutable_ = false;  // its NULL data means "a value": mutated below instead
  s.in_memory = c.args[i].v;
  auto* m = &s.in_memory;
  c.option_mutations.push_back(
      {name + ".in_memory: dtype = 99", [m] { set_enum(m->dtype, 99); }, true});
  c.option_mutations.push_back(
      {name + ".in_memory: dtype = f64", [m] { m->dtype = KFUSE_F64; }, true});
  c.option_mutations.push_back(
      {name + ".in_memory: memory = device", [m] { m->memory = KFUSE_DEVICE; }, true});
  c.option_mutations.push_back(
      {name + ".in_memory: memory = -1", [m] { set_enum(m->memory, -1); }, true});
  c.option_mutations.push_back({name + ".in_memory: size = 2", [m] { m->size = 2; }, true});
  c.option_mutations.push_back({name + ".in_memory: size = -1", [m] { m->size = -1; }, true});
  c.option_mutations.push_back({name + ".in_memory: absent",
                                [m] {
                                  m->data = nullptr;
                                  m->size = 0;
                                },
                                false, -1, false,
                                /*exclusive: an earlier mutation may have aliased it*/ true});
}

// The common options of both losses.
template <class O>
void common(Builder& b, O& o) {
  Rng& r = b.rng();
  set_enum(o.precision, static_cast<int>(r.below(3)));
  b.enum_option("precision", &o.precision, 3);
  o.deterministic = r.chance(0.8);
  o.check_device_labels = r.chance(0.8);
  o.workspace = nullptr;
  o.workspace_bytes = 0;
  b.c().takes_options();
}

struct Shapes {
  std::int64_t Na, Nb, d;
  int dtype;
  int direction;  // CLIP: 0 both, 1 A to B, 2 B to A; SigLIP: -1
};

// A, B and labels; returns {A, B, labels} arg indices.
struct Inputs {
  int A, B, labels;
};

Inputs inputs(Builder& b, const Shapes& s) {
  Case& c = b.c();
  Rng& r = b.rng();
  Inputs in;
  in.A = b.matrix("A", Role::In, s.dtype, s.Na, s.d);
  in.B = b.matrix("B", Role::In, s.dtype, s.Nb, s.d);
  // Na and Nb are tied to each other only by direction Both, to outputs only when
  // these are present: left alone by the off-by-one mutations.
  if (s.direction != 0) c.args[in.A].free_rows = c.args[in.B].free_rows = true;
  const std::int64_t n = s.direction == 2 ? s.Nb : s.Na;
  const std::int64_t range = s.direction == 2 ? s.Na : s.Nb;
  in.labels = b.vector("labels", Role::In, KFUSE_I64, n);
  c.args[in.labels].optional = true;
  c.args[in.labels].free_rows = true;
  std::int64_t* l = b.i64(in.labels);
  for (std::int64_t i = 0; i < n; ++i)
    l[i] = s.direction == 0 ? i : r.range(s.direction < 0 ? -1 : 0, range - 1);
  if (s.direction == 0)  // a permutation
    for (std::int64_t i = n - 1; i > 0; --i)
      std::swap(l[i], l[r.below(i + 1)]);
  if (r.chance(0.5)) c.args[in.labels].present = false;
  if (n > 0)
    for (std::int64_t v : {range, std::int64_t(-2), INT64_MAX, INT64_MIN})
      c.option_mutations.push_back(
          {"labels[0] = " + std::to_string(v), [l, v] { l[0] = v; }, true, in.labels});
  c.names.insert(c.names.end(), {"A", "B", "labels"});
  return in;
}

Shapes shapes(Builder& b, bool clip) {
  Rng& r = b.rng();
  Shapes s;
  s.direction = clip ? static_cast<int>(r.below(3)) : -1;
  s.Na = b.extent(1, 70);
  s.Nb = s.direction == 0 ? s.Na : b.extent(1, 70);
  s.d = b.extent(1, 40);
  s.dtype = input_dtype(r);
  return s;
}

// Gradients: each present or not; dA and dB of A's dtype or f32 (the same).
struct Grads {
  std::shared_ptr<kfuse_contrastive_grads_t> g;
  int dA, dB, dt, db;
};

Grads grads(Builder& b, const Shapes& s) {
  Case& c = b.c();
  Rng& r = b.rng();
  const int gd = r.chance(0.5) ? KFUSE_F32 : s.dtype;
  Grads g;
  g.g = std::make_shared<kfuse_contrastive_grads_t>();
  g.dA = b.matrix("dA", Role::Out, gd, s.Na, s.d);
  g.dB = b.matrix("dB", Role::Out, gd, s.Nb, s.d);
  g.dt = b.vector("dt", Role::Out, KFUSE_F32, 1);
  g.db = b.vector("db", Role::Out, KFUSE_F32, 1);
  for (int i : {g.dA, g.dB, g.dt, g.db}) {
    c.args[i].optional = true;
    c.args[i].present = r.chance(0.7);
  }
  c.args[g.dA].dtype_choice = c.args[g.dB].dtype_choice = true;
  c.names.insert(c.names.end(), {"grads", "dA", "dB", "dt", "db"});
  return g;
}

const kfuse_contrastive_grads_t* grads_of(Case& c, Grads& g, bool null) {
  g.g->dA = c.M(g.dA);
  g.g->dB = c.M(g.dB);
  g.g->dt = c.V(g.dt);
  g.g->db = c.V(g.db);
  return null ? nullptr : g.g.get();
}

struct ClipOut {
  std::shared_ptr<kfuse_clip_outputs_t> out;
  int loss, rows, cols, lse_rows, lse_cols;
};

ClipOut clip_outputs(Builder& b, const Shapes& s) {
  Case& c = b.c();
  Rng& r = b.rng();
  ClipOut o;
  o.out = std::make_shared<kfuse_clip_outputs_t>();
  o.loss = b.vector("loss", Role::Out, KFUSE_F32, 1);
  o.rows = b.vector("row_losses", Role::Out, KFUSE_F32, s.Na);
  o.cols = b.vector("col_losses", Role::Out, KFUSE_F32, s.Nb);
  o.lse_rows = b.vector("lse_rows", Role::Out, KFUSE_F32, s.Na);
  o.lse_cols = b.vector("lse_cols", Role::Out, KFUSE_F32, s.Nb);
  const bool rows = s.direction != 2, cols = s.direction != 1;
  for (int i : {o.rows, o.lse_rows}) {
    c.args[i].optional = true;
    c.args[i].present = rows && r.chance(0.6);
    c.args[i].free_rows = !rows;
  }
  for (int i : {o.cols, o.lse_cols}) {
    c.args[i].optional = true;
    c.args[i].present = cols && r.chance(0.6);
    c.args[i].free_rows = !cols;
  }
  c.names.insert(c.names.end(),
                 {"out", "loss", "row_losses", "col_losses", "lse_rows", "lse_cols"});
  return o;
}

const kfuse_clip_outputs_t* outputs_of(Case& c, ClipOut& o) {
  o.out->loss = c.V(o.loss);
  o.out->row_losses = c.V(o.rows);
  o.out->col_losses = c.V(o.cols);
  o.out->lse_rows = c.V(o.lse_rows);
  o.out->lse_cols = c.V(o.lse_cols);
  return o.out.get();
}

std::shared_ptr<kfuse_clip_options_t> clip_options(Builder& b, const Shapes& s) {
  auto o = std::make_shared<kfuse_clip_options_t>(kfuse_clip_options_default());
  set_enum(o->direction, s.direction);
  b.enum_option("direction", &o->direction, 3, false);
  scalar(b, o->logit_scale, "logit_scale", b.finite(-2.0, 3.0), log_scale);
  scalar(b, o->bias, "bias", b.finite(-2.0, 2.0), any_finite);
  o->label_smoothing = b.rng().chance(0.5) ? 0.0 : b.finite(0.0, 0.9);
  b.double_option("label_smoothing", &o->label_smoothing, smoothing);
  common(b, *o);
  b.c().names.insert(b.c().names.end(), {"direction", "logit_scale", "bias", "label_smoothing",
                                         "precision", "workspace"});
  return o;
}

std::shared_ptr<kfuse_siglip_options_t> siglip_options(Builder& b) {
  auto o = std::make_shared<kfuse_siglip_options_t>(kfuse_siglip_options_default());
  scalar(b, o->logit_scale, "logit_scale", b.finite(-2.0, 3.0), log_scale);
  scalar(b, o->bias, "bias", b.finite(-12.0, 2.0), any_finite);
  common(b, *o);
  b.c().names.insert(b.c().names.end(), {"logit_scale", "bias", "precision", "workspace"});
  return o;
}

// The forward's saved statistics for a backward: given (random) or absent.
std::shared_ptr<kfuse_loss_scalar_t> grad_loss(Builder& b, int* present) {
  auto g = std::make_shared<kfuse_loss_scalar_t>();
  *present = b.rng().chance(0.7);
  if (*present)
    scalar(b, *g, "grad_loss", b.finite(-2.0, 2.0), any_finite);
  else
    *g = kfuse_loss_scalar(1.0);
  b.c().names.push_back("grad_loss");
  return g;
}

template <int Pass>  // 0 forward, 1 backward, 2 both
void clip(Builder& b) {
  Case& c = b.c();
  const Shapes s = shapes(b, true);
  const Inputs in = inputs(b, s);
  auto o = clip_options(b, s);
  ClipOut out = clip_outputs(b, s);
  if (Pass == 0) {
    c.call = [&c, in, out, o]() mutable {
      return kfuse_clip_loss_forward(c.ctx, c.M(in.A), c.M(in.B), c.V(in.labels),
                                     outputs_of(c, out), c.opt(*o));
    };
    return;
  }
  Grads g = grads(b, s);
  int has_gl;
  auto gl = grad_loss(b, &has_gl);
  const bool null_grads = b.rng().chance(0.05);
  if (null_grads) c.reject("grads NULL");
  if (Pass == 1) {
    // lse_rows and lse_cols are inputs here: the forward's statistics; the other
    // outputs are not arguments.
    for (int i : {out.lse_rows, out.lse_cols})
      c.args[i].role = Role::In;
    for (int i : {out.loss, out.rows, out.cols}) {
      c.args[i].present = false;
      c.args[i].mutable_ = false;
    }
    c.call = [&c, in, out, o, g, gl, has_gl, null_grads]() mutable {
      return kfuse_clip_loss_backward(
          c.ctx, c.M(in.A), c.M(in.B), c.V(in.labels), c.V(out.lse_rows), c.V(out.lse_cols),
          has_gl ? gl.get() : nullptr, grads_of(c, g, null_grads), c.opt(*o));
    };
    return;
  }
  c.call = [&c, in, out, o, g, gl, has_gl, null_grads]() mutable {
    return kfuse_clip_loss_forward_backward(c.ctx, c.M(in.A), c.M(in.B), c.V(in.labels),
                                            outputs_of(c, out), has_gl ? gl.get() : nullptr,
                                            grads_of(c, g, null_grads), c.opt(*o));
  };
}

template <int Pass>
void siglip(Builder& b) {
  Case& c = b.c();
  const Shapes s = shapes(b, false);
  const Inputs in = inputs(b, s);
  auto o = siglip_options(b);
  const int loss = b.vector("loss", Role::Out, KFUSE_F32, 1);
  const int rows = b.vector("row_losses", Role::Out, KFUSE_F32, s.Na);
  c.args[loss].optional = c.args[rows].optional = true;
  c.args[rows].present = b.rng().chance(0.5);
  c.names.insert(c.names.end(), {"loss", "row_losses"});
  if (Pass == 0) {
    c.call = [&c, in, loss, rows, o] {
      return kfuse_siglip_loss_forward(c.ctx, c.M(in.A), c.M(in.B), c.V(in.labels), c.V(loss),
                                       c.V(rows), c.opt(*o));
    };
    return;
  }
  Grads g = grads(b, s);
  int has_gl;
  auto gl = grad_loss(b, &has_gl);
  const bool null_grads = b.rng().chance(0.05);
  if (null_grads) c.reject("grads NULL");
  if (Pass == 1) {
    c.args[loss].present = c.args[rows].present = false;
    c.args[loss].mutable_ = c.args[rows].mutable_ = false;
    c.call = [&c, in, o, g, gl, has_gl, null_grads]() mutable {
      return kfuse_siglip_loss_backward(c.ctx, c.M(in.A), c.M(in.B), c.V(in.labels),
                                        has_gl ? gl.get() : nullptr, grads_of(c, g, null_grads),
                                        c.opt(*o));
    };
    return;
  }
  c.call = [&c, in, loss, rows, o, g, gl, has_gl, null_grads]() mutable {
    return kfuse_siglip_loss_forward_backward(c.ctx, c.M(in.A), c.M(in.B), c.V(in.labels),
                                              c.V(loss), c.V(rows), has_gl ? gl.get() : nullptr,
                                              grads_of(c, g, null_grads), c.opt(*o));
  };
}

// The workspace queries: sizes only, so any extents (huge ones under --huge).
template <bool Clip>
void workspace_bytes(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const Shapes s = shapes(b, Clip);
  auto ext = std::make_shared<std::array<std::int64_t, 3>>();
  (*ext)[0] = s.Na;
  (*ext)[1] = s.Nb;
  (*ext)[2] = s.d;
  auto pass = std::make_shared<int>(static_cast<int>(r.below(3)));
  auto bytes = std::make_shared<std::size_t>(12345);
  const char* names[3] = {"Na", "Nb", "d"};
  for (int i = 0; i < 3; ++i) {
    for (std::int64_t v : {std::int64_t(0), std::int64_t(-1), INT64_MIN})
      c.option_mutations.push_back({std::string(names[i]) + " = " + std::to_string(v),
                                    [ext, i, v] { (*ext)[i] = v; }, true});
    if (b.settings().huge)
      for (std::int64_t v : huge_extents())  // the query may answer or refuse; never overflow
        c.option_mutations.push_back({std::string(names[i]) + " = " + std::to_string(v),
                                      [ext, i, v] { (*ext)[i] = v; }, false});
  }
  for (int v : {-1, 3, 99})
    c.option_mutations.push_back({"pass = " + std::to_string(v), [pass, v] { *pass = v; }, true});
  const bool null_bytes = r.chance(0.05);
  if (null_bytes) c.reject("bytes NULL");
  c.struct_outputs.push_back({bytes.get(), sizeof *bytes});
  c.names.insert(c.names.end(), {"Na", "Nb", "d", "pass", "bytes"});
  // The query reads the options' kind of computation, not its values.
  auto values_free = [&c] {
    for (auto& m : c.option_mutations)
      if (m.what.rfind("logit_scale", 0) == 0 || m.what.rfind("bias", 0) == 0 ||
          m.what.rfind("label_smoothing", 0) == 0)
        m.reject = false;
  };
  if (Clip) {
    auto o = clip_options(b, s);
    values_free();
    c.call = [&c, ext, pass, o, bytes, null_bytes] {
      return fuzz_clip_loss_workspace_bytes(c.ctx, (*ext)[0], (*ext)[1], (*ext)[2], *pass,
                                            c.opt(*o), null_bytes ? nullptr : bytes.get());
    };
  } else {
    auto o = siglip_options(b);
    values_free();
    c.call = [&c, ext, pass, o, bytes, null_bytes] {
      return fuzz_siglip_loss_workspace_bytes(c.ctx, (*ext)[0], (*ext)[1], (*ext)[2], *pass,
                                              c.opt(*o), null_bytes ? nullptr : bytes.get());
    };
  }
}

}  // namespace

std::vector<EntryPoint> contrastive_entry_points() {
  return {{"kfuse_clip_loss_forward", clip<0>},
          {"kfuse_clip_loss_backward", clip<1>},
          {"kfuse_clip_loss_forward_backward", clip<2>},
          {"kfuse_clip_loss_workspace_bytes", workspace_bytes<true>},
          {"kfuse_siglip_loss_forward", siglip<0>},
          {"kfuse_siglip_loss_backward", siglip<1>},
          {"kfuse_siglip_loss_forward_backward", siglip<2>},
          {"kfuse_siglip_loss_workspace_bytes", workspace_bytes<false>}};
}

}  // namespace fuzz
