import numpy as np
import pytest

import kfuse
from conftest import strided


def row_kron(*mats):
    out = mats[0].astype(np.float64)
    for m in mats[1:]:
        out = np.einsum("ni,nj->nij", out, m).reshape(out.shape[0], -1)
    return out


def normalise(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_kron_fuse(rng):
    A, B, C = (rng.normal(size=(7, d)).astype(np.float32) for d in (3, 4, 2))
    out = kfuse.kron_fuse([strided(A), B, C])
    assert out.dtype == np.float32 and out.shape == (7, 24)
    np.testing.assert_allclose(out, row_kron(A, B, C), rtol=1e-6)
    cos = kfuse.kron_fuse([A, B], sides=["cosine", ("linear",)])
    np.testing.assert_allclose(cos, row_kron(normalise(A), B), rtol=1e-5, atol=1e-7)
    f64 = kfuse.kron_fuse([A.astype(np.float64), B.astype(np.float64)])
    assert f64.dtype == np.float64
    np.testing.assert_allclose(f64, row_kron(A, B), rtol=1e-15)


def test_kron_fuse_bf16_torch():
    torch = pytest.importorskip("torch")
    A, B = torch.randn(5, 3).bfloat16(), torch.randn(5, 2).bfloat16()
    out = kfuse.kron_fuse([A, B])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), row_kron(A.float().numpy(), B.float().numpy()),
                               rtol=1e-6)


def test_rp_fuse_and_projection(rng):
    A, B = rng.normal(size=(9, 6)).astype(np.float32), rng.normal(size=(9, 5)).astype(np.float32)
    l = 40
    U0 = kfuse.rp_projection_matrix(0, 6, l, seed=7)
    U1 = kfuse.rp_projection_matrix(1, 5, l, seed=7)
    ref = (A.astype(np.float64) @ U0) * (B.astype(np.float64) @ U1) / np.sqrt(l)
    np.testing.assert_allclose(kfuse.rp_fuse([A, B], l, seed=7), ref, rtol=1e-4, atol=1e-5)
    # Uniform[-sqrt 3, sqrt 3]: mean 0, variance 1.
    U = kfuse.rp_projection_matrix(0, 200, 200, seed=3)
    assert np.abs(U).max() <= np.sqrt(3) + 1e-6
    assert abs(U.mean()) < 0.02 and abs(U.var() - 1) < 0.03
    R = kfuse.rp_projection_matrix(0, 50, 50, distribution="rademacher")
    assert set(np.unique(R)) == {-1.0, 1.0}
    compat = kfuse.rp_fuse([A, B], l, seed=7, scaling="authorscompat")
    np.testing.assert_allclose(compat, ref / np.sqrt(l), rtol=1e-4, atol=1e-6)


def test_rff_fuse(rng):
    A, B = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    Z = kfuse.rff_fuse([A, B], 20000, sigmas=[1.5, 2.0], seed=1).astype(np.float64)
    assert Z.shape == (6, 40000)
    # Every row has unit norm (cos^2 + sin^2), and <z, z'> estimates the product kernel.
    np.testing.assert_allclose((Z * Z).sum(1), 1.0, rtol=1e-5)
    d2a = ((A[:, None] - A[None]) ** 2).sum(-1)
    d2b = ((B[:, None] - B[None]) ** 2).sum(-1)
    K = np.exp(-d2a / (2 * 1.5**2) - d2b / (2 * 2.0**2))
    np.testing.assert_allclose(Z @ Z.T, K, atol=0.03)  # ~4 standard deviations at r = 20000


def test_tensor_sketch(rng):
    A = normalise(rng.normal(size=(5, 8))).astype(np.float32)
    B = normalise(rng.normal(size=(5, 6))).astype(np.float32)
    Z = kfuse.tensor_sketch(A, B, 8192, seed=2).astype(np.float64)
    ref = (A @ A.T) * (B @ B.T)
    np.testing.assert_allclose(Z @ Z.T, ref, atol=0.1)


def test_product_kernel_topk(rng):
    Q1, G1 = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(50, 4)).astype(np.float32)
    Q2, G2 = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(50, 3)).astype(np.float32)
    idx, sc = kfuse.product_kernel_topk(Q1, Q2, G1, G2, 5, side1="cosine", side2="linear", C=2.0)
    assert idx.dtype == np.int64 and sc.shape == (6, 5)
    s = (normalise(Q1.astype(np.float64)) @ normalise(G1.astype(np.float64)).T) * \
        (2.0 + Q2.astype(np.float64) @ G2.T)
    ref_idx = np.argsort(-s, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sc, np.take_along_axis(s, ref_idx, 1), rtol=1e-5, atol=1e-5)


def test_cross_modal_kron_normalisation(rng):
    S = rng.normal(size=(4, 3))
    img, txt = rng.normal(size=(4, 5)), rng.normal(size=(4, 2))
    kw = dict(C=1.7, image_dim=5, text_dim=2)
    I = kfuse.cross_modal_kron("image", S, img, **kw)
    T = kfuse.cross_modal_kron("text", S, txt, **kw)
    assert I.shape == (4, 3 * 10 * 4) and I.dtype == np.float64
    k_psi = S @ S.T
    np.testing.assert_allclose(I @ T.T, 1.7 * k_psi, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(I @ I.T, k_psi * (1.7 + img @ img.T), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(T @ T.T, k_psi * (1.7 + txt @ txt.T), rtol=1e-12, atol=1e-12)


def test_cross_modal_rp(rng):
    S = rng.normal(size=(4, 3)).astype(np.float32)
    img = rng.normal(size=(4, 5)).astype(np.float32)
    C, w2, w3, l = 1.7, 5, 2, 30
    Z = kfuse.cross_modal_rp("image", S, img, l, C=C, image_dim=w2, text_dim=w3, seed=9)
    # The triple product of rp_fuse over the slots (psi, image, text), U_j of slot j.
    g = np.sqrt(C / w2)
    u2 = np.hstack([(g + img) / np.sqrt(2), (g - img) / np.sqrt(2)])
    e3 = np.full((4, 2 * w3), 1 / np.sqrt(2 * w3))
    U = [kfuse.rp_projection_matrix(j, w, l, seed=9) for j, w in enumerate((3, 2 * w2, 2 * w3))]
    ref = (S @ U[0]) * (u2 @ U[1]) * (e3 @ U[2]) / np.sqrt(l)
    np.testing.assert_allclose(Z, ref, rtol=2e-4, atol=2e-5)


def test_kron_fuse_backward_linear_sides(rng):
    # d<G, a (x) b>/da_i = sum_k G[i, i' k] b_k and likewise for b.
    A, B = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
    G = rng.normal(size=(5, 12))
    dA, dB = kfuse.kron_fuse_backward([A, B], G)
    assert dA.dtype == np.float64 and dA.shape == A.shape and dB.shape == B.shape
    G3 = G.reshape(5, 3, 4)
    np.testing.assert_allclose(dA, np.einsum("nij,nj->ni", G3, B), rtol=1e-13)
    np.testing.assert_allclose(dB, np.einsum("nij,ni->nj", G3, A), rtol=1e-13)


def test_rp_fuse_backward_linear_sides(rng):
    # Z = (A U0) o (B U1) / sqrt l: dA = ((G o B U1) / sqrt l) U0^T.
    A, B = (rng.normal(size=(6, d)).astype(np.float32) for d in (3, 5))
    l = 16
    G = rng.normal(size=(6, l)).astype(np.float32)
    U0 = kfuse.rp_projection_matrix(0, 3, l, seed=9).astype(np.float64)
    U1 = kfuse.rp_projection_matrix(1, 5, l, seed=9).astype(np.float64)
    dA, dB = kfuse.rp_fuse_backward([A, strided(B)], G, seed=9)
    assert dA.dtype == np.float32 and dA.shape == A.shape and dB.shape == B.shape
    s = 1 / np.sqrt(l)
    np.testing.assert_allclose(dA, (G * (B @ U1) * s) @ U0.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dB, (G * (A @ U0) * s) @ U1.T, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="grad_out"):
        kfuse.rp_fuse_backward([A, B], G[:5])
