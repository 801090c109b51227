// The context's draw cache on the CPU path (Context::set_draw_cache_budget): a
// result computed from cached random matrices is bitwise the one a context without
// the cache gives, for every op that draws them (rp_fuse exact and TF32, its
// backward, rff_fuse, cross_modal_rp); calls that differ in anything the draw depends on
// (seed, input slot, distribution, width, l) never share an entry; the budget
// bounds what is held.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kfuse/fuse.hpp"
#include "src/fuse/cpu.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

using Call = std::function<void(Context&, MatrixView<float>)>;

// out [n x cols] of `call` on ctx.
std::vector<float> run(Context& ctx, const Call& call, std::int64_t n, std::int64_t cols) {
  std::vector<float> out = nan_filled<float>(static_cast<std::size_t>(n * cols));
  call(ctx, MatrixView<float>(out.data(), n, cols, cols, Memory::Host));
  return out;
}

// The same call on a context without a draw cache.
std::vector<float> uncached(const Call& call, std::int64_t n, std::int64_t cols) {
  Context fresh = Context::cpu();
  fresh.set_draw_cache_budget(0);
  return run(fresh, call, n, cols);
}

MatrixView<const float> view(const std::vector<float>& v, std::int64_t n, std::int64_t d) {
  return MatrixView<const float>(v.data(), n, d, d, Memory::Host);
}

Call rp_call(const std::vector<const std::vector<float>*>& inputs, std::int64_t n,
             const std::vector<std::int64_t>& dims, const RpFuseOptions& o) {
  return [=](Context& ctx, MatrixView<float> out) {
    std::vector<MatrixView<const float>> views;
    for (std::size_t j = 0; j < inputs.size(); ++j)
      views.push_back(view(*inputs[j], n, dims[j]));
    rp_fuse(ctx, views, out, o);
  };
}

// (n: enough rows for the TF32 calls to take the BLAS route.)
TEST(FuseDrawCache, CachedResultsEqualAContextWithoutTheCacheBitwise) {
  const std::int64_t n = cpu::kProjectionGemmMinRows + 29, l = 70, d0 = 45, d1 = 23;
  const std::vector<float> a = uniform<float>(n * d0, 1), b = uniform<float>(n * d1, 2);
  Context ctx = Context::cpu();
  ASSERT_EQ(ctx.draw_cache_budget(), Context::kDefaultDrawCacheBytes);
  for (Precision precision : {Precision::Exact, Precision::TF32}) {
    SCOPED_TRACE(precision == Precision::Exact ? "exact" : "tf32");
    RpFuseOptions o;
    o.seed = 11;
    o.sides = {FuseSide{SideKernel::Cosine, 1.0, 0}, FuseSide{SideKernel::Rbf, 0.7, 33}};
    o.precision = precision;
    const Call call = rp_call({&a, &b}, n, {d0, d1}, o);
    const std::vector<float> first = run(ctx, call, n, l);
    const std::size_t held = ctx.draw_cache_bytes();
    EXPECT_GT(held, 0u);
    const std::vector<float> second = run(ctx, call, n, l);  // from the cache
    EXPECT_EQ(ctx.draw_cache_bytes(), held) << "the second call drew again";
    const std::vector<float> reference = uncached(call, n, l);
    EXPECT_TRUE(bitwise_equal(first, reference));
    EXPECT_TRUE(bitwise_equal(second, reference));
  }

  RffOptions r;
  r.sigmas = {0.5, 2.0};
  r.seed = 3;
  const Call rff = [&](Context& c, MatrixView<float> out) {
    rff_fuse(c, {view(a, n, d0), view(b, n, d1)}, out, r);
  };
  run(ctx, rff, n, 2 * 40);
  EXPECT_TRUE(bitwise_equal(run(ctx, rff, n, 2 * 40), uncached(rff, n, 2 * 40)));

  CrossModalOptions m;
  m.image_dim = d1;
  m.text_dim = 7;
  m.seed = 5;
  const Call cross = [&](Context& c, MatrixView<float> out) {
    cross_modal_rp(c, Modality::Image, view(a, n, d0), view(b, n, d1), out, m);
  };
  run(ctx, cross, n, l);
  EXPECT_TRUE(bitwise_equal(run(ctx, cross, n, l), uncached(cross, n, l)));
}

// rp_fuse_backward draws U_j (and an Rbf side's frequencies) for its products with
// U_j^T through the cache too: the gradients from cached matrices are bitwise those of
// a context without the cache, and a repeated call draws nothing new.
TEST(FuseDrawCache, BackwardFromTheCacheEqualsAContextWithoutIt) {
  const std::int64_t n = 11, l = 37, d0 = 19, d1 = 8;
  const std::vector<float> a = uniform<float>(n * d0, 8), b = uniform<float>(n * d1, 9);
  const std::vector<float> dz = uniform<float>(n * l, 10);
  for (Precision precision : {Precision::Exact, Precision::TF32}) {
    SCOPED_TRACE(precision == Precision::Exact ? "exact" : "tf32");
    RpFuseOptions o;
    o.seed = 21;
    o.sides = {FuseSide{SideKernel::Rbf, 0.9, 12}, FuseSide{SideKernel::Cosine, 1.0, 0}};
    o.precision = precision;
    auto backward = [&](Context& ctx) {
      std::vector<float> ga = nan_filled<float>(n * d0), gb = nan_filled<float>(n * d1);
      rp_fuse_backward(ctx, {view(a, n, d0), view(b, n, d1)},
                       MatrixView<const float>(dz.data(), n, l, l, Memory::Host),
                       {MatrixView<float>(ga.data(), n, d0, d0, Memory::Host),
                        MatrixView<float>(gb.data(), n, d1, d1, Memory::Host)},
                       o);
      ga.insert(ga.end(), gb.begin(), gb.end());
      return ga;
    };
    // What the forward alone keeps (its factors are the backward's first step).
    Context forward_only = Context::cpu();
    std::vector<float> z(static_cast<std::size_t>(n * l));
    rp_fuse(forward_only, {view(a, n, d0), view(b, n, d1)},
            MatrixView<float>(z.data(), n, l, l, Memory::Host), o);
    Context ctx = Context::cpu();
    const std::vector<float> first = backward(ctx);
    const std::size_t held = ctx.draw_cache_bytes();
    // U_j and the frequencies for the products with their transposes, row-major.
    EXPECT_GT(held, forward_only.draw_cache_bytes()) << "the backward's draws were not kept";
    const std::vector<float> second = backward(ctx);
    EXPECT_EQ(ctx.draw_cache_bytes(), held) << "the second call drew again";
    Context fresh = Context::cpu();
    fresh.set_draw_cache_budget(0);
    const std::vector<float> reference = backward(fresh);
    EXPECT_TRUE(bitwise_equal(first, reference));
    EXPECT_TRUE(bitwise_equal(second, reference));
  }
}

// One context runs calls that differ in one thing the draw depends on each, in an
// order where a key missing that thing would hand a later call an earlier call's
// matrix; every result must equal a context without the cache.
TEST(FuseDrawCache, CallsThatDrawDifferentMatricesNeverShareAnEntry) {
  // (n: enough rows for the TF32 calls to take the BLAS route.)
  const std::int64_t n = cpu::kProjectionGemmMinRows + 13, d = 24;
  const std::vector<float> a = uniform<float>(n * 40, 4), b = uniform<float>(n * 40, 5);
  Context ctx = Context::cpu();
  for (Precision precision : {Precision::Exact, Precision::TF32}) {
    SCOPED_TRACE(precision == Precision::Exact ? "exact" : "tf32");
    struct Variant {
      const char* what;
      std::uint64_t seed;
      RpDistribution distribution;
      std::int64_t width1, l;
      bool swap;  // the inputs swapped: U_0 and U_1 of equal widths trade places
    };
    const Variant variants[] = {
        {"base", 1, RpDistribution::Uniform, d, 64, false},
        {"seed", 2, RpDistribution::Uniform, d, 64, false},
        {"distribution", 1, RpDistribution::Gaussian, d, 64, false},
        {"distribution (Rademacher)", 1, RpDistribution::Rademacher, d, 64, false},
        {"l within one strip", 1, RpDistribution::Uniform, d, 61, false},
        {"l", 1, RpDistribution::Uniform, d, 70, false},
        {"width", 1, RpDistribution::Uniform, d - 1, 64, false},
        {"input slot", 1, RpDistribution::Uniform, d, 64, true},
    };
    for (const Variant& v : variants) {
      SCOPED_TRACE(v.what);
      RpFuseOptions o;
      o.seed = v.seed;
      o.distribution = v.distribution;
      o.precision = precision;
      // Input 1 of width width1 (a prefix of b's rows); swapped: b first, a second.
      const Call call =
          v.swap ? rp_call({&b, &a}, n, {40, 40}, o) : rp_call({&a, &b}, n, {40, v.width1}, o);
      EXPECT_TRUE(bitwise_equal(run(ctx, call, n, v.l), uncached(call, n, v.l)));
    }
  }
}

TEST(FuseDrawCache, TheBudgetBoundsWhatIsHeld) {
  const std::int64_t n = 8, d = 32, l = 48;
  const std::vector<float> a = uniform<float>(n * d, 6), b = uniform<float>(n * d, 7);
  // One exact call holds U_0 and U_1 packed: 2 x d x l floats (l a multiple of 16).
  const std::size_t per_call = 2 * d * l * sizeof(float);
  Context ctx = Context::cpu();
  ctx.set_draw_cache_budget(per_call);
  RpFuseOptions o;
  std::vector<Call> calls;
  for (std::uint64_t seed : {1, 2, 3}) {
    o.seed = seed;
    calls.push_back(rp_call({&a, &b}, n, {d, d}, o));
  }
  for (int round = 0; round < 2; ++round)
    for (const Call& call : calls) {
      EXPECT_TRUE(bitwise_equal(run(ctx, call, n, l), uncached(call, n, l)));
      EXPECT_EQ(ctx.draw_cache_bytes(), per_call);  // the last call's two matrices
    }
  ctx.set_draw_cache_budget(per_call - 1);  // one matrix fits
  EXPECT_EQ(ctx.draw_cache_bytes(), per_call / 2);
  ctx.clear_draw_cache();
  EXPECT_EQ(ctx.draw_cache_bytes(), 0u);
  ctx.set_draw_cache_budget(per_call / 2 - 1);  // no matrix fits: drawn per call
  EXPECT_TRUE(bitwise_equal(run(ctx, calls[0], n, l), uncached(calls[0], n, l)));
  EXPECT_EQ(ctx.draw_cache_bytes(), 0u);
  ctx.set_draw_cache_budget(0);
  EXPECT_EQ(ctx.draw_cache_budget(), 0u);
  run(ctx, calls[1], n, l);
  EXPECT_EQ(ctx.draw_cache_bytes(), 0u);
}

}  // namespace
}  // namespace kfuse::test
