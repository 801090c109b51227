/* The C API from a C99 program: contexts, a Gaussian matvec against a brute-force
 * loop, and errors (status, message, output untouched). */
#include <kfuse/kfuse.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/c_check.h"
#include "support/c_enum_check.h"

static kfuse_matrix_t host_f32(float* data, int64_t rows, int64_t cols) {
  kfuse_matrix_t m = {data, rows, cols, cols, KFUSE_F32, KFUSE_HOST};
  return m;
}

int main(void) {
  kfuse_context_t ctx = NULL, best = NULL;
  kfuse_backend_t backend = KFUSE_BACKEND_CUDA;
  enum { M = 5, N = 7, D = 3, R = 2 };
  float x[M * D], y[N * D], v[N * R], out[M * R], before[M * R];
  kfuse_matrix_t X, Y, V, O, bad;
  kfuse_gauss_matvec_options_t opt = kfuse_gauss_matvec_options_default();
  int i, j, k, r;
  double err = 0.0;

  CHECK(kfuse_context_create_cpu(&ctx) == KFUSE_SUCCESS);
  CHECK(kfuse_context_backend(ctx, &backend) == KFUSE_SUCCESS && backend == KFUSE_BACKEND_CPU);
  CHECK(kfuse_context_create_best(&best) == KFUSE_SUCCESS);
  CHECK(kfuse_context_backend(best, &backend) == KFUSE_SUCCESS);
  CHECK((backend == KFUSE_BACKEND_CUDA) == (kfuse_cuda_device_count() > 0));
  kfuse_context_destroy(best);
  if (kfuse_cuda_device_count() == 0) {
    kfuse_context_t none = NULL;
    kfuse_status_t st = kfuse_context_create_cuda(0, &none);
    CHECK(st == KFUSE_NO_DEVICE || st == KFUSE_UNSUPPORTED);
    CHECK(none == NULL);
    CHECK(strlen(kfuse_last_error()) > 0);
  }

  for (i = 0; i < M * D; ++i)
    x[i] = (float)sin(0.7 * i);
  for (i = 0; i < N * D; ++i)
    y[i] = (float)cos(1.3 * i);
  for (i = 0; i < N * R; ++i)
    v[i] = (float)(0.1 * i - 0.5);
  X = host_f32(x, M, D);
  Y = host_f32(y, N, D);
  V = host_f32(v, N, R);
  O = host_f32(out, M, R);
  opt.sigma = 0.8;
  CHECK(kfuse_gauss_matvec(ctx, &X, &Y, &V, &O, &opt) == KFUSE_SUCCESS);
  for (i = 0; i < M; ++i)
    for (r = 0; r < R; ++r) {
      double ref = 0.0;
      for (j = 0; j < N; ++j) {
        double d2 = 0.0;
        for (k = 0; k < D; ++k)
          d2 += (x[i * D + k] - y[j * D + k]) * (x[i * D + k] - y[j * D + k]);
        ref += exp(-d2 / (2 * 0.8 * 0.8)) * v[j * R + r];
      }
      err = fmax(err, fabs(ref - out[i * R + r]));
    }
  CHECK(err < 1e-5);

  /* Errors: status code, a message naming the argument, output untouched. */
  memcpy(before, out, sizeof out);
  opt.sigma = -1.0;
  CHECK(kfuse_gauss_matvec(ctx, &X, &Y, &V, &O, &opt) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "sigma") != NULL);
  opt.sigma = 0.8;
  bad = host_f32(y, N, D + 1);
  CHECK(kfuse_gauss_matvec(ctx, &X, &bad, &V, &O, &opt) == KFUSE_SHAPE_MISMATCH);
  CHECK(strstr(kfuse_last_error(), "'Y'") != NULL);
  bad = V;
  bad.dtype = KFUSE_F64;
  CHECK(kfuse_gauss_matvec(ctx, &X, &Y, &bad, &O, &opt) == KFUSE_INVALID_ARGUMENT);
  CHECK(kfuse_gauss_matvec(ctx, &X, &Y, NULL, &O, &opt) == KFUSE_INVALID_ARGUMENT);
  CHECK(strstr(kfuse_last_error(), "'V'") != NULL);
  bad = X;
  bad.memory = KFUSE_DEVICE;
  CHECK(kfuse_gauss_matvec(ctx, &bad, &Y, &V, &O, &opt) == KFUSE_MEMORY_LOCATION);
  CHECK(kfuse_gauss_matvec(NULL, &X, &Y, &V, &O, &opt) == KFUSE_INVALID_ARGUMENT);
  CHECK(kfuse_gauss_matvec(ctx, &X, &Y, &V, &O, NULL) == KFUSE_INVALID_ARGUMENT);
  CHECK(memcmp(before, out, sizeof out) == 0);
  CHECK(strcmp(kfuse_status_name(KFUSE_SHAPE_MISMATCH), "ShapeMismatch") == 0);

  /* The other entry points, once each. */
  {
    float lp[M], g[M * D], ms[M * D], mmd[1], u[M * R];
    kfuse_vector_t LP = {lp, M, KFUSE_F32, KFUSE_HOST}, MMD = {mmd, 1, KFUSE_F32, KFUSE_HOST};
    kfuse_matrix_t G = host_f32(g, M, D), MS = host_f32(ms, M, D), U = host_f32(u, M, R);
    kfuse_kde_options_t ko = kfuse_kde_options_default();
    kfuse_gauss_grad_options_t go = kfuse_gauss_grad_options_default();
    kfuse_mmd2_options_t mo = kfuse_mmd2_options_default();
    for (i = 0; i < M * R; ++i)
      u[i] = 1.0f;
    CHECK(kfuse_kde(ctx, &X, &Y, NULL, &LP, &ko) == KFUSE_SUCCESS);
    for (i = 0; i < M; ++i)
      CHECK(isfinite(lp[i]) && lp[i] < 0.0f);
    CHECK(kfuse_gauss_matvec_grad_x(ctx, &X, &Y, &V, &U, &G, &go) == KFUSE_SUCCESS);
    CHECK(kfuse_mean_shift_step(ctx, &X, &Y, NULL, &MS, &go) == KFUSE_SUCCESS);
    mo.unbiased = 1;
    CHECK(kfuse_mmd2(ctx, &X, &Y, &MMD, &mo) == KFUSE_SUCCESS);
    CHECK(isfinite(mmd[0]));
    mo.sigma = NAN;
    CHECK(kfuse_mmd2(ctx, &X, &Y, &MMD, &mo) == KFUSE_INVALID_ARGUMENT);
  }

  /* Out-of-range enumeration values (precision, dtype, memory, status): rejected as
   * invalid arguments naming the argument, every output untouched. */
  {
    float lp[M], g[M * D], ms[M * D], mmd[1], u[M * R], weights[N], snapshot[M * R];
    kfuse_vector_t LP = {lp, M, KFUSE_F32, KFUSE_HOST}, MMD = {mmd, 1, KFUSE_F32, KFUSE_HOST};
    kfuse_matrix_t G = host_f32(g, M, D), MS = host_f32(ms, M, D), U = host_f32(u, M, R);
    int b;
    for (i = 0; i < M * R; ++i)
      u[i] = 1.0f;
    for (i = 0; i < N; ++i)
      weights[i] = 1.0f;
    for (i = 0; i < M; ++i)
      lp[i] = -1.0f;
    for (i = 0; i < M * D; ++i)
      g[i] = ms[i] = 2.0f;
    mmd[0] = 3.0f;
    memcpy(snapshot, out, sizeof out);
    for (b = 0; b < BAD_ENUM_COUNT; ++b) {
      const int v = bad_enum_values[b];
      kfuse_gauss_matvec_options_t mo = kfuse_gauss_matvec_options_default();
      kfuse_kde_options_t ko = kfuse_kde_options_default();
      kfuse_gauss_grad_options_t go = kfuse_gauss_grad_options_default();
      kfuse_mmd2_options_t qo = kfuse_mmd2_options_default();
      mo.precision = (kfuse_precision_t)v;
      ko.precision = (kfuse_precision_t)v;
      go.precision = (kfuse_precision_t)v;
      qo.precision = (kfuse_precision_t)v;
      CHECK_REJECTS(kfuse_gauss_matvec(ctx, &X, &Y, &V, &O, &mo), "precision");
      CHECK_REJECTS(kfuse_kde(ctx, &X, &Y, NULL, &LP, &ko), "precision");
      CHECK_REJECTS(kfuse_gauss_matvec_grad_x(ctx, &X, &Y, &V, &U, &G, &go), "precision");
      CHECK_REJECTS(kfuse_mean_shift_step(ctx, &X, &Y, NULL, &MS, &go), "precision");
      CHECK_REJECTS(kfuse_mmd2(ctx, &X, &Y, &MMD, &qo), "precision");
      mo.precision = ko.precision = go.precision = qo.precision = KFUSE_PRECISION_EXACT;
      /* the first matrix's dtype picks the element type; a later one must match */
      bad = X;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_gauss_matvec(ctx, &bad, &Y, &V, &O, &opt), "X");
      CHECK_REJECTS(kfuse_kde(ctx, &bad, &Y, NULL, &LP, &ko), "queries");
      bad = Y;
      bad.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_mmd2(ctx, &X, &bad, &MMD, &qo), "Y");
      bad = O;
      bad.memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_gauss_matvec(ctx, &X, &Y, &V, &bad, &opt), "out");
      {
        kfuse_vector_t w = {weights, N, KFUSE_F32, KFUSE_HOST};
        w.dtype = (kfuse_dtype_t)v;
        CHECK_REJECTS(kfuse_kde(ctx, &X, &Y, &w, &LP, &ko), "weights");
        w.dtype = KFUSE_F32;
        w.memory = (kfuse_memory_t)v;
        CHECK_REJECTS(kfuse_mean_shift_step(ctx, &X, &Y, &w, &MS, &go), "weights");
      }
      CHECK(strcmp(kfuse_status_name((kfuse_status_t)v), "Unknown") == 0);
    }
    CHECK(memcmp(snapshot, out, sizeof out) == 0);
    for (i = 0; i < M; ++i)
      CHECK(lp[i] == -1.0f);
    for (i = 0; i < M * D; ++i)
      CHECK(g[i] == 2.0f && ms[i] == 2.0f);
    CHECK(mmd[0] == 3.0f);
  }

  kfuse_context_destroy(ctx);
  if (failures == 0) printf("test_c_api: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
