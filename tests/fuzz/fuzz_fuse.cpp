// Fuzz cases for the fusion family (kfuse_fuse.h).
#include <cmath>
#include <memory>
#include <string>

#include "enum_calls.h"
#include "fuzz_core.hpp"

namespace fuzz {
namespace {

bool positive_finite(double v) {
  return std::isfinite(v) && v > 0;
}

int input_dtype(Rng& r, bool allow_f64) {
  std::vector<int> d = {KFUSE_F32, KFUSE_BF16, KFUSE_F16};
  if (allow_f64) d.push_back(KFUSE_F64);
  return r.pick(d);
}

// A random side kernel; `width` receives its feature width for an input of d
// columns (2 r for an RBF side with r random features).
void random_side(Builder& b, kfuse_fuse_side_t& s, const std::string& name, std::int64_t d,
                 std::int64_t* width, bool feature_map) {
  Rng& r = b.rng();
  s = kfuse_fuse_side_default();
  const int kind = static_cast<int>(r.below(3));
  set_enum(s.kernel, kind);
  s.sigma = b.finite(0.3, 2.0);
  s.rff_features = r.range(1, 4);
  *width = (kind == KFUSE_SIDE_RBF && feature_map) ? 2 * s.rff_features : d;
  // Unknown kernels only: a valid switch would change the widths the shapes encode.
  b.enum_option(name + ".kernel", &s.kernel, 3, false);
  if (kind == KFUSE_SIDE_RBF) {
    b.double_option(name + ".sigma", &s.sigma, positive_finite);
    if (feature_map) {
      auto* f = &s.rff_features;
      for (std::int64_t v : {std::int64_t(0), std::int64_t(-1), INT64_MIN})
        b.c().option_mutations.push_back(
            {name + ".rff_features = " + std::to_string(v), [f, v] { *f = v; }, true});
      if (b.settings().huge)
        for (std::int64_t v : huge_extents())
          b.c().option_mutations.push_back(
              {name + ".rff_features = " + std::to_string(v), [f, v] { *f = v; }, true});
    }
  }
}

const char* const kInputNames[4] = {"inputs[0]", "inputs[1]", "inputs[2]", "inputs[3]"};

// `count` inputs [n x d_j] in one contiguous descriptor array (the C API takes a
// pointer to the first); returns the index of the first. Their descriptors live in
// the case's args, so the call copies them into an array first.
struct Inputs {
  int first;
  int count;
};

Inputs inputs(Builder& b, int count, std::int64_t n, int dtype, const std::int64_t* d) {
  Inputs in{static_cast<int>(b.c().args.size()), count};
  for (int j = 0; j < count; ++j) {
    const int i = b.matrix(kInputNames[j], Role::In, dtype, n, d[j]);
    // Only the array as a whole (through inputs[0]) can be NULL.
    b.c().args[i].nullable = j == 0;
    // A lone input may take another input dtype (its output's follows).
    b.c().args[i].dtype_choice = count == 1;
  }
  return in;
}

// The inputs' descriptors as the call passes them (NULL when the first is absent).
struct InputArray {
  kfuse_matrix_t m[4];
};
const kfuse_matrix_t* input_array(Case& c, const Inputs& in, InputArray& a) {
  for (int j = 0; j < in.count; ++j)
    a.m[j] = c.args[in.first + j].m;
  return c.args[in.first].present ? a.m : nullptr;
}

const char* const kGradNames[4] = {"grads[0]", "grads[1]", "grads[2]", "grads[3]"};

// A backward's gradients: one [n x d_j] output per input, in one descriptor array
// like the inputs (see Inputs).
Inputs grads(Builder& b, int count, std::int64_t n, int dtype, const std::int64_t* d) {
  Inputs g{static_cast<int>(b.c().args.size()), count};
  for (int j = 0; j < count; ++j) {
    const int i = b.matrix(kGradNames[j], Role::Out, dtype, n, d[j]);
    b.c().args[i].nullable = j == 0;
  }
  return g;
}

// count: 1 to 4; a mutation may pass 0, -1 or 5.
void count_mutations(Builder& b, std::shared_ptr<int> count) {
  for (int v : {0, -1, 5, 1 << 30})
    b.c().option_mutations.push_back(
        {"count = " + std::to_string(v), [count, v] { *count = v; }, true});
}

void side_count_mutations(Builder& b, int* side_count, int count) {
  for (int v : {-1, 5, count == 4 ? 3 : count + 1})
    b.c().option_mutations.push_back(
        {"side_count = " + std::to_string(v), [side_count, v] { *side_count = v; }, true});
}

void kron_fuse(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const int count = static_cast<int>(r.range(1, 3));
  const int dtype = input_dtype(r, true);
  const std::int64_t n = b.extent(0, 40);
  auto o = std::make_shared<kfuse_kron_fuse_options_t>(kfuse_kron_fuse_options_default());
  o->seed = r.next();
  std::int64_t d[4], width = 1;
  const bool sides = r.chance(0.6);
  o->side_count = sides ? count : 0;
  for (int j = 0; j < count; ++j) {
    d[j] = r.range(1, 6);
    std::int64_t w = d[j];
    if (sides) random_side(b, o->sides[j], "sides[" + std::to_string(j) + "]", d[j], &w, true);
    width *= w;
  }
  const Inputs in = inputs(b, count, n, dtype, d);
  for (int j = 0; j < count; ++j)
    if (sides && enum_int(o->sides[j].kernel) == KFUSE_SIDE_RBF)
      c.args[in.first + j].free_cols = true;
  const int out = b.matrix("out", Role::Out, dtype == KFUSE_F64 ? KFUSE_F64 : KFUSE_F32, n, width);
  auto cnt = std::make_shared<int>(count);
  count_mutations(b, cnt);
  side_count_mutations(b, &o->side_count, count);
  c.takes_options();
  c.names.insert(c.names.end(), {"inputs", "out", "sides", "side_count", "seed"});
  c.call = [&c, in, out, o, cnt] {
    InputArray a;
    return kfuse_kron_fuse(c.ctx, input_array(c, in, a), *cnt, c.M(out), c.opt(*o));
  };
}

// kron_fuse_backward: the forward's case plus grad_out [n x width] and the gradients.
// (An Rbf side with fp64 inputs is Unsupported, naming the side.)
void kron_fuse_backward(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const int count = static_cast<int>(r.range(1, 3));
  const int dtype = input_dtype(r, true);
  const int out_dtype = dtype == KFUSE_F64 ? KFUSE_F64 : KFUSE_F32;
  const std::int64_t n = b.extent(0, 40);
  auto o = std::make_shared<kfuse_kron_fuse_options_t>(kfuse_kron_fuse_options_default());
  o->seed = r.next();
  std::int64_t d[4], width = 1;
  const bool sides = r.chance(0.6);
  o->side_count = sides ? count : 0;
  for (int j = 0; j < count; ++j) {
    d[j] = r.range(1, 6);
    std::int64_t w = d[j];
    if (sides) random_side(b, o->sides[j], "sides[" + std::to_string(j) + "]", d[j], &w, true);
    width *= w;
  }
  const Inputs in = inputs(b, count, n, dtype, d);
  for (int j = 0; j < count; ++j)
    c.args[in.first + j].dtype_choice = false;  // the gradients' dtype follows the inputs'
  const int dz = b.matrix("grad_out", Role::In, out_dtype, n, width);
  const Inputs g = grads(b, count, n, out_dtype, d);
  auto cnt = std::make_shared<int>(count);
  count_mutations(b, cnt);
  side_count_mutations(b, &o->side_count, count);
  c.takes_options();
  c.names.insert(c.names.end(), {"inputs", "grad_out", "grads", "sides", "side_count", "seed"});
  c.call = [&c, in, dz, g, o, cnt] {
    InputArray a, ga;
    return kfuse_kron_fuse_backward(c.ctx, input_array(c, in, a), *cnt, c.M(dz),
                                    input_array(c, g, ga), c.opt(*o));
  };
}

void rp_common(Builder& b, kfuse_rp_fuse_options_t& o) {
  Rng& r = b.rng();
  o.seed = r.next();
  set_enum(o.distribution, static_cast<int>(r.below(3)));
  set_enum(o.scaling, static_cast<int>(r.below(2)));
  set_enum(o.precision, static_cast<int>(r.below(3)));
  b.enum_option("distribution", &o.distribution, 3);
  b.enum_option("scaling", &o.scaling, 2);
  b.enum_option("precision", &o.precision, 3);
}

// What rp_fuse and its backward draw alike: 1 to 4 inputs of n rows (their sides half
// the time), l random features, the options.
struct RpCase {
  int count;
  std::int64_t n, l;
  std::int64_t d[4];
  std::shared_ptr<kfuse_rp_fuse_options_t> o;
  Inputs in;
};

RpCase rp_case(Builder& b) {
  Rng& r = b.rng();
  RpCase k;
  k.count = static_cast<int>(r.range(1, 4));
  const int dtype = input_dtype(r, false);
  k.n = b.extent(0, 40);
  k.l = b.extent(1, 70);
  k.o = std::make_shared<kfuse_rp_fuse_options_t>(kfuse_rp_fuse_options_default());
  rp_common(b, *k.o);
  const bool sides = r.chance(0.5);
  k.o->side_count = sides ? k.count : 0;
  for (int j = 0; j < k.count; ++j) {
    k.d[j] = r.range(1, 40);
    std::int64_t w;
    if (sides) random_side(b, k.o->sides[j], "sides[" + std::to_string(j) + "]", k.d[j], &w, true);
  }
  k.in = inputs(b, k.count, k.n, dtype, k.d);
  return k;
}

void rp_fuse(Builder& b) {
  Case& c = b.c();
  const RpCase k = rp_case(b);
  const int count = k.count;
  const std::int64_t n = k.n, l = k.l;
  const Inputs in = k.in;
  const auto o = k.o;
  for (int j = 0; j < count; ++j)
    c.args[in.first + j].free_cols = true;  // U_j is drawn to fit
  const int out = b.matrix("out", Role::Out, KFUSE_F32, n, l);
  c.args[out].free_cols = true;  // l
  auto cnt = std::make_shared<int>(count);
  count_mutations(b, cnt);
  side_count_mutations(b, &o->side_count, count);
  c.takes_options();
  c.names.insert(c.names.end(),
                 {"inputs", "out", "sides", "side_count", "distribution", "scaling", "precision"});
  c.call = [&c, in, out, o, cnt] {
    InputArray a;
    return kfuse_rp_fuse(c.ctx, input_array(c, in, a), *cnt, c.M(out), c.opt(*o));
  };
}

// rp_fuse_backward: the forward's case plus grad_out [n x l] and the gradients.
void rp_fuse_backward(Builder& b) {
  Case& c = b.c();
  const RpCase k = rp_case(b);
  const int count = k.count;
  const std::int64_t n = k.n, l = k.l;
  const Inputs in = k.in;
  const auto o = k.o;
  const int dz = b.matrix("grad_out", Role::In, KFUSE_F32, n, l);
  c.args[dz].free_cols = true;  // l
  const Inputs g = grads(b, count, n, KFUSE_F32, k.d);
  auto cnt = std::make_shared<int>(count);
  count_mutations(b, cnt);
  side_count_mutations(b, &o->side_count, count);
  c.takes_options();
  c.names.insert(c.names.end(), {"inputs", "grad_out", "grads", "sides", "side_count",
                                 "distribution", "scaling", "precision"});
  c.call = [&c, in, dz, g, o, cnt] {
    InputArray a, ga;
    return kfuse_rp_fuse_backward(c.ctx, input_array(c, in, a), *cnt, c.M(dz),
                                  input_array(c, g, ga), c.opt(*o));
  };
}

void rp_projection_matrix(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  auto o = std::make_shared<kfuse_rp_fuse_options_t>(kfuse_rp_fuse_options_default());
  rp_common(b, *o);
  auto input = std::make_shared<int>(static_cast<int>(r.below(4)));
  for (int v : {-1, 4, 1 << 30, -(1 << 30)})
    c.option_mutations.push_back(
        {"input = " + std::to_string(v), [input, v] { *input = v; }, true});
  const int out = b.matrix("out", Role::Out, KFUSE_F32, b.extent(0, 70), b.extent(0, 70));
  c.args[out].free_rows = c.args[out].free_cols = true;
  c.takes_options();
  c.names.insert(c.names.end(),
                 {"input", "out", "distribution", "scaling", "precision", "sides", "side_count"});
  c.call = [&c, input, out, o] {
    return kfuse_rp_projection_matrix(c.ctx, *input, c.M(out), c.opt(*o));
  };
}

// Cross-modal options with small dims; the shared side's width for shared_dim.
void cross_options(Builder& b, kfuse_cross_modal_options_t& o, bool feature_map) {
  Rng& r = b.rng();
  o = kfuse_cross_modal_options_default();
  o.C = b.finite(0.1, 2.0);
  o.image_dim = r.range(1, 4);
  o.text_dim = r.range(1, 4);
  o.seed = r.next();
  std::int64_t w;
  random_side(b, o.shared, "shared", 1, &w, feature_map);
  random_side(b, o.image_expert, "image_expert", 1, &w, feature_map);
  random_side(b, o.text_expert, "text_expert", 1, &w, feature_map);
  b.double_option("C", &o.C, positive_finite);
  set_enum(o.distribution, static_cast<int>(r.below(3)));
  set_enum(o.scaling, static_cast<int>(r.below(2)));
  set_enum(o.precision, static_cast<int>(r.below(3)));
  b.enum_option("distribution", &o.distribution, 3);
  b.enum_option("scaling", &o.scaling, 2);
  b.enum_option("precision", &o.precision, 3);
}

void cross_modal_width(Builder& b) {
  Rng& r = b.rng();
  kfuse_cross_modal_options_t o;
  cross_options(b, o, true);
  std::int64_t shared_dim = r.range(0, 8);
  if (b.settings().huge && r.chance(0.3)) {
    const std::int64_t h = r.pick(huge_extents());
    switch (r.below(4)) {
      case 0:
        shared_dim = h;
        break;
      case 1:
        o.image_dim = h;
        break;
      case 2:
        o.shared.rff_features = h;
        set_enum(o.shared.kernel, KFUSE_SIDE_RBF);
        break;
      default:
        o.text_expert.rff_features = h;
        set_enum(o.text_expert.kernel, KFUSE_SIDE_RBF);
    }
  }
  if (r.chance(0.2)) set_enum(o.image_expert.kernel, r.pick(std::vector<int>{-1, 3, 99}));
  (void)kfuse_cross_modal_width(r.chance(0.1) ? nullptr : &o, shared_dim);
}

template <bool Kron>
void cross_modal(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  auto o = std::make_shared<kfuse_cross_modal_options_t>();
  cross_options(b, *o, true);
  auto modality = std::make_shared<int>(static_cast<int>(r.below(2)));
  for (int v : {-1, 2, 99})
    c.option_mutations.push_back(
        {"modality = " + std::to_string(v), [modality, v] { *modality = v; }, true});
  const int dtype = input_dtype(r, Kron);
  const std::int64_t n = b.extent(0, 30), dp = r.range(1, 5);
  const std::int64_t de = *modality == KFUSE_MODALITY_IMAGE ? o->image_dim : o->text_dim;
  const int sh = b.matrix("shared", Role::In, dtype, n, dp);
  const int ex = b.matrix("expert", Role::In, dtype, n, de);
  std::int64_t width = r.range(1, 70);
  if (Kron) {
    width = kfuse_cross_modal_width(o.get(), dp);
    if (width <= 0 || width > 100000) {
      std::fprintf(stderr, "FINDING [kfuse_cross_modal_width] width %lld for small dims\n",
                   static_cast<long long>(width));
      std::abort();
    }
  }
  const int out = b.matrix("out", Role::Out, dtype == KFUSE_F64 ? KFUSE_F64 : KFUSE_F32, n, width);
  if (!Kron) c.args[sh].free_cols = c.args[out].free_cols = true;
  if (Kron && enum_int(o->shared.kernel) == KFUSE_SIDE_RBF) c.args[sh].free_cols = true;
  c.takes_options();
  c.names.insert(c.names.end(),
                 {"modality", "shared", "expert", "out", "C", "image_dim", "text_dim",
                  "image_expert", "text_expert", "distribution", "scaling", "precision"});
  for (auto* dim : {&o->image_dim, &o->text_dim})
    for (std::int64_t v : {std::int64_t(0), std::int64_t(-1)})
      c.option_mutations.push_back({"dim = " + std::to_string(v), [dim, v] { *dim = v; }, true});
  c.call = [&c, modality, sh, ex, out, o] {
    return Kron ? fuzz_cross_modal_kron(c.ctx, *modality, c.M(sh), c.M(ex), c.M(out), c.opt(*o))
                : fuzz_cross_modal_rp(c.ctx, *modality, c.M(sh), c.M(ex), c.M(out), c.opt(*o));
  };
}

void rff_fuse(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const int count = static_cast<int>(r.range(1, 4));
  const int dtype = input_dtype(r, false);
  const std::int64_t n = b.extent(0, 40), rr = r.range(1, 35);
  auto o = std::make_shared<kfuse_rff_options_t>(kfuse_rff_options_default());
  o->seed = r.next();
  o->sigma_count = count;
  std::int64_t d[4];
  for (int j = 0; j < count; ++j) {
    d[j] = r.range(1, 20);
    o->sigmas[j] = b.finite(0.3, 3.0);
    b.double_option("sigmas[" + std::to_string(j) + "]", &o->sigmas[j], positive_finite);
  }
  const Inputs in = inputs(b, count, n, dtype, d);
  for (int j = 0; j < count; ++j)
    c.args[in.first + j].free_cols = true;
  const int out = b.matrix("out", Role::Out, KFUSE_F32, n, 2 * rr);
  c.args[out].free_cols = true;
  auto cnt = std::make_shared<int>(count);
  count_mutations(b, cnt);
  for (int v : {-1, 5, count == 4 ? 3 : count + 1})
    c.option_mutations.push_back(
        {"sigma_count = " + std::to_string(v), [o, v] { o->sigma_count = v; }, true});
  c.takes_options();
  c.names.insert(c.names.end(), {"inputs", "out", "sigmas", "sigma_count"});
  c.call = [&c, in, out, o, cnt] {
    InputArray a;
    return kfuse_rff_fuse(c.ctx, input_array(c, in, a), *cnt, c.M(out), c.opt(*o));
  };
}

void tensor_sketch(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const int dtype = input_dtype(r, false);
  const std::int64_t n = b.extent(0, 40);
  auto o = std::make_shared<kfuse_tensor_sketch_options_t>(kfuse_tensor_sketch_options_default());
  o->seed = r.next();
  std::int64_t w;
  random_side(b, o->side_a, "side_a", 1, &w, true);
  random_side(b, o->side_b, "side_b", 1, &w, true);
  const int A = b.matrix("A", Role::In, dtype, n, r.range(1, 20));
  const int B = b.matrix("B", Role::In, dtype, n, r.range(1, 20));
  const int out = b.matrix("out", Role::Out, KFUSE_F32, n, b.extent(1, 70));
  c.args[A].free_cols = c.args[B].free_cols = c.args[out].free_cols = true;
  c.takes_options();
  c.names.insert(c.names.end(), {"A", "B", "out", "side_a", "side_b"});
  c.call = [&c, A, B, out, o] {
    return kfuse_tensor_sketch(c.ctx, c.M(A), c.M(B), c.M(out), c.opt(*o));
  };
}

void product_kernel_topk(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const int dtype = input_dtype(r, false);
  const std::int64_t M = b.extent(0, 70), N = b.extent(1, 70), d1 = r.range(1, 20),
                     d2 = r.range(1, 20), k = r.range(1, N < 8 ? N : 8);
  auto o = std::make_shared<kfuse_product_topk_options_t>(kfuse_product_topk_options_default());
  std::int64_t w;
  random_side(b, o->side1, "side1", d1, &w, false);
  random_side(b, o->side2, "side2", d2, &w, false);
  o->C = r.chance(0.5) ? 0.0 : b.finite(0.0, 2.0);
  b.double_option("C", &o->C, nullptr);
  set_enum(o->precision, static_cast<int>(r.below(3)));
  b.enum_option("precision", &o->precision, 3);
  const int Q1 = b.matrix("Q1", Role::In, dtype, M, d1);
  const int Q2 = b.matrix("Q2", Role::In, dtype, M, d2);
  const int G1 = b.matrix("G1", Role::In, dtype, N, d1);
  const int G2 = b.matrix("G2", Role::In, dtype, N, d2);
  const int I = b.matrix("indices", Role::Out, KFUSE_I64, M, k);
  const int S = b.matrix("scores", Role::Out, KFUSE_F32, M, k);
  c.takes_options();
  c.names.insert(c.names.end(), {"Q1", "Q2", "G1", "G2", "indices", "scores", "k", "side1", "side2",
                                 "C", "precision"});
  c.call = [&c, Q1, Q2, G1, G2, I, S, o] {
    return kfuse_product_kernel_topk(c.ctx, c.M(Q1), c.M(Q2), c.M(G1), c.M(G2), c.M(I), c.M(S),
                                     c.opt(*o));
  };
}

}  // namespace

std::vector<EntryPoint> fuse_entry_points() {
  return {{"kfuse_kron_fuse", kron_fuse},
          {"kfuse_rp_fuse", rp_fuse},
          {"kfuse_kron_fuse_backward", kron_fuse_backward},
          {"kfuse_rp_fuse_backward", rp_fuse_backward},
          {"kfuse_rp_projection_matrix", rp_projection_matrix},
          {"kfuse_cross_modal_width", cross_modal_width},
          {"kfuse_cross_modal_kron", cross_modal<true>},
          {"kfuse_cross_modal_rp", cross_modal<false>},
          {"kfuse_rff_fuse", rff_fuse},
          {"kfuse_tensor_sketch", tensor_sketch},
          {"kfuse_product_kernel_topk", product_kernel_topk}};
}

}  // namespace fuzz
