/* The contrastive family's C API from a C99 program: CLIP and SigLIP losses and
 * gradients against brute-force loops, every entry point, and errors (status,
 * message naming the argument, outputs untouched). */
#include <kfuse/kfuse.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/c_check.h"
#include "support/c_enum_check.h"

enum { NA = 5, NB = 5, D = 3 };

static kfuse_matrix_t host_f32(float* data, int64_t rows, int64_t cols) {
  kfuse_matrix_t m = {data, rows, cols, cols, KFUSE_F32, KFUSE_HOST};
  return m;
}
static kfuse_vector_t host_vec(float* data, int64_t size) {
  kfuse_vector_t v = {data, size, KFUSE_F32, KFUSE_HOST};
  return v;
}

/* S = exp(t) A B^T + b, materialised. */
static void logits(const float* a, const float* b, double t, double bias, double* s) {
  int i, j, k;
  for (i = 0; i < NA; ++i)
    for (j = 0; j < NB; ++j) {
      double dot = 0.0;
      for (k = 0; k < D; ++k)
        dot += (double)a[i * D + k] * b[j * D + k];
      s[i * NB + j] = exp(t) * dot + bias;
    }
}

/* The symmetric CLIP loss with identity labels, and dL/dA. */
static double clip_reference(const float* a, const float* b, double t, double* dA) {
  double s[NA * NB], g[NA * NB], loss = 0.0;
  int i, j, k;
  logits(a, b, t, 0.0, s);
  for (i = 0; i < NA * NB; ++i)
    g[i] = 0.0;
  for (i = 0; i < NA; ++i) { /* rows */
    double m = -INFINITY, sum = 0.0, lse;
    for (j = 0; j < NB; ++j)
      m = fmax(m, s[i * NB + j]);
    for (j = 0; j < NB; ++j)
      sum += exp(s[i * NB + j] - m);
    lse = m + log(sum);
    loss += 0.5 / NA * (lse - s[i * NB + i]);
    for (j = 0; j < NB; ++j)
      g[i * NB + j] += 0.5 / NA * (exp(s[i * NB + j] - lse) - (i == j));
  }
  for (j = 0; j < NB; ++j) { /* columns */
    double m = -INFINITY, sum = 0.0, lse;
    for (i = 0; i < NA; ++i)
      m = fmax(m, s[i * NB + j]);
    for (i = 0; i < NA; ++i)
      sum += exp(s[i * NB + j] - m);
    lse = m + log(sum);
    loss += 0.5 / NB * (lse - s[j * NB + j]);
    for (i = 0; i < NA; ++i)
      g[i * NB + j] += 0.5 / NB * (exp(s[i * NB + j] - lse) - (i == j));
  }
  for (i = 0; i < NA; ++i)
    for (k = 0; k < D; ++k) {
      dA[i * D + k] = 0.0;
      for (j = 0; j < NB; ++j)
        dA[i * D + k] += exp(t) * g[i * NB + j] * b[j * D + k];
    }
  return loss;
}

/* SigLIP with labels (row i's positive column, -1: none). */
static double siglip_reference(const float* a, const float* b, const int64_t* labels, double t,
                               double bias) {
  double s[NA * NB], loss = 0.0;
  int i, j;
  logits(a, b, t, bias, s);
  for (i = 0; i < NA; ++i)
    for (j = 0; j < NB; ++j) {
      const double x = (labels[i] == j ? -1.0 : 1.0) * s[i * NB + j];
      loss += (fmax(x, 0.0) + log1p(exp(-fabs(x)))) / NA;
    }
  return loss;
}

int main(void) {
  kfuse_context_t ctx = NULL;
  float a[NA * D], b[NB * D], loss[1], rows[NA], cols[NB], lse_r[NA], lse_c[NB];
  float da[NA * D], db_[NB * D], dt[1], dbias[1], before[NA * D];
  double ref_da[NA * D], ref, err = 0.0;
  int64_t labels[NA] = {2, -1, 0, 4, 3};
  kfuse_matrix_t A, B, DA, DB, bad;
  kfuse_vector_t L = host_vec(loss, 1), R = host_vec(rows, NA), C = host_vec(cols, NB),
                 LR = host_vec(lse_r, NA), LC = host_vec(lse_c, NB), DT = host_vec(dt, 1),
                 DBIAS = host_vec(dbias, 1);
  kfuse_vector_t LAB = {labels, NA, KFUSE_I64, KFUSE_HOST};
  kfuse_clip_outputs_t out;
  kfuse_contrastive_grads_t grads;
  kfuse_clip_options_t co = kfuse_clip_options_default();
  kfuse_siglip_options_t so = kfuse_siglip_options_default();
  kfuse_loss_scalar_t one = kfuse_loss_scalar(1.0);
  size_t bytes = 0;
  int i;

  CHECK(kfuse_context_create_cpu(&ctx) == KFUSE_SUCCESS);
  for (i = 0; i < NA * D; ++i)
    a[i] = (float)(0.4 * sin(0.7 * i + 0.3));
  for (i = 0; i < NB * D; ++i)
    b[i] = (float)(0.5 * cos(1.3 * i));
  A = host_f32(a, NA, D);
  B = host_f32(b, NB, D);
  DA = host_f32(da, NA, D);
  DB = host_f32(db_, NB, D);

  /* CLIP, both directions, identity labels: forward, then backward. */
  out.loss = &L;
  out.row_losses = &R;
  out.col_losses = &C;
  out.lse_rows = &LR;
  out.lse_cols = &LC;
  co.logit_scale = kfuse_loss_scalar(log(4.0));
  CHECK(kfuse_clip_loss_forward(ctx, &A, &B, NULL, &out, &co) == KFUSE_SUCCESS);
  ref = clip_reference(a, b, log(4.0), ref_da);
  CHECK(fabs(loss[0] - ref) < 1e-5 * fabs(ref));
  grads.dA = &DA;
  grads.dB = &DB;
  grads.dt = &DT;
  grads.db = &DBIAS;
  CHECK(kfuse_clip_loss_backward(ctx, &A, &B, NULL, &LR, &LC, NULL, &grads, &co) == KFUSE_SUCCESS);
  for (i = 0; i < NA * D; ++i)
    err = fmax(err, fabs(da[i] - ref_da[i]));
  CHECK(err < 1e-6);
  CHECK(dbias[0] == 0.0f);
  CHECK(isfinite(dt[0]));
  /* The fused call gives the same gradient. */
  memcpy(before, da, sizeof da);
  CHECK(kfuse_clip_loss_forward_backward(ctx, &A, &B, NULL, &out, &one, &grads, &co) ==
        KFUSE_SUCCESS);
  CHECK(memcmp(before, da, sizeof da) == 0);
  CHECK(kfuse_clip_loss_workspace_bytes(ctx, NA, NB, D, KFUSE_PASS_FORWARD_BACKWARD, &co, &bytes) ==
        KFUSE_SUCCESS);
  CHECK(bytes > 0);

  /* SigLIP with a row without a positive: forward, backward, fused. */
  so.logit_scale = kfuse_loss_scalar(1.0);
  so.bias = kfuse_loss_scalar(-2.0);
  CHECK(kfuse_siglip_loss_forward(ctx, &A, &B, &LAB, &L, &R, &so) == KFUSE_SUCCESS);
  ref = siglip_reference(a, b, labels, 1.0, -2.0);
  CHECK(fabs(loss[0] - ref) < 1e-5 * fabs(ref));
  CHECK(kfuse_siglip_loss_backward(ctx, &A, &B, &LAB, &one, &grads, &so) == KFUSE_SUCCESS);
  memcpy(before, da, sizeof da);
  loss[0] = NAN;
  CHECK(kfuse_siglip_loss_forward_backward(ctx, &A, &B, &LAB, &L, NULL, NULL, &grads, &so) ==
        KFUSE_SUCCESS);
  CHECK(fabs(loss[0] - ref) < 1e-5 * fabs(ref));
  CHECK(memcmp(before, da, sizeof da) == 0);
  CHECK(kfuse_siglip_loss_workspace_bytes(ctx, NA, NB, D, KFUSE_PASS_BACKWARD, &so, &bytes) ==
        KFUSE_SUCCESS);

  /* Errors: status, message naming the argument, outputs untouched. */
  memcpy(before, da, sizeof da);
  co.label_smoothing = 1.5;
  CHECK(kfuse_clip_loss_backward(ctx, &A, &B, NULL, &LR, &LC, NULL, &grads, &co) ==
        KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "label_smoothing") != NULL);
  co.label_smoothing = 0.0;
  /* Scales where fp32 logits carry no information (contrastive.hpp, "Accepted ranges"). */
  co.logit_scale = kfuse_loss_scalar(20.0);
  CHECK(kfuse_clip_loss_forward(ctx, &A, &B, NULL, &out, &co) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "'logit_scale'") != NULL);
  co.logit_scale = kfuse_loss_scalar(log(4.0));
  so.bias = kfuse_loss_scalar(1e300);
  CHECK(kfuse_siglip_loss_backward(ctx, &A, &B, &LAB, &one, &grads, &so) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "'bias'") != NULL);
  so.bias = kfuse_loss_scalar(-2.0);
  bad = host_f32(b, NB, D - 1);
  CHECK(kfuse_clip_loss_backward(ctx, &A, &bad, NULL, &LR, &LC, NULL, &grads, &co) ==
        KFUSE_SHAPE_MISMATCH);
  CHECK(strstr(kfuse_last_error(), "'B'") != NULL);
  bad = A;
  bad.dtype = KFUSE_F64;
  CHECK(kfuse_clip_loss_forward(ctx, &bad, &B, NULL, &out, &co) == KFUSE_UNSUPPORTED);
  CHECK(strstr(kfuse_last_error(), "'A'") != NULL);
  bad = DA;
  bad.dtype = KFUSE_BF16; /* neither A's dtype nor f32 */
  grads.dA = &bad;
  CHECK(kfuse_siglip_loss_backward(ctx, &A, &B, &LAB, &one, &grads, &so) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "'dA'") != NULL);
  grads.dA = &DA;
  labels[1] = NB; /* out of range */
  CHECK(kfuse_siglip_loss_backward(ctx, &A, &B, &LAB, &one, &grads, &so) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "'labels'") != NULL);
  labels[1] = -1;
  CHECK(kfuse_clip_loss_forward(NULL, &A, &B, NULL, &out, &co) == KFUSE_INVALID_ARGUMENT);
  CHECK(kfuse_clip_loss_forward(ctx, &A, &B, NULL, NULL, &co) == KFUSE_INVALID_ARGUMENT);
  CHECK(kfuse_siglip_loss_forward(ctx, &A, &B, NULL, &L, NULL, NULL) == KFUSE_INVALID_ARGUMENT);
  CHECK(kfuse_siglip_loss_backward(ctx, &A, &B, NULL, &one, NULL, &so) == KFUSE_INVALID_ARGUMENT);
  CHECK(kfuse_clip_loss_workspace_bytes(ctx, 0, NB, D, KFUSE_PASS_FORWARD, &co, &bytes) ==
        KFUSE_SHAPE_MISMATCH);
  CHECK(kfuse_clip_loss_workspace_bytes(ctx, NA, NB, D, (kfuse_contrastive_pass_t)7, &co, &bytes) ==
        KFUSE_INVALID_ARGUMENT);
  CHECK(memcmp(before, da, sizeof da) == 0);

  /* Out-of-range enumeration values in every enumeration argument (direction,
   * precision, pass, dtypes, memory locations): rejected as invalid arguments naming
   * the argument, every output untouched. */
  {
    float snapshot[NA * D + NB * D + 2 + 1 + NA + NB + NA + NB];
    float* outputs[8] = {da, db_, dt, dbias, loss, rows, cols, lse_r};
    const size_t sizes[8] = {sizeof da,   sizeof db_,  sizeof dt,   sizeof dbias,
                             sizeof loss, sizeof rows, sizeof cols, sizeof lse_r};
    float scale[1] = {1.0f};
    size_t off = 0, k;
    int bi;
    for (k = 0; k < 8; ++k) {
      memcpy((char*)snapshot + off, outputs[k], sizes[k]);
      off += sizes[k];
    }
    grads.dA = &DA;
    grads.dB = &DB;
    grads.dt = &DT;
    grads.db = &DBIAS;
    bytes = 12345;
    for (bi = 0; bi < BAD_ENUM_COUNT; ++bi) {
      const int v = bad_enum_values[bi];
      kfuse_clip_options_t c2 = kfuse_clip_options_default();
      kfuse_siglip_options_t s2 = kfuse_siglip_options_default();
      kfuse_contrastive_grads_t g2 = grads;
      kfuse_loss_scalar_t gl = kfuse_loss_scalar(1.0);
      c2.direction = (kfuse_clip_direction_t)v;
      CHECK_REJECTS(kfuse_clip_loss_forward(ctx, &A, &B, NULL, &out, &c2), "direction");
      CHECK_REJECTS(kfuse_clip_loss_backward(ctx, &A, &B, NULL, &LR, &LC, NULL, &grads, &c2),
                    "direction");
      CHECK_REJECTS(kfuse_clip_loss_forward_backward(ctx, &A, &B, NULL, &out, NULL, &grads, &c2),
                    "direction");
      CHECK_REJECTS(
          kfuse_clip_loss_workspace_bytes(ctx, NA, NB, D, KFUSE_PASS_FORWARD, &c2, &bytes),
          "direction");
      c2.direction = KFUSE_CLIP_BOTH;
      c2.precision = (kfuse_precision_t)v;
      s2.precision = (kfuse_precision_t)v;
      CHECK_REJECTS(kfuse_clip_loss_forward(ctx, &A, &B, NULL, &out, &c2), "precision");
      CHECK_REJECTS(kfuse_siglip_loss_forward(ctx, &A, &B, NULL, &L, &R, &s2), "precision");
      CHECK_REJECTS(kfuse_siglip_loss_backward(ctx, &A, &B, NULL, NULL, &grads, &s2), "precision");
      CHECK_REJECTS(
          kfuse_siglip_loss_forward_backward(ctx, &A, &B, NULL, &L, &R, NULL, &grads, &s2),
          "precision");
      CHECK_REJECTS(
          kfuse_siglip_loss_workspace_bytes(ctx, NA, NB, D, KFUSE_PASS_FORWARD, &s2, &bytes),
          "precision");
      c2.precision = KFUSE_PRECISION_EXACT;
      s2.precision = KFUSE_PRECISION_EXACT;
      CHECK_REJECTS(
          kfuse_clip_loss_workspace_bytes(ctx, NA, NB, D, (kfuse_contrastive_pass_t)v, &c2, &bytes),
          "pass");
      CHECK_REJECTS(kfuse_siglip_loss_workspace_bytes(ctx, NA, NB, D, (kfuse_contrastive_pass_t)v,
                                                      &s2, &bytes),
                    "pass");
      /* a scalar in memory: its dtype and its memory location */
      c2.logit_scale.in_memory = host_vec(scale, 1);
      c2.logit_scale.in_memory.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_clip_loss_forward(ctx, &A, &B, NULL, &out, &c2), "logit_scale");
      c2.logit_scale = kfuse_loss_scalar(0.0);
      s2.bias.in_memory = host_vec(scale, 1);
      s2.bias.in_memory.memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_siglip_loss_forward(ctx, &A, &B, NULL, &L, NULL, &s2), "bias");
      s2.bias = kfuse_loss_scalar(-10.0);
      gl.in_memory = host_vec(scale, 1);
      gl.in_memory.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_siglip_loss_backward(ctx, &A, &B, NULL, &gl, &grads, &s2), "grad_loss");
      /* the inputs' dtype, the gradients' dtype, a vector's dtype and memory */
      bad = A;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_clip_loss_forward(ctx, &bad, &B, NULL, &out, &c2), "A");
      bad = B;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_siglip_loss_forward(ctx, &A, &bad, NULL, &L, NULL, &s2), "B");
      bad = DA;
      bad.dtype = (kfuse_dtype_t)v;
      g2.dA = &bad;
      CHECK_REJECTS(kfuse_clip_loss_backward(ctx, &A, &B, NULL, &LR, &LC, NULL, &g2, &c2), "dA");
      g2.dA = NULL;
      bad = DB;
      bad.memory = (kfuse_memory_t)v;
      g2.dB = &bad;
      CHECK_REJECTS(kfuse_siglip_loss_backward(ctx, &A, &B, NULL, NULL, &g2, &s2), "dB");
      {
        kfuse_vector_t lab = LAB, vec = L;
        lab.dtype = (kfuse_dtype_t)v;
        CHECK_REJECTS(kfuse_siglip_loss_forward(ctx, &A, &B, &lab, &L, NULL, &s2), "labels");
        vec.memory = (kfuse_memory_t)v;
        CHECK_REJECTS(kfuse_siglip_loss_forward(ctx, &A, &B, NULL, &vec, NULL, &s2), "loss");
        vec = LR;
        vec.dtype = (kfuse_dtype_t)v;
        out.lse_rows = &vec;
        CHECK_REJECTS(kfuse_clip_loss_forward(ctx, &A, &B, NULL, &out, &c2), "lse_rows");
        out.lse_rows = &LR;
      }
    }
    CHECK(bytes == 12345);
    off = 0;
    for (k = 0; k < 8; ++k) {
      CHECK(memcmp((char*)snapshot + off, outputs[k], sizes[k]) == 0);
      off += sizes[k];
    }
  }

  kfuse_context_destroy(ctx);
  if (failures == 0) printf("test_c_api_contrastive: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
