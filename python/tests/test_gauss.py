import numpy as np
import pytest

import kfuse
from conftest import strided


def kernel(X, Y, sigma):
    d2 = ((X[:, None, :].astype(np.float64) - Y[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma**2))


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_gauss_matvec(rng, dtype, tol):
    X, Y = rng.normal(size=(37, 5)).astype(dtype), rng.normal(size=(29, 5)).astype(dtype)
    V = rng.normal(size=(29, 3)).astype(dtype)
    ref = kernel(X, Y, 0.7) @ V
    out = kfuse.gauss_matvec(strided(X), strided(Y), strided(V), sigma=0.7)
    assert out.dtype == dtype and out.shape == (37, 3)
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    # alpha, beta and out in place; a vector V gives a vector.
    acc = np.ones((37, 3), dtype)
    res = kfuse.gauss_matvec(X, Y, V, sigma=0.7, alpha=2.0, beta=0.5, out=acc)
    assert res is acc
    np.testing.assert_allclose(acc, 2 * ref + 0.5, rtol=tol, atol=tol)
    v = kfuse.gauss_matvec(X, Y, V[:, 0].copy(), sigma=0.7)
    assert v.shape == (37,)
    np.testing.assert_allclose(v, ref[:, 0], rtol=tol, atol=tol)


def test_gauss_matvec_returns_torch_for_torch():
    torch = pytest.importorskip("torch")
    X = torch.randn(10, 4, dtype=torch.float64)
    out = kfuse.gauss_matvec(X, X, torch.ones(10, 2, dtype=torch.float64), sigma=2.0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    ref = kernel(X.numpy(), X.numpy(), 2.0) @ np.ones((10, 2))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("log", [True, False])
def test_kde(rng, log):
    Q, Y = rng.normal(size=(11, 3)), rng.normal(size=(23, 3))
    w = rng.uniform(0.1, 2.0, size=23)
    sigma = 0.8
    norm = (2 * np.pi * sigma**2) ** (-3 / 2)
    p = norm * (kernel(Q, Y, sigma) @ w) / w.sum()
    out = kfuse.kde(Q, Y, w, sigma=sigma, log=log)
    np.testing.assert_allclose(out, np.log(p) if log else p, rtol=1e-10)
    p1 = norm * kernel(Q, Y, sigma).mean(1)
    np.testing.assert_allclose(kfuse.kde(Q, Y, sigma=sigma, log=False), p1, rtol=1e-10)


def test_gauss_matvec_grad_x(rng):
    X, Y = rng.normal(size=(9, 4)), rng.normal(size=(13, 4))
    V, U = rng.normal(size=(13, 2)), rng.normal(size=(9, 2))
    s = 1.3
    K = kernel(X, Y, s)
    W = K * (U @ V.T)  # K_ij <u_i, v_j>
    ref = (W @ Y - W.sum(1, keepdims=True) * X) / s**2
    np.testing.assert_allclose(kfuse.gauss_matvec_grad_x(X, Y, V, U, sigma=s), ref, rtol=1e-10,
                               atol=1e-12)


def test_mean_shift_step(rng):
    X, Y = rng.normal(size=(8, 2)), rng.normal(size=(30, 2))
    w = rng.uniform(0.5, 1.5, size=30)
    Kw = kernel(X, Y, 0.6) * w
    ref = (Kw @ Y) / Kw.sum(1, keepdims=True)
    np.testing.assert_allclose(kfuse.mean_shift_step(X, Y, w, sigma=0.6), ref, rtol=1e-10)


@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd2(rng, unbiased):
    X, Y = rng.normal(size=(12, 3)), rng.normal(0.5, 1.0, size=(15, 3))
    Kxx, Kyy, Kxy = kernel(X, X, 1.1), kernel(Y, Y, 1.1), kernel(X, Y, 1.1)
    if unbiased:
        m, n = 12, 15
        ref = ((Kxx.sum() - m) / (m * (m - 1)) + (Kyy.sum() - n) / (n * (n - 1))
               - 2 * Kxy.mean())
    else:
        ref = Kxx.mean() + Kyy.mean() - 2 * Kxy.mean()
    out = kfuse.mmd2(X, Y, sigma=1.1, unbiased=unbiased)
    assert out.shape == ()
    np.testing.assert_allclose(out, ref, rtol=1e-10)
