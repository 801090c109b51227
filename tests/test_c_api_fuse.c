/* The fusion family's C API from a C99 program, on the CPU: every entry point
 * against a brute-force loop or an identity, and errors (status, message naming the
 * argument, output untouched). */
#include <kfuse/kfuse.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/c_check.h"
#include "support/c_enum_check.h"

static kfuse_matrix_t host(void* data, int64_t rows, int64_t cols, kfuse_dtype_t dtype) {
  kfuse_matrix_t m;
  m.data = data;
  m.rows = rows;
  m.cols = cols;
  m.ld = cols;
  m.dtype = dtype;
  m.memory = KFUSE_HOST;
  return m;
}

static double dotf(const float* a, const float* b, int n) {
  double s = 0.0;
  int i;
  for (i = 0; i < n; ++i)
    s += (double)a[i] * b[i];
  return s;
}

enum { N = 5, D1 = 3, D2 = 4, L = 16, W = D1 * D2 };

int main(void) {
  kfuse_context_t ctx = NULL;
  float a[N * D1], b[N * D2], kron[N * W], z[N * L], u1[D1 * L], u2[D2 * L], before[N * L];
  double err = 0.0;
  int i, j, k, c;
  kfuse_matrix_t in[2], out, bad[2];

  CHECK(kfuse_context_create_cpu(&ctx) == KFUSE_SUCCESS);
  for (i = 0; i < N * D1; ++i)
    a[i] = (float)sin(0.9 * i + 0.3);
  for (i = 0; i < N * D2; ++i)
    b[i] = (float)cos(1.7 * i);
  in[0] = host(a, N, D1, KFUSE_F32);
  in[1] = host(b, N, D2, KFUSE_F32);

  /* kron_fuse: out[i][k1 * D2 + k2] = a[i][k1] b[i][k2] */
  {
    kfuse_kron_fuse_options_t o = kfuse_kron_fuse_options_default();
    out = host(kron, N, W, KFUSE_F32);
    CHECK(kfuse_kron_fuse(ctx, in, 2, &out, &o) == KFUSE_SUCCESS);
    for (i = 0; i < N; ++i)
      for (j = 0; j < D1; ++j)
        for (k = 0; k < D2; ++k)
          err = fmax(err, fabs(kron[i * W + j * D2 + k] - (double)a[i * D1 + j] * b[i * D2 + k]));
    CHECK(err < 1e-6);
    /* cosine sides: <z_i, z_i> = 1 */
    o.side_count = 2;
    o.sides[0].kernel = KFUSE_SIDE_COSINE;
    o.sides[1].kernel = KFUSE_SIDE_COSINE;
    CHECK(kfuse_kron_fuse(ctx, in, 2, &out, &o) == KFUSE_SUCCESS);
    for (i = 0; i < N; ++i)
      CHECK(fabs(dotf(kron + i * W, kron + i * W, W) - 1.0) < 1e-5);
  }

  /* rp_fuse against U from kfuse_rp_projection_matrix */
  {
    kfuse_rp_fuse_options_t o = kfuse_rp_fuse_options_default();
    kfuse_matrix_t U1 = host(u1, D1, L, KFUSE_F32), U2 = host(u2, D2, L, KFUSE_F32);
    o.seed = 2024;
    o.distribution = KFUSE_RP_GAUSSIAN;
    out = host(z, N, L, KFUSE_F32);
    CHECK(kfuse_rp_fuse(ctx, in, 2, &out, &o) == KFUSE_SUCCESS);
    CHECK(kfuse_rp_projection_matrix(ctx, 0, &U1, &o) == KFUSE_SUCCESS);
    CHECK(kfuse_rp_projection_matrix(ctx, 1, &U2, &o) == KFUSE_SUCCESS);
    err = 0.0;
    for (i = 0; i < N; ++i)
      for (c = 0; c < L; ++c) {
        double f1 = 0.0, f2 = 0.0;
        for (k = 0; k < D1; ++k)
          f1 += (double)a[i * D1 + k] * u1[k * L + c];
        for (k = 0; k < D2; ++k)
          f2 += (double)b[i * D2 + k] * u2[k * L + c];
        err = fmax(err, fabs(z[i * L + c] - f1 * f2 / sqrt((double)L)));
      }
    CHECK(err < 1e-5);

    /* the draw cache: the call above kept U1 and U2; a context without it gives the
       same bits; budget 0 and clear hold nothing */
    {
      kfuse_context_t off = NULL;
      uint64_t held = 0;
      CHECK(kfuse_context_draw_cache_bytes(ctx, &held) == KFUSE_SUCCESS && held > 0);
      CHECK(kfuse_context_create_cpu(&off) == KFUSE_SUCCESS);
      CHECK(kfuse_context_set_draw_cache_budget(off, 0) == KFUSE_SUCCESS);
      memcpy(before, z, sizeof z);
      CHECK(kfuse_rp_fuse(off, in, 2, &out, &o) == KFUSE_SUCCESS);
      CHECK(memcmp(before, z, sizeof z) == 0);
      CHECK(kfuse_context_draw_cache_bytes(off, &held) == KFUSE_SUCCESS && held == 0);
      kfuse_context_destroy(off);
      CHECK(kfuse_context_clear_draw_cache(ctx) == KFUSE_SUCCESS);
      CHECK(kfuse_context_draw_cache_bytes(ctx, &held) == KFUSE_SUCCESS && held == 0);
      CHECK(kfuse_context_draw_cache_bytes(ctx, NULL) == KFUSE_INVALID_ARGUMENT);
      CHECK(kfuse_context_clear_draw_cache(NULL) == KFUSE_INVALID_ARGUMENT);
    }

    /* errors: l = 0, unknown distribution, mismatched rows; output untouched */
    memcpy(before, z, sizeof z);
    out = host(z, N, 0, KFUSE_F32);
    CHECK(kfuse_rp_fuse(ctx, in, 2, &out, &o) == KFUSE_SHAPE_MISMATCH);
    CHECK(strstr(kfuse_last_error(), "'out'") != NULL);
    out = host(z, N, L, KFUSE_F32);
    o.distribution = (kfuse_rp_distribution_t)7;
    CHECK(kfuse_rp_fuse(ctx, in, 2, &out, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "distribution") != NULL);
    o.distribution = KFUSE_RP_UNIFORM;
    bad[0] = in[0];
    bad[1] = host(b, N - 1, D2, KFUSE_F32);
    CHECK(kfuse_rp_fuse(ctx, bad, 2, &out, &o) == KFUSE_SHAPE_MISMATCH);
    CHECK(strstr(kfuse_last_error(), "'inputs[1]'") != NULL);
    bad[1] = host(b, N, D2, KFUSE_F64);
    CHECK(kfuse_rp_fuse(ctx, bad, 2, &out, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "inputs[1]") != NULL);
    /* bf16 inputs, an f64 output: out's dtype is fixed (f32), not that of the inputs */
    bad[0] = host(a, N, D1, KFUSE_BF16);
    bad[1] = host(b, N, D2, KFUSE_BF16);
    out = host(z, N, L / 2, KFUSE_F64);
    CHECK(kfuse_rp_fuse(ctx, bad, 2, &out, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "'out': expected dtype f32, got f64") != NULL);
    CHECK(strstr(kfuse_last_error(), "first matrix") == NULL);
    out = host(z, N, L, KFUSE_F32);
    o.side_count = 9;
    CHECK(kfuse_rp_fuse(ctx, in, 2, &out, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "side_count") != NULL);
    o.side_count = 0;
    CHECK(kfuse_rp_fuse(ctx, in, 2, &out, NULL) == KFUSE_INVALID_ARGUMENT);
    CHECK(kfuse_rp_fuse(NULL, in, 2, &out, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(memcmp(before, z, sizeof z) == 0);
  }

  /* the backwards (linear sides) against their brute-force sums */
  {
    float dk[N * W], dz[N * L], ga[N * D1], gb[N * D2], ga_before[N * D1];
    kfuse_matrix_t grads[2], dout;
    kfuse_kron_fuse_options_t ko = kfuse_kron_fuse_options_default();
    kfuse_rp_fuse_options_t ro = kfuse_rp_fuse_options_default();
    kfuse_matrix_t U1 = host(u1, D1, L, KFUSE_F32), U2 = host(u2, D2, L, KFUSE_F32);
    for (i = 0; i < N * W; ++i)
      dk[i] = (float)sin(0.37 * i);
    for (i = 0; i < N * L; ++i)
      dz[i] = (float)cos(0.53 * i + 1.0);
    grads[0] = host(ga, N, D1, KFUSE_F32);
    grads[1] = host(gb, N, D2, KFUSE_F32);
    /* kron: da[i][j] = sum_k dk[i][j D2 + k] b[i][k], db[i][k] = sum_j dk[..] a[i][j] */
    dout = host(dk, N, W, KFUSE_F32);
    CHECK(kfuse_kron_fuse_backward(ctx, in, 2, &dout, grads, &ko) == KFUSE_SUCCESS);
    err = 0.0;
    for (i = 0; i < N; ++i) {
      for (j = 0; j < D1; ++j) {
        double s = 0.0;
        for (k = 0; k < D2; ++k)
          s += (double)dk[i * W + j * D2 + k] * b[i * D2 + k];
        err = fmax(err, fabs(ga[i * D1 + j] - s));
      }
      for (k = 0; k < D2; ++k) {
        double s = 0.0;
        for (j = 0; j < D1; ++j)
          s += (double)dk[i * W + j * D2 + k] * a[i * D1 + j];
        err = fmax(err, fabs(gb[i * D2 + k] - s));
      }
    }
    CHECK(err < 1e-5);
    /* rp: da[i][k] = sum_c dz[i][c] (b_i . u2[:, c]) u1[k][c] / sqrt L */
    ro.seed = 77;
    dout = host(dz, N, L, KFUSE_F32);
    CHECK(kfuse_rp_fuse_backward(ctx, in, 2, &dout, grads, &ro) == KFUSE_SUCCESS);
    CHECK(kfuse_rp_projection_matrix(ctx, 0, &U1, &ro) == KFUSE_SUCCESS);
    CHECK(kfuse_rp_projection_matrix(ctx, 1, &U2, &ro) == KFUSE_SUCCESS);
    err = 0.0;
    for (i = 0; i < N; ++i)
      for (k = 0; k < D1; ++k) {
        double s = 0.0;
        for (c = 0; c < L; ++c) {
          double f2 = 0.0;
          for (j = 0; j < D2; ++j)
            f2 += (double)b[i * D2 + j] * u2[j * L + c];
          s += dz[i * L + c] * f2 * u1[k * L + c] / sqrt((double)L);
        }
        err = fmax(err, fabs(ga[i * D1 + k] - s));
      }
    CHECK(err < 1e-5);
    /* errors: no grads, a gradient of the wrong dtype; gradients untouched */
    memcpy(ga_before, ga, sizeof ga);
    CHECK(kfuse_rp_fuse_backward(ctx, in, 2, &dout, NULL, &ro) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "grads") != NULL);
    grads[1] = host(gb, N, D2 / 2, KFUSE_F64);
    CHECK(kfuse_rp_fuse_backward(ctx, in, 2, &dout, grads, &ro) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "'grads[1]'") != NULL);
    grads[1] = host(gb, N - 1, D2, KFUSE_F32);
    CHECK(kfuse_rp_fuse_backward(ctx, in, 2, &dout, grads, &ro) == KFUSE_SHAPE_MISMATCH);
    CHECK(strstr(kfuse_last_error(), "'grads[1]'") != NULL);
    CHECK(memcmp(ga_before, ga, sizeof ga) == 0);
  }

  /* cross-modal (exact, fp64): image-text = C <psi_x, psi_t> */
  {
    enum { DP = 2, DI = 2, DT = 3 };
    double psi_x[DP] = {0.5, -1.25}, psi_t[DP] = {2.0, 0.75}, ex[DI] = {0.3, -0.2},
           et[DT] = {1.0, 0.5, -0.5};
    double zx[DP * 2 * DI * 2 * DT], zt[DP * 2 * DI * 2 * DT], s = 0.0;
    kfuse_cross_modal_options_t o = kfuse_cross_modal_options_default();
    kfuse_matrix_t sx, mx, sy, my, ox, oy;
    int64_t w;
    o.C = 0.4;
    o.image_dim = DI;
    o.text_dim = DT;
    w = kfuse_cross_modal_width(&o, DP);
    CHECK(w == DP * 2 * DI * 2 * DT);
    sx = host(psi_x, 1, DP, KFUSE_F64);
    mx = host(ex, 1, DI, KFUSE_F64);
    sy = host(psi_t, 1, DP, KFUSE_F64);
    my = host(et, 1, DT, KFUSE_F64);
    ox = host(zx, 1, w, KFUSE_F64);
    oy = host(zt, 1, w, KFUSE_F64);
    CHECK(kfuse_cross_modal_kron(ctx, KFUSE_MODALITY_IMAGE, &sx, &mx, &ox, &o) == KFUSE_SUCCESS);
    CHECK(kfuse_cross_modal_kron(ctx, KFUSE_MODALITY_TEXT, &sy, &my, &oy, &o) == KFUSE_SUCCESS);
    for (i = 0; i < w; ++i)
      s += zx[i] * zt[i];
    CHECK(fabs(s - 0.4 * (0.5 * 2.0 - 1.25 * 0.75)) < 1e-12);
    /* the rp form runs and rejects an expert of the wrong width */
    {
      float fs[DP] = {0.5f, -1.25f}, fe[DI] = {0.3f, -0.2f}, fz[L];
      kfuse_matrix_t s1 = host(fs, 1, DP, KFUSE_F32), e1 = host(fe, 1, DI, KFUSE_F32),
                     o1 = host(fz, 1, L, KFUSE_F32);
      CHECK(kfuse_cross_modal_rp(ctx, KFUSE_MODALITY_IMAGE, &s1, &e1, &o1, &o) == KFUSE_SUCCESS);
      CHECK(kfuse_cross_modal_rp(ctx, KFUSE_MODALITY_TEXT, &s1, &e1, &o1, &o) ==
            KFUSE_SHAPE_MISMATCH);
      CHECK(strstr(kfuse_last_error(), "'expert'") != NULL);
    }
  }

  /* rff_fuse: unit-norm rows */
  {
    kfuse_rff_options_t o = kfuse_rff_options_default();
    o.sigma_count = 2;
    o.sigmas[0] = 0.7;
    o.sigmas[1] = 1.3;
    out = host(z, N, L, KFUSE_F32);
    CHECK(kfuse_rff_fuse(ctx, in, 2, &out, &o) == KFUSE_SUCCESS);
    for (i = 0; i < N; ++i)
      CHECK(fabs(dotf(z + i * L, z + i * L, L) - 1.0) < 1e-5);
    o.sigmas[1] = -1.0;
    memcpy(before, z, sizeof z);
    CHECK(kfuse_rff_fuse(ctx, in, 2, &out, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "sigmas[1]") != NULL);
    CHECK(memcmp(before, z, sizeof z) == 0);
  }

  /* tensor_sketch: l = 1 sums every product: TS = (sum_k s_k a_k)(sum_k s'_k b_k), so
   * |TS| <= |a|_1 |b|_1 */
  {
    kfuse_tensor_sketch_options_t o = kfuse_tensor_sketch_options_default();
    out = host(z, N, L, KFUSE_F32);
    CHECK(kfuse_tensor_sketch(ctx, &in[0], &in[1], &out, &o) == KFUSE_SUCCESS);
    out = host(z, N, 1, KFUSE_F32);
    CHECK(kfuse_tensor_sketch(ctx, &in[0], &in[1], &out, &o) == KFUSE_SUCCESS);
    for (i = 0; i < N; ++i) {
      double n1 = 0.0, n2 = 0.0;
      for (k = 0; k < D1; ++k)
        n1 += fabs(a[i * D1 + k]);
      for (k = 0; k < D2; ++k)
        n2 += fabs(b[i * D2 + k]);
      CHECK(fabs(z[i]) <= n1 * n2 + 1e-5);
    }
  }

  /* product_kernel_topk against brute force (linear kernels, C = 0) */
  {
    enum { M = 2, K = 3 };
    int64_t idx[M * K];
    float sc[M * K];
    kfuse_product_topk_options_t o = kfuse_product_topk_options_default();
    kfuse_matrix_t Q1 = host(a, M, D1, KFUSE_F32), Q2 = host(b, M, D2, KFUSE_F32),
                   G1 = host(a, N, D1, KFUSE_F32), G2 = host(b, N, D2, KFUSE_F32),
                   I = host(idx, M, K, KFUSE_I64), S = host(sc, M, K, KFUSE_F32);
    CHECK(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &o) == KFUSE_SUCCESS);
    for (i = 0; i < M; ++i) {
      double best = -1e30;
      int64_t arg = -1;
      for (j = 0; j < N; ++j) {
        const double s = dotf(a + i * D1, a + j * D1, D1) * dotf(b + i * D2, b + j * D2, D2);
        if (s > best) {
          best = s;
          arg = j;
        }
      }
      CHECK(idx[i * K] == arg);
      CHECK(fabs(sc[i * K] - best) < 1e-5);
      CHECK(sc[i * K] >= sc[i * K + 1] && sc[i * K + 1] >= sc[i * K + 2]);
    }
    /* k > N */
    I = host(idx, M, N + 1, KFUSE_I64);
    S = host(sc, M, N + 1, KFUSE_F32);
    CHECK(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "'k'") != NULL);
    /* indices must be int64 */
    I = host(idx, M, K, KFUSE_I32);
    S = host(sc, M, K, KFUSE_F32);
    CHECK(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &o) == KFUSE_INVALID_ARGUMENT);
    CHECK(strstr(kfuse_last_error(), "indices") != NULL);
  }

  /* Out-of-range enumeration values in every enumeration argument: rejected as
   * invalid arguments naming the argument, the output untouched. */
  {
    enum { M = 2, K = 3 };
    int64_t idx[M * K];
    float sc[M * K];
    kfuse_matrix_t Q1 = host(a, M, D1, KFUSE_F32), Q2 = host(b, M, D2, KFUSE_F32),
                   G1 = host(a, N, D1, KFUSE_F32), G2 = host(b, N, D2, KFUSE_F32),
                   I = host(idx, M, K, KFUSE_I64), S = host(sc, M, K, KFUSE_F32),
                   U1 = host(u1, D1, L, KFUSE_F32), sh = host(a, N, D1, KFUSE_F32),
                   ex = host(b, N, D2, KFUSE_F32);
    int bi;
    for (i = 0; i < N * L; ++i)
      z[i] = (float)i;
    for (i = 0; i < D1 * L; ++i)
      u1[i] = -(float)i;
    for (i = 0; i < M * K; ++i) {
      idx[i] = 77;
      sc[i] = 0.5f;
    }
    memcpy(before, z, sizeof z);
    out = host(z, N, L, KFUSE_F32);
    for (bi = 0; bi < BAD_ENUM_COUNT; ++bi) {
      const int v = bad_enum_values[bi];
      kfuse_kron_fuse_options_t ko = kfuse_kron_fuse_options_default();
      kfuse_rp_fuse_options_t ro = kfuse_rp_fuse_options_default();
      kfuse_cross_modal_options_t co = kfuse_cross_modal_options_default();
      kfuse_rff_options_t fo = kfuse_rff_options_default();
      kfuse_tensor_sketch_options_t to = kfuse_tensor_sketch_options_default();
      kfuse_product_topk_options_t po = kfuse_product_topk_options_default();
      kfuse_matrix_t o2 = host(z, N, D1 * D2, KFUSE_F32);

      /* kron_fuse: a side's kernel; an input's dtype and memory */
      ko.side_count = 2;
      ko.sides[1].kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_kron_fuse(ctx, in, 2, &o2, &ko), "sides[1].kernel");
      ko.side_count = 0;
      bad[0] = in[0];
      bad[1] = in[1];
      bad[0].dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_kron_fuse(ctx, bad, 2, &o2, &ko), "inputs");
      bad[0] = in[0];
      bad[1].dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_kron_fuse(ctx, bad, 2, &o2, &ko), "inputs[1]");
      bad[1] = in[1];
      bad[1].memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_kron_fuse(ctx, bad, 2, &o2, &ko), "inputs[1]");
      o2.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_kron_fuse(ctx, in, 2, &o2, &ko), "out");

      /* rp_fuse and rp_projection_matrix: distribution, scaling, precision, sides */
      ro.distribution = (kfuse_rp_distribution_t)v;
      CHECK_REJECTS(kfuse_rp_fuse(ctx, in, 2, &out, &ro), "distribution");
      CHECK_REJECTS(kfuse_rp_projection_matrix(ctx, 0, &U1, &ro), "distribution");
      ro.distribution = KFUSE_RP_UNIFORM;
      ro.scaling = (kfuse_rp_scaling_t)v;
      CHECK_REJECTS(kfuse_rp_fuse(ctx, in, 2, &out, &ro), "scaling");
      CHECK_REJECTS(kfuse_rp_projection_matrix(ctx, 0, &U1, &ro), "scaling");
      ro.scaling = KFUSE_RP_UNBIASED;
      ro.precision = (kfuse_precision_t)v;
      CHECK_REJECTS(kfuse_rp_fuse(ctx, in, 2, &out, &ro), "precision");
      CHECK_REJECTS(kfuse_rp_projection_matrix(ctx, 0, &U1, &ro), "precision");
      ro.precision = KFUSE_PRECISION_EXACT;
      ro.side_count = 2;
      ro.sides[0].kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_rp_fuse(ctx, in, 2, &out, &ro), "sides[0].kernel");
      CHECK_REJECTS(kfuse_rp_projection_matrix(ctx, 1, &U1, &ro), "sides[0].kernel");
      ro.sides[0].kernel = KFUSE_SIDE_LINEAR;
      U1.memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_rp_projection_matrix(ctx, 0, &U1, &ro), "out");
      U1.memory = KFUSE_HOST;

      /* cross-modal: the modality argument, each side's kernel, distribution,
       * scaling, precision; the width query returns 0 */
      co.image_dim = D2;
      co.text_dim = D2;
      CHECK_REJECTS(kfuse_cross_modal_kron(ctx, (kfuse_modality_t)v, &sh, &ex, &out, &co),
                    "modality");
      CHECK_REJECTS(kfuse_cross_modal_rp(ctx, (kfuse_modality_t)v, &sh, &ex, &out, &co),
                    "modality");
      co.shared.kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_cross_modal_kron(ctx, KFUSE_MODALITY_IMAGE, &sh, &ex, &out, &co),
                    "shared.kernel");
      CHECK(kfuse_cross_modal_width(&co, D1) == 0);
      CHECK(last_error_names("shared.kernel"));
      co.shared.kernel = KFUSE_SIDE_LINEAR;
      co.image_expert.kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_cross_modal_rp(ctx, KFUSE_MODALITY_IMAGE, &sh, &ex, &out, &co),
                    "image_expert.kernel");
      co.image_expert.kernel = KFUSE_SIDE_LINEAR;
      co.text_expert.kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_cross_modal_rp(ctx, KFUSE_MODALITY_TEXT, &sh, &ex, &out, &co),
                    "text_expert.kernel");
      co.text_expert.kernel = KFUSE_SIDE_LINEAR;
      co.distribution = (kfuse_rp_distribution_t)v;
      CHECK_REJECTS(kfuse_cross_modal_rp(ctx, KFUSE_MODALITY_TEXT, &sh, &ex, &out, &co),
                    "distribution");
      co.distribution = KFUSE_RP_UNIFORM;
      co.scaling = (kfuse_rp_scaling_t)v;
      CHECK_REJECTS(kfuse_cross_modal_rp(ctx, KFUSE_MODALITY_TEXT, &sh, &ex, &out, &co), "scaling");
      co.scaling = KFUSE_RP_UNBIASED;
      co.precision = (kfuse_precision_t)v;
      CHECK_REJECTS(kfuse_cross_modal_rp(ctx, KFUSE_MODALITY_TEXT, &sh, &ex, &out, &co),
                    "precision");
      bad[0] = sh;
      bad[0].dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_cross_modal_kron(ctx, KFUSE_MODALITY_IMAGE, &bad[0], &ex, &out, &co),
                    "shared");

      /* rff_fuse: an input's dtype */
      fo.sigma_count = 2;
      bad[0] = in[0];
      bad[1] = in[1];
      bad[1].dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_rff_fuse(ctx, bad, 2, &out, &fo), "inputs[1]");

      /* tensor_sketch: each side's kernel, B's dtype */
      to.side_a.kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_tensor_sketch(ctx, &in[0], &in[1], &out, &to), "side_a.kernel");
      to.side_a.kernel = KFUSE_SIDE_LINEAR;
      to.side_b.kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_tensor_sketch(ctx, &in[0], &in[1], &out, &to), "side_b.kernel");
      to.side_b.kernel = KFUSE_SIDE_LINEAR;
      CHECK_REJECTS(kfuse_tensor_sketch(ctx, &in[0], &bad[1], &out, &to), "B");

      /* product_kernel_topk: each side's kernel, precision, the outputs' dtypes */
      po.side1.kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &po),
                    "side1.kernel");
      po.side1.kernel = KFUSE_SIDE_LINEAR;
      po.side2.kernel = (kfuse_side_kernel_t)v;
      CHECK_REJECTS(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &po),
                    "side2.kernel");
      po.side2.kernel = KFUSE_SIDE_LINEAR;
      po.precision = (kfuse_precision_t)v;
      CHECK_REJECTS(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &po), "precision");
      po.precision = KFUSE_PRECISION_EXACT;
      I.dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &po), "indices");
      I.dtype = KFUSE_I64;
      S.memory = (kfuse_memory_t)v;
      CHECK_REJECTS(kfuse_product_kernel_topk(ctx, &Q1, &Q2, &G1, &G2, &I, &S, &po), "scores");
      S.memory = KFUSE_HOST;
      bad[0] = Q1;
      bad[0].dtype = (kfuse_dtype_t)v;
      CHECK_REJECTS(kfuse_product_kernel_topk(ctx, &bad[0], &Q2, &G1, &G2, &I, &S, &po), "Q1");
    }
    CHECK(memcmp(before, z, sizeof z) == 0);
    for (i = 0; i < D1 * L; ++i)
      CHECK(u1[i] == -(float)i);
    for (i = 0; i < M * K; ++i)
      CHECK(idx[i] == 77 && sc[i] == 0.5f);
  }

  kfuse_context_destroy(ctx);
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  else
    printf("test_c_api_fuse: all checks passed\n");
  return failures ? 1 : 0;
}
