// Fuzz cases for the mixture-of-experts family (kfuse_moe.h). Every step after the
// plan runs on a plan built by kfuse_moe_plan (its contents are the library's own);
// the plan's descriptor is mutated, its storage is not.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "fuzz_core.hpp"

namespace fuzz {
namespace {

struct Routing {
  std::int64_t T, k, E;
  kfuse_moe_plan_options_t options;
};

Routing routing(Builder& b) {
  Rng& r = b.rng();
  Routing x;
  x.T = b.extent(0, 20, false);
  x.E = r.range(1, 8);
  x.k = r.range(1, x.E < 3 ? x.E : 3);
  x.options = kfuse_moe_plan_options_default();
  x.options.pad_to = r.pick(std::vector<std::int64_t>{1, 1, 4, 8});
  x.options.capacity = r.chance(0.7) ? 0 : r.range(1, x.T * x.k + 1);
  return x;
}

[[noreturn]] void setup_failed(const char* what) {
  std::fprintf(stderr, "fuzz_c_api: setup %s failed: %s\n", what, kfuse_last_error());
  std::abort();
}

// The plan a case passes: its descriptor (mutated) over storage the case owns.
struct PlanArg {
  std::shared_ptr<kfuse_moe_plan_t> plan;
  bool present = true;
  int storage;  // the storage's arg index
  int ids;      // the ids' arg index
};

// ids [T x k] in [0, E) and a plan of them; `build`: filled by kfuse_moe_plan now
// (an input of the case), else left to the case (its output).
PlanArg make_plan(Builder& b, const Routing& x, bool build) {
  Case& c = b.c();
  kfuse_moe_plan_layout_t layout;
  if (kfuse_moe_plan_layout(x.T, x.k, x.E, &x.options, &layout) != KFUSE_SUCCESS)
    setup_failed("kfuse_moe_plan_layout");
  PlanArg p;
  p.ids = b.matrix("ids", Role::In, KFUSE_I32, x.T, x.k);
  b.fill_i32(p.ids, 0, static_cast<std::int32_t>(x.E - 1));
  p.storage = b.raw("plan", build ? Role::In : Role::Out, layout.storage_size * 4);
  p.plan = std::make_shared<kfuse_moe_plan_t>();
  p.plan->layout = layout;
  p.plan->storage = static_cast<std::int32_t*>(c.args[p.storage].raw);
  p.plan->memory = KFUSE_HOST;
  if (build) {
    if (kfuse_moe_plan(c.ctx, &c.args[p.ids].m, p.plan.get(), nullptr) != KFUSE_SUCCESS)
      setup_failed("kfuse_moe_plan");
    c.args[p.ids].present = false;  // not an argument of the case
    c.args[p.ids].mutable_ = false;
  }
  // The descriptor: extents that disagree with the storage or the other arguments.
  auto plan = p.plan;
  auto& o = c.option_mutations;
  for (std::int64_t d : {std::int64_t(-1), std::int64_t(1)}) {
    o.push_back(
        {"plan.layout.tokens " + std::to_string(d), [plan, d] { plan->layout.tokens += d; }, true});
    // With no tokens top_k changes nothing a step without token-shaped arguments sees.
    o.push_back({"plan.layout.top_k " + std::to_string(d), [plan, d] { plan->layout.top_k += d; },
                 x.T > 0});
    o.push_back({"plan.layout.experts " + std::to_string(d),
                 [plan, d] { plan->layout.experts += d; }, true});
    o.push_back(
        {"plan.layout.rows " + std::to_string(d), [plan, d] { plan->layout.rows += d; }, true});
  }
  o.push_back(
      {"plan.layout.options.pad_to = 0", [plan] { plan->layout.options.pad_to = 0; }, true});
  o.push_back(
      {"plan.layout.options.capacity = -1", [plan] { plan->layout.options.capacity = -1; }, true});
  o.push_back({"plan.memory = device", [plan] { plan->memory = KFUSE_DEVICE; }, true});
  o.push_back({"plan.memory = 99", [plan] { set_enum(plan->memory, 99); }, true});
  if (layout.storage_size > 0)
    o.push_back({"plan.storage = NULL", [plan] { plan->storage = nullptr; }, true});
  if (b.settings().huge)
    for (std::int64_t h : huge_extents()) {
      o.push_back({"plan.layout.tokens = " + std::to_string(h),
                   [plan, h] { plan->layout.tokens = h; }, true});
      o.push_back({"plan.layout.experts = " + std::to_string(h),
                   [plan, h] { plan->layout.experts = h; }, true});
      o.push_back(
          {"plan.layout.rows = " + std::to_string(h), [plan, h] { plan->layout.rows = h; }, true});
    }
  // A changed extent of the plan is caught by the arguments it disagrees with;
  // mutated together, they could agree again.
  for (auto& m : o)
    if (m.what.rfind("plan.layout", 0) == 0) m.exclusive = true;
  c.names.push_back("plan");
  return p;
}

int element_dtype(Rng& r) {
  return r.chance(0.5) ? KFUSE_F32 : KFUSE_BF16;
}

void router(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const Routing x = routing(b);
  const int L = b.matrix("logits", Role::In, element_dtype(r), x.T, x.E);
  c.args[L].free_cols = true;     // E: any E >= k
  c.args[L].dtype_choice = true;  // f32 or bf16
  const int I = b.matrix("ids", Role::Out, KFUSE_I32, x.T, x.k);
  const int G = b.matrix("gates", Role::Out, KFUSE_F32, x.T, x.k);
  auto o = std::make_shared<kfuse_router_options_t>(kfuse_router_options_default());
  set_enum(o->mode, static_cast<int>(r.below(2)));
  o->renormalize = r.chance(0.5);
  b.enum_option("mode", &o->mode, 2);
  c.takes_options();
  c.names.insert(c.names.end(), {"logits", "ids", "gates", "mode", "k"});
  c.call = [&c, L, I, G, o] {
    return kfuse_moe_router_topk(c.ctx, c.M(L), c.M(I), c.M(G), c.opt(*o));
  };
}

void plan_layout(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  c.uses_ctx = false;
  const Routing x = routing(b);
  auto a = std::make_shared<std::array<std::int64_t, 3>>();
  (*a)[0] = x.T;
  (*a)[1] = x.k;
  (*a)[2] = x.E;
  auto o = std::make_shared<kfuse_moe_plan_options_t>(x.options);
  auto out = std::make_shared<kfuse_moe_plan_layout_t>();
  std::memset(out.get(), 0x5A, sizeof *out);
  const char* names[3] = {"tokens", "top_k", "experts"};
  for (int i = 0; i < 3; ++i) {
    for (std::int64_t v : {std::int64_t(-1), INT64_MIN})
      c.option_mutations.push_back(
          {std::string(names[i]) + " = " + std::to_string(v), [a, i, v] { (*a)[i] = v; }, true});
    if (b.settings().huge)
      for (std::int64_t v : huge_extents())
        c.option_mutations.push_back({std::string(names[i]) + " = " + std::to_string(v),
                                      [a, i, v] { (*a)[i] = v; }, i != 0});
  }
  // After a huge-experts mutation there is no larger top_k: -1 keeps the call invalid.
  c.option_mutations.push_back(
      {"top_k = experts + 1", [a] { (*a)[1] = (*a)[2] < INT64_MAX ? (*a)[2] + 1 : -1; }, true});
  b.int_option("pad_to", &o->pad_to, 1, 65536, b.settings().huge);
  b.int_option("capacity", &o->capacity, 0, INT32_MAX, b.settings().huge);
  const bool null_out = r.chance(0.1);
  if (null_out) c.reject("out NULL");
  c.struct_outputs.push_back({out.get(), sizeof *out});
  c.takes_options(true);
  c.names.insert(c.names.end(), {"tokens", "top_k", "experts", "out"});
  c.call = [&c, a, o, out, null_out] {
    return kfuse_moe_plan_layout((*a)[0], (*a)[1], (*a)[2], c.opt(*o),
                                 null_out ? nullptr : out.get());
  };
  (void)r;
}

void plan(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const Routing x = routing(b);
  const PlanArg p = make_plan(b, x, false);
  const int H = b.raw("host_counts", Role::Out, x.E * 4);
  c.args[H].optional = true;
  auto host_counts = std::make_shared<std::int32_t*>(
      r.chance(0.3) ? nullptr : static_cast<std::int32_t*>(c.args[H].raw));
  c.args[H].present = *host_counts != nullptr;
  // host_counts over ids or over the plan's storage (issue 13 defect 5)
  const PlanArg q = p;
  if (c.args[p.ids].m.data != nullptr && x.T > 0)  // else ids' buffer cannot hold E counts
    c.option_mutations.push_back({"host_counts = ids",
                                  [&c, host_counts, q, H] {
                                    *host_counts = static_cast<std::int32_t*>(c.args[q.ids].m.data);
                                    c.args[H].present = false;
                                  },
                                  true});
  c.option_mutations.push_back({"host_counts = plan storage",
                                [&c, host_counts, q, H] {
                                  *host_counts = static_cast<std::int32_t*>(c.args[q.storage].raw);
                                  c.args[H].present = false;
                                },
                                true});
  if (x.T > 0) {
    auto* ids = static_cast<std::int32_t*>(c.args[p.ids].m.data);
    const std::int64_t E = x.E;
    if (ids != nullptr)
      for (std::int32_t v : {-1, static_cast<std::int32_t>(E), INT32_MAX, INT32_MIN})
        c.option_mutations.push_back(
            {"ids[0][0] = " + std::to_string(v), [ids, v] { ids[0] = v; }, true});
  }
  c.names.push_back("ids");
  c.names.push_back("host_counts");
  const auto plan = p.plan;
  c.call = [&c, p, plan, host_counts] {
    return kfuse_moe_plan(c.ctx, c.M(p.ids), plan.get(), *host_counts);
  };
}

// The shapes of the steps after the plan: T tokens, rows permuted rows, widths.
struct Step {
  Routing x;
  PlanArg p;
  std::int64_t rows;
  int dtype;
};

Step step(Builder& b) {
  Step s;
  s.x = routing(b);
  s.p = make_plan(b, s.x, true);
  s.rows = s.p.plan->layout.rows;
  s.dtype = element_dtype(b.rng());
  return s;
}

void scatter(Builder& b) {
  Case& c = b.c();
  const Step s = step(b);
  const std::int64_t H = b.rng().range(1, 20);
  const int X = b.matrix("X", Role::In, s.dtype, s.x.T, H);
  const int Xp = b.matrix("Xp", Role::Out, s.dtype, s.rows, H);
  c.names.insert(c.names.end(), {"X", "Xp"});
  const auto plan = s.p.plan;
  c.call = [&c, plan, X, Xp] { return kfuse_moe_scatter(c.ctx, plan.get(), c.M(X), c.M(Xp)); };
}

void scatter_backward(Builder& b) {
  Case& c = b.c();
  const Step s = step(b);
  const std::int64_t H = b.rng().range(1, 20);
  const int dXp = b.matrix("dXp", Role::In, s.dtype, s.rows, H);
  const int dX = b.matrix("dX", Role::Out, s.dtype, s.x.T, H);
  c.names.insert(c.names.end(), {"dXp", "dX"});
  const auto plan = s.p.plan;
  c.call = [&c, plan, dXp, dX] {
    return kfuse_moe_scatter_backward(c.ctx, plan.get(), c.M(dXp), c.M(dX));
  };
}

void gather(Builder& b) {
  Case& c = b.c();
  const Step s = step(b);
  const std::int64_t H = b.rng().range(1, 20);
  const int Yp = b.matrix("Yp", Role::In, s.dtype, s.rows, H);
  const int G = b.matrix("gates", Role::In, KFUSE_F32, s.x.T, s.x.k);
  const int Y = b.matrix("Y", Role::Out, s.dtype, s.x.T, H);
  c.names.insert(c.names.end(), {"Yp", "gates", "Y"});
  const auto plan = s.p.plan;
  c.call = [&c, plan, Yp, G, Y] {
    return kfuse_moe_gather(c.ctx, plan.get(), c.M(Yp), c.M(G), c.M(Y));
  };
}

void gather_backward(Builder& b) {
  Case& c = b.c();
  const Step s = step(b);
  const std::int64_t H = b.rng().range(1, 20);
  const int Yp = b.matrix("Yp", Role::In, s.dtype, s.rows, H);
  const int G = b.matrix("gates", Role::In, KFUSE_F32, s.x.T, s.x.k);
  const int dY = b.matrix("dY", Role::In, s.dtype, s.x.T, H);
  const int dYp = b.matrix("dYp", Role::Out, s.dtype, s.rows, H);
  const int dG = b.matrix("dgates", Role::Out, KFUSE_F32, s.x.T, s.x.k);
  c.names.insert(c.names.end(), {"Yp", "gates", "dY", "dYp", "dgates"});
  const auto plan = s.p.plan;
  c.call = [&c, plan, Yp, G, dY, dYp, dG] {
    return kfuse_moe_gather_backward(c.ctx, plan.get(), c.M(Yp), c.M(G), c.M(dY), c.M(dYp),
                                     c.M(dG));
  };
}

// W [E*K x N], or [E*N x K] transposed.
int weights(Builder& b, const char* name, Role role, int dtype, std::int64_t E, std::int64_t K,
            std::int64_t N, bool transpose) {
  return transpose ? b.matrix(name, role, dtype, E * N, K, Fill::Random, true)
                   : b.matrix(name, role, dtype, E * K, N, Fill::Random, true);
}

template <bool Gather>
void grouped_gemm(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const Step s = step(b);
  const std::int64_t K = r.range(1, 24), N = r.range(1, 24);
  auto transpose = std::make_shared<int>(r.chance(0.5));
  const int X = Gather ? b.matrix("X", Role::In, s.dtype, s.x.T, K, Fill::Random, true)
                       : b.matrix("Xp", Role::In, s.dtype, s.rows, K, Fill::Random, true);
  const int W = weights(b, "W", Role::In, s.dtype, s.x.E, K, N, *transpose);
  const int Yp = b.matrix("Yp", Role::Out, s.dtype, s.rows, N, Fill::Random, true);
  c.option_mutations.push_back(
      {"transpose_w flipped", [transpose] { *transpose = !*transpose; }, K != N});
  c.names.insert(c.names.end(), {Gather ? "X" : "Xp", "W", "Yp", "transpose_w"});
  const auto plan = s.p.plan;
  c.call = [&c, plan, X, W, Yp, transpose] {
    return Gather ? kfuse_moe_gather_gemm(c.ctx, plan.get(), c.M(X), c.M(W), c.M(Yp), *transpose)
                  : kfuse_moe_grouped_gemm(c.ctx, plan.get(), c.M(X), c.M(W), c.M(Yp), *transpose);
  };
}

void gemm_combine(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const Step s = step(b);
  const std::int64_t F = r.range(1, 24), H = r.range(1, 24);
  auto transpose = std::make_shared<int>(r.chance(0.5));
  const int Hp = b.matrix("Hp", Role::In, s.dtype, s.rows, F, Fill::Random, true);
  const int W = weights(b, "W", Role::In, s.dtype, s.x.E, F, H, *transpose);
  const int G = b.matrix("gates", Role::In, KFUSE_F32, s.x.T, s.x.k);
  const int Y = b.matrix("Y", Role::Out, s.dtype, s.x.T, H, Fill::Random, true);
  c.names.insert(c.names.end(), {"Hp", "W", "gates", "Y", "transpose_w"});
  const auto plan = s.p.plan;
  c.call = [&c, plan, Hp, W, G, Y, transpose] {
    return kfuse_moe_gemm_combine(c.ctx, plan.get(), c.M(Hp), c.M(W), c.M(G), c.M(Y), *transpose);
  };
}

void wgrad(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const Step s = step(b);
  const std::int64_t K = r.range(1, 24), N = r.range(1, 24);
  const int Xp = b.matrix("Xp", Role::In, s.dtype, s.rows, K, Fill::Random, true);
  const int dYp = b.matrix("dYp", Role::In, s.dtype, s.rows, N, Fill::Random, true);
  const int dW = b.matrix("dW", Role::Out, s.dtype, s.x.E * K, N, Fill::Random, true);
  c.names.insert(c.names.end(), {"Xp", "dYp", "dW"});
  const auto plan = s.p.plan;
  c.call = [&c, plan, Xp, dYp, dW] {
    return kfuse_moe_grouped_gemm_wgrad(c.ctx, plan.get(), c.M(Xp), c.M(dYp), c.M(dW));
  };
}

template <bool Backward>
void mlp(Builder& b) {
  Case& c = b.c();
  Rng& r = b.rng();
  const Step s = step(b);
  const std::int64_t H = r.range(1, 16), F = r.range(1, 16), E = s.x.E, T = s.x.T;
  const int dt = s.dtype;
  const int X = b.matrix("X", Role::In, dt, T, H, Fill::Random, true);
  const int G = b.matrix("gates", Role::In, KFUSE_F32, T, s.x.k);
  const int W1 = b.matrix("W1", Role::In, dt, E * H, F, Fill::Random, true);
  const int W3 = b.matrix("W3", Role::In, dt, E * H, F, Fill::Random, true);
  const int W2 = b.matrix("W2", Role::In, dt, E * F, H, Fill::Random, true);
  const bool saved = r.chance(0.5);
  // Forward: h1, h3 are outputs it may keep; backward: the forward's, read.
  const Role hr = Backward ? Role::In : Role::Out;
  const int h1 = b.matrix("h1", hr, dt, s.rows, F, Fill::Random, true);
  const int h3 = b.matrix("h3", hr, dt, s.rows, F, Fill::Random, true);
  c.args[h1].present = c.args[h3].present = saved;
  // Both or neither: one alone must be rejected, so no NULL mutation on them.
  c.args[h1].nullable = c.args[h3].nullable = false;
  c.names.insert(c.names.end(), {"X", "gates", "W1", "W3", "W2", "h1", "h3", "saved", "weights"});
  const auto plan = s.p.plan;
  if (!Backward) {
    const int Y = b.matrix("Y", Role::Out, dt, T, H, Fill::Random, true);
    c.names.push_back("Y");
    c.call = [&c, plan, X, G, W1, W3, W2, Y, h1, h3] {
      return kfuse_moe_mlp_forward(c.ctx, plan.get(), c.M(X), c.M(G), c.M(W1), c.M(W3), c.M(W2),
                                   c.M(Y), c.M(h1), c.M(h3));
    };
    return;
  }
  if (saved) {  // h1, h3 as the forward left them
    const int Yf = b.matrix("Yf", Role::Out, dt, T, H, Fill::Random, true);
    c.args[h1].role = c.args[h3].role = Role::Out;
    if (kfuse_moe_mlp_forward(c.ctx, plan.get(), c.M(X), c.M(G), c.M(W1), c.M(W3), c.M(W2), c.M(Yf),
                              c.M(h1), c.M(h3)) != KFUSE_SUCCESS)
      setup_failed("kfuse_moe_mlp_forward");
    c.args[h1].role = c.args[h3].role = Role::In;
    c.args[Yf].mutable_ = false;  // not an argument of the case
    c.args[Yf].present = false;
    c.args[Yf].role = Role::In;
  }
  const int dY = b.matrix("dY", Role::In, dt, T, H, Fill::Random, true);
  const int dX = b.matrix("dX", Role::Out, dt, T, H, Fill::Random, true);
  const int dG = b.matrix("dgates", Role::Out, KFUSE_F32, T, s.x.k);
  const int dW1 = b.matrix("dW1", Role::Out, dt, E * H, F, Fill::Random, true);
  const int dW3 = b.matrix("dW3", Role::Out, dt, E * H, F, Fill::Random, true);
  const int dW2 = b.matrix("dW2", Role::Out, dt, E * F, H, Fill::Random, true);
  c.names.insert(c.names.end(), {"dY", "dX", "dgates", "dW1", "dW3", "dW2", "grads"});
  c.call = [&c, plan, X, G, W1, W3, W2, dY, h1, h3, dX, dG, dW1, dW3, dW2] {
    return kfuse_moe_mlp_backward(c.ctx, plan.get(), c.M(X), c.M(G), c.M(W1), c.M(W3), c.M(W2),
                                  c.M(dY), c.M(h1), c.M(h3), c.M(dX), c.M(dG), c.M(dW1), c.M(dW3),
                                  c.M(dW2));
  };
}

}  // namespace

std::vector<EntryPoint> moe_entry_points() {
  return {{"kfuse_moe_router_topk", router},
          {"kfuse_moe_plan_layout", plan_layout},
          {"kfuse_moe_plan", plan},
          {"kfuse_moe_scatter", scatter},
          {"kfuse_moe_scatter_backward", scatter_backward},
          {"kfuse_moe_gather", gather},
          {"kfuse_moe_gather_backward", gather_backward},
          {"kfuse_moe_grouped_gemm", grouped_gemm<false>},
          {"kfuse_moe_gather_gemm", grouped_gemm<true>},
          {"kfuse_moe_gemm_combine", gemm_combine},
          {"kfuse_moe_grouped_gemm_wgrad", wgrad},
          {"kfuse_moe_mlp_forward", mlp<false>},
          {"kfuse_moe_mlp_backward", mlp<true>}};
}

}  // namespace fuzz
