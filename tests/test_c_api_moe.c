/* The mixture-of-experts C API from a C99 program: router, plan, scatter/gather,
 * the SwiGLU MLP forward against a brute-force loop, the backward, a bf16 grouped
 * GEMM, and errors (status, message, output untouched). */
#include <kfuse/kfuse.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/c_check.h"
#include "support/c_enum_check.h"

enum { T = 5, K = 2, E = 3, H = 4, F = 8 };

static kfuse_matrix_t host_mat(void* data, int64_t rows, int64_t cols, kfuse_dtype_t dtype) {
  kfuse_matrix_t m;
  m.data = data;
  m.rows = rows;
  m.cols = cols;
  m.ld = cols;
  m.dtype = dtype;
  m.memory = KFUSE_HOST;
  return m;
}

static double silu(double x) {
  return x / (1.0 + exp(-x));
}

int main(void) {
  kfuse_context_t ctx = NULL;
  float logits[T * E], gates[T * K], x[T * H], y[T * H], w1[E * H * F], w3[E * H * F],
      w2[E * F * H], dy[T * H], dx[T * H], dgates[T * K], dw1[E * H * F], dw3[E * H * F],
      dw2[E * F * H], before[T * H];
  int32_t ids[T * K], storage[256], counts[E];
  kfuse_matrix_t L, I, G, X, Y, W1, W3, W2, dY, dX, dG, dW1, dW3, dW2, bad;
  kfuse_router_options_t ro = kfuse_router_options_default();
  kfuse_moe_plan_options_t po = kfuse_moe_plan_options_default();
  kfuse_moe_plan_layout_t layout;
  kfuse_moe_plan_t plan;
  int i, t, j, e, f, c;
  double err = 0.0;

  CHECK(kfuse_context_create_cpu(&ctx) == KFUSE_SUCCESS);
  for (i = 0; i < T * E; ++i)
    logits[i] = (float)sin(1.7 * i);
  for (i = 0; i < T * H; ++i) {
    x[i] = (float)cos(0.9 * i);
    dy[i] = (float)sin(0.3 * i + 1.0);
  }
  for (i = 0; i < E * H * F; ++i) {
    w1[i] = (float)(0.5 * sin(0.37 * i));
    w3[i] = (float)(0.5 * cos(0.41 * i));
    w2[i] = (float)(0.5 * sin(0.53 * i + 2.0));
  }
  L = host_mat(logits, T, E, KFUSE_F32);
  I = host_mat(ids, T, K, KFUSE_I32);
  G = host_mat(gates, T, K, KFUSE_F32);
  X = host_mat(x, T, H, KFUSE_F32);
  Y = host_mat(y, T, H, KFUSE_F32);
  W1 = host_mat(w1, E * H, F, KFUSE_F32);
  W3 = host_mat(w3, E * H, F, KFUSE_F32);
  W2 = host_mat(w2, E * F, H, KFUSE_F32);
  dY = host_mat(dy, T, H, KFUSE_F32);
  dX = host_mat(dx, T, H, KFUSE_F32);
  dG = host_mat(dgates, T, K, KFUSE_F32);
  dW1 = host_mat(dw1, E * H, F, KFUSE_F32);
  dW3 = host_mat(dw3, E * H, F, KFUSE_F32);
  dW2 = host_mat(dw2, E * F, H, KFUSE_F32);

  /* Router: each row's two largest logits, in order, gates summing to 1 (renormalised). */
  ro.renormalize = 1;
  CHECK(kfuse_moe_router_topk(ctx, &L, &I, &G, &ro) == KFUSE_SUCCESS);
  for (t = 0; t < T; ++t) {
    int best = 0, second = -1;
    for (e = 1; e < E; ++e)
      if (logits[t * E + e] > logits[t * E + best]) best = e;
    for (e = 0; e < E; ++e)
      if (e != best && (second < 0 || logits[t * E + e] > logits[t * E + second])) second = e;
    CHECK(ids[t * K] == best && ids[t * K + 1] == second);
    CHECK(fabs(gates[t * K] + gates[t * K + 1] - 1.0) < 1e-6);
  }

  /* Plan. */
  CHECK(kfuse_moe_plan_layout(T, K, E, &po, &layout) == KFUSE_SUCCESS);
  CHECK(layout.rows == T * K && layout.storage_size == E + E + 1 + 2 * T * K);
  CHECK(layout.storage_size <= 256);
  plan.layout = layout;
  plan.storage = storage;
  plan.memory = KFUSE_HOST;
  CHECK(kfuse_moe_plan(ctx, &I, &plan, counts) == KFUSE_SUCCESS);
  CHECK(counts[0] + counts[1] + counts[2] == T * K);
  for (e = 0; e < E; ++e) {
    int n = 0;
    for (i = 0; i < T * K; ++i)
      n += ids[i] == e;
    CHECK(counts[e] == n);
  }

  /* Scatter then gather with the gates: y = sum_j g_j x = x (gates sum to 1). */
  {
    float xp[T * K * H];
    kfuse_matrix_t Xp = host_mat(xp, T * K, H, KFUSE_F32);
    CHECK(kfuse_moe_scatter(ctx, &plan, &X, &Xp) == KFUSE_SUCCESS);
    CHECK(kfuse_moe_gather(ctx, &plan, &Xp, &G, &Y) == KFUSE_SUCCESS);
    for (i = 0; i < T * H; ++i)
      CHECK(fabs(y[i] - x[i]) < 1e-6);
  }

  /* The SwiGLU MLP against a brute-force loop. */
  CHECK(kfuse_moe_mlp_forward(ctx, &plan, &X, &G, &W1, &W3, &W2, &Y, NULL, NULL) == KFUSE_SUCCESS);
  for (t = 0; t < T; ++t)
    for (c = 0; c < H; ++c) {
      double ref = 0.0;
      for (j = 0; j < K; ++j) {
        const int ex = ids[t * K + j];
        for (f = 0; f < F; ++f) {
          double h1 = 0.0, h3 = 0.0;
          for (i = 0; i < H; ++i) {
            h1 += x[t * H + i] * w1[(ex * H + i) * F + f];
            h3 += x[t * H + i] * w3[(ex * H + i) * F + f];
          }
          ref += gates[t * K + j] * silu(h1) * h3 * w2[(ex * F + f) * H + c];
        }
      }
      err = fmax(err, fabs(ref - y[t * H + c]));
    }
  CHECK(err < 1e-5);
  CHECK(kfuse_moe_mlp_backward(ctx, &plan, &X, &G, &W1, &W3, &W2, &dY, NULL, NULL, &dX, &dG, &dW1,
                               &dW3, &dW2) == KFUSE_SUCCESS);
  for (i = 0; i < T * K; ++i)
    CHECK(isfinite(dgates[i]));

  /* A bf16 grouped GEMM (bf16 storage: the upper 16 bits of a float). */
  {
    uint16_t a[T * K * 8], w[E * 8 * 8], out[T * K * 8];
    kfuse_matrix_t A = host_mat(a, T * K, 8, KFUSE_BF16), Wb = host_mat(w, E * 8, 8, KFUSE_BF16),
                   O = host_mat(out, T * K, 8, KFUSE_BF16);
    for (i = 0; i < T * K * 8; ++i)
      a[i] = 0x3f80; /* 1.0 */
    for (i = 0; i < E * 8 * 8; ++i)
      w[i] = 0x4000; /* 2.0 */
    CHECK(kfuse_moe_grouped_gemm(ctx, &plan, &A, &Wb, &O, 0) == KFUSE_SUCCESS);
    for (i = 0; i < T * K * 8; ++i)
      CHECK(out[i] == 0x4180); /* 8 * 1 * 2 = 16 */
  }

  /* Errors: status, message naming the argument, output untouched. */
  memcpy(before, y, sizeof y);
  CHECK(kfuse_moe_mlp_forward(ctx, NULL, &X, &G, &W1, &W3, &W2, &Y, NULL, NULL) ==
        KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "plan") != NULL);
  bad = G;
  bad.dtype = KFUSE_F64;
  CHECK(kfuse_moe_gather(ctx, &plan, &X, &bad, &Y) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "'gates'") != NULL);
  bad = W2;
  bad.rows -= 1;
  CHECK(kfuse_moe_mlp_forward(ctx, &plan, &X, &G, &W1, &W3, &bad, &Y, NULL, NULL) ==
        KFUSE_SHAPE_MISMATCH);
  CHECK(strstr(kfuse_last_error(), "w2") != NULL);
  bad = X;
  bad.dtype = KFUSE_F64;
  CHECK(kfuse_moe_scatter(ctx, &plan, &bad, &Y) == KFUSE_UNSUPPORTED);
  bad = I;
  bad.cols = E + 1;
  CHECK(kfuse_moe_router_topk(ctx, &L, &bad, &G, &ro) != KFUSE_SUCCESS); /* k > E */
  CHECK(kfuse_moe_plan_layout(T, E + 1, E, NULL, &layout) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "top_k") != NULL);
  /* host_counts overlapping ids or the plan's storage (issue 13 defect 5) */
  {
    int32_t ids_before[T * K], storage_before[256];
    memcpy(ids_before, ids, sizeof ids);
    memcpy(storage_before, storage, sizeof storage);
    CHECK(kfuse_moe_plan(ctx, &I, &plan, ids + 1) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "argument 'host_counts'") != NULL);
    CHECK(kfuse_moe_plan(ctx, &I, &plan, storage + E) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "argument 'host_counts'") != NULL);
    CHECK(memcmp(ids_before, ids, sizeof ids) == 0);
    CHECK(memcmp(storage_before, storage, sizeof storage) == 0);
  }
  /* A descriptor whose extents were changed after kfuse_moe_plan_layout: its arrays
   * would be carved past the storage's end (found by the fuzzer). */
  {
    float xp[T * K * H];
    int32_t storage_before[256];
    kfuse_moe_plan_t p2 = plan;
    kfuse_matrix_t Xp = host_mat(xp, T * K, H, KFUSE_F32);
    memcpy(storage_before, storage, sizeof storage);
    memcpy(before, y, sizeof y);
    p2.layout.experts += 1;
    CHECK(kfuse_moe_plan(ctx, &I, &p2, NULL) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "argument 'plan'") != NULL);
    CHECK(kfuse_moe_scatter_backward(ctx, &p2, &Xp, &Y) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "argument 'plan'") != NULL);
    p2 = plan;
    p2.layout.storage_size -= 1;
    CHECK(kfuse_moe_scatter(ctx, &p2, &X, &Xp) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "storage_size") != NULL);
    p2 = plan;
    p2.layout.tokens = (int64_t)1 << 62; /* the size overflows */
    CHECK(kfuse_moe_scatter(ctx, &p2, &X, &Xp) == KFUSE_INVALID_ARGUMENT);
    CHECK(memcmp(storage_before, storage, sizeof storage) == 0);
    CHECK(memcmp(before, y, sizeof y) == 0);
  }
  /* Saved h1/h3 descriptors with NULL data are not "absent" unless they are empty
   * 0 x 0 views (found by the fuzzer: rows = INT64_MIN, or a wrong F with no
   * tokens, was accepted). */
  {
    kfuse_matrix_t h1 = host_mat(NULL, -1, F, KFUSE_F32), h3 = host_mat(NULL, 0, 0, KFUSE_F32);
    memcpy(before, y, sizeof y);
    CHECK(kfuse_moe_mlp_forward(ctx, &plan, &X, &G, &W1, &W3, &W2, &Y, &h1, &h3) ==
          KFUSE_SHAPE_MISMATCH);
    CHECK(strstr(kfuse_last_error(), "h1") != NULL);
    h1 = host_mat(NULL, T * K, F, KFUSE_F32);
    h3 = host_mat(NULL, T * K, F, KFUSE_F32);
    CHECK(kfuse_moe_mlp_forward(ctx, &plan, &X, &G, &W1, &W3, &W2, &Y, &h1, &h3) ==
          KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "h1") != NULL);
    CHECK(memcmp(before, y, sizeof y) == 0);
    h1 = host_mat(NULL, 0, 0, KFUSE_F32); /* both 0 x 0: nothing kept */
    h3 = host_mat(NULL, 0, 0, KFUSE_F32);
    CHECK(kfuse_moe_mlp_forward(ctx, &plan, &X, &G, &W1, &W3, &W2, &Y, &h1, &h3) == KFUSE_SUCCESS);
  }
  {
    /* no tokens: h1, h3 are [0 x F]; F + 1 columns is wrong even with NULL data */
    kfuse_moe_plan_layout_t l0;
    kfuse_moe_plan_t p0;
    int32_t s0[16];
    kfuse_matrix_t I0 = host_mat(ids, 0, K, KFUSE_I32), X0 = host_mat(x, 0, H, KFUSE_F32),
                   G0 = host_mat(gates, 0, K, KFUSE_F32), Y0 = host_mat(y, 0, H, KFUSE_F32),
                   h1 = host_mat(NULL, 0, F + 1, KFUSE_F32), h3 = host_mat(NULL, 0, F, KFUSE_F32);
    CHECK(kfuse_moe_plan_layout(0, K, E, NULL, &l0) == KFUSE_SUCCESS && l0.storage_size <= 16);
    p0.layout = l0;
    p0.storage = s0;
    p0.memory = KFUSE_HOST;
    CHECK(kfuse_moe_plan(ctx, &I0, &p0, NULL) == KFUSE_SUCCESS);
    CHECK(kfuse_moe_mlp_forward(ctx, &p0, &X0, &G0, &W1, &W3, &W2, &Y0, &h1, &h3) ==
          KFUSE_SHAPE_MISMATCH);
    CHECK(strstr(kfuse_last_error(), "h1") != NULL);
    h1.cols = F;
    CHECK(kfuse_moe_mlp_forward(ctx, &p0, &X0, &G0, &W1, &W3, &W2, &Y0, &h1, &h3) == KFUSE_SUCCESS);
  }
  ids[3] = E; /* out of range */
  CHECK(kfuse_moe_plan(ctx, &I, &plan, NULL) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "'ids'") != NULL);
  CHECK(memcmp(before, y, sizeof y) == 0);

  /* Out-of-range enumeration values in every enumeration argument (router mode,
   * dtypes, memory locations of matrices and of the plan): rejected as invalid
   * arguments naming the argument, every output untouched. */
  {
    float g_before[T * K], y_before[T * H], dg_before[T * K];
    int32_t ids_before[T * K], storage_before[256], counts_before[E];
    int bi;
    ids[3] = 0;
    memcpy(ids_before, ids, sizeof ids);
    memcpy(g_before, gates, sizeof gates);
    memcpy(y_before, y, sizeof y);
    memcpy(dg_before, dgates, sizeof dgates);
    memcpy(storage_before, storage, sizeof storage);
    memcpy(counts_before, counts, sizeof counts);
    for (bi = 0; bi < BAD_ENUM_COUNT; ++bi) {
      const int v = bad_enum_values[bi];
      kfuse_router_options_t r2 = kfuse_router_options_default();
      kfuse_moe_plan_t p2 = plan;
      r2.mode = (kfuse_router_mode_t)v;
      CHECK_REJECTS(kfuse_moe_router_topk(ctx, &L, &I, &G, &r2), "mode");
      r2.mode = KFUSE_ROUTER_SOFTMAX_TOPK;
      bad = L;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_moe_router_topk(ctx, &bad, &I, &G, &r2), "logits");
      bad = I;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_moe_router_topk(ctx, &L, &bad, &G, &r2), "ids");
      CHECK_REJECTS(kfuse_moe_plan(ctx, &bad, &plan, counts), "ids");
      bad = G;
      bad.memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_moe_router_topk(ctx, &L, &I, &bad, &r2), "gates");
      CHECK_REJECTS(kfuse_moe_gather(ctx, &plan, &X, &bad, &Y), "gates");
      p2.memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_moe_plan(ctx, &I, &p2, counts), "plan");
      CHECK_REJECTS(kfuse_moe_mlp_forward(ctx, &p2, &X, &G, &W1, &W3, &W2, &Y, NULL, NULL), "plan");
      bad = X;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_moe_scatter(ctx, &plan, &bad, &Y), "X");
      CHECK_REJECTS(kfuse_moe_mlp_forward(ctx, &plan, &bad, &G, &W1, &W3, &W2, &Y, NULL, NULL),
                    "X");
      CHECK_REJECTS(kfuse_moe_gather_gemm(ctx, &plan, &bad, &W1, &Y, 0), "X");
      CHECK_REJECTS(kfuse_moe_grouped_gemm(ctx, &plan, &bad, &W1, &Y, 0), "Xp");
      CHECK_REJECTS(kfuse_moe_grouped_gemm_wgrad(ctx, &plan, &bad, &Y, &dW1), "Xp");
      CHECK_REJECTS(kfuse_moe_scatter_backward(ctx, &plan, &bad, &Y), "dXp");
      CHECK_REJECTS(kfuse_moe_gather_backward(ctx, &plan, &bad, &G, &dY, &Y, &dG), "Yp");
      CHECK_REJECTS(kfuse_moe_gemm_combine(ctx, &plan, &bad, &W2, &G, &Y, 0), "Hp");
      bad = W2;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_moe_mlp_forward(ctx, &plan, &X, &G, &W1, &W3, &bad, &Y, NULL, NULL),
                    "W2");
      bad = Y;
      bad.memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_moe_mlp_forward(ctx, &plan, &X, &G, &W1, &W3, &W2, &bad, NULL, NULL),
                    "Y");
      bad = dG;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_moe_mlp_backward(ctx, &plan, &X, &G, &W1, &W3, &W2, &dY, NULL, NULL, &dX,
                                           &bad, &dW1, &dW3, &dW2),
                    "dgates");
    }
    CHECK(memcmp(ids_before, ids, sizeof ids) == 0);
    CHECK(memcmp(g_before, gates, sizeof gates) == 0);
    CHECK(memcmp(y_before, y, sizeof y) == 0);
    CHECK(memcmp(dg_before, dgates, sizeof dgates) == 0);
    CHECK(memcmp(storage_before, storage, sizeof storage) == 0);
    CHECK(memcmp(counts_before, counts, sizeof counts) == 0);
  }

  kfuse_context_destroy(ctx);
  if (failures == 0) printf("test_c_api_moe: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
