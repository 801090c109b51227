import numpy as np
import pytest

import kfuse

torch = pytest.importorskip("torch")
F = torch.nn.functional


def features(rng, n, d, dtype=np.float32):
    a = rng.normal(size=(n, d))
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(dtype)


def clip_reference(A, B, t, labels=None, eps=0.0, direction="both"):
    """Loss and (dA, dB, dt) by PyTorch autograd in float64."""
    A = torch.tensor(A, dtype=torch.float64, requires_grad=True)
    B = torch.tensor(B, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    S = t.exp() * A @ B.T
    lab = torch.arange(A.shape[0]) if labels is None else torch.tensor(labels)
    if direction == "both":
        loss = (F.cross_entropy(S, lab, label_smoothing=eps) +
                F.cross_entropy(S.T, lab, label_smoothing=eps)) / 2
    elif direction == "atob":
        loss = F.cross_entropy(S, lab, label_smoothing=eps)
    else:
        loss = F.cross_entropy(S.T, lab, label_smoothing=eps)
    loss.backward()
    return loss.item(), A.grad.numpy(), B.grad.numpy(), t.grad.item()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_clip_loss_forward_backward(rng, eps):
    A, B = features(rng, 33, 16), features(rng, 33, 16)
    t = np.log(1 / 0.07)
    loss, dA, dB, dt = clip_reference(A, B, t, eps=eps)
    f = kfuse.clip_loss_forward(A, B, logit_scale=t, label_smoothing=eps, row_losses=True)
    np.testing.assert_allclose(f.loss, loss, rtol=1e-5)
    assert f.row_losses.shape == (33,) and f.col_losses is None
    g = kfuse.clip_loss_backward(A, B, f.lse_rows, f.lse_cols, logit_scale=t,
                                 label_smoothing=eps, need=("dA", "dB", "dt", "db"))
    np.testing.assert_allclose(g.dA, dA, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g.dB, dB, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g.dt, dt, rtol=1e-4, atol=1e-5)
    assert g.db == 0  # CLIP's loss does not depend on the bias
    # The scale as a one-element array (read by the backend), upstream gradient 2.
    t_arr = np.array([t], np.float32)
    g2 = kfuse.clip_loss_backward(A, B, f.lse_rows, f.lse_cols, logit_scale=t_arr,
                                  label_smoothing=eps, grad_loss=np.float32(2.0))
    np.testing.assert_allclose(g2.dA, 2 * dA, rtol=1e-4, atol=2e-5)


def test_clip_loss_one_direction_with_labels(rng):
    A, B = features(rng, 10, 8), features(rng, 25, 8)
    labels = rng.integers(0, 25, size=10)
    loss, dA, dB, _ = clip_reference(A, B, 1.0, labels=labels, direction="atob")
    f = kfuse.clip_loss_forward(A, B, labels, logit_scale=1.0, direction="AtoB")
    assert f.lse_cols is None
    np.testing.assert_allclose(f.loss, loss, rtol=1e-5)
    g = kfuse.clip_loss_backward(A, B, f.lse_rows, None, labels, logit_scale=1.0,
                                 direction="atob")
    np.testing.assert_allclose(g.dA, dA, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g.dB, dB, rtol=1e-4, atol=1e-5)


def siglip_reference(A, B, t, b, labels=None):
    A = torch.tensor(A, dtype=torch.float64, requires_grad=True)
    B = torch.tensor(B, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    S = t.exp() * A @ B.T + b
    z = -torch.ones_like(S)
    lab = np.arange(A.shape[0]) if labels is None else labels
    for i, j in enumerate(lab):
        if j >= 0:
            z[i, j] = 1
    loss = -F.logsigmoid(z * S).sum() / A.shape[0]
    loss.backward()
    return loss.item(), A.grad.numpy(), B.grad.numpy(), t.grad.item(), b.grad.item()


def test_siglip_loss(rng):
    A, B = features(rng, 21, 12), features(rng, 21, 12)
    labels = np.arange(21)
    labels[3] = -1  # a row without a positive here
    loss, dA, dB, dt, db = siglip_reference(A, B, np.log(10), -10.0, labels)
    f = kfuse.siglip_loss_forward(A, B, labels, row_losses=True)
    np.testing.assert_allclose(f.loss, loss, rtol=1e-5)
    np.testing.assert_allclose(f.row_losses.mean(), loss, rtol=1e-5)
    g = kfuse.siglip_loss_backward(A, B, labels)
    for got, want in zip(g, (dA, dB, dt, db)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bf16_inputs_with_float32_gradients(rng):
    A = torch.tensor(features(rng, 16, 8)).bfloat16()
    B = torch.tensor(features(rng, 16, 8)).bfloat16()
    loss, dA, dB, _ = clip_reference(A.float().numpy(), B.float().numpy(), 2.0)
    f = kfuse.clip_loss_forward(A, B, logit_scale=2.0)
    assert isinstance(f.loss, torch.Tensor)
    np.testing.assert_allclose(f.loss.item(), loss, rtol=1e-5)
    g = kfuse.clip_loss_backward(A, B, f.lse_rows, f.lse_cols, logit_scale=2.0,
                                 grad_dtype="float32")
    assert g.dA.dtype == torch.float32
    np.testing.assert_allclose(g.dA.numpy(), dA, rtol=1e-4, atol=1e-5)
    gb = kfuse.clip_loss_backward(A, B, f.lse_rows, f.lse_cols, logit_scale=2.0)
    assert gb.dA.dtype == torch.bfloat16
    np.testing.assert_allclose(gb.dA.float().numpy(), dA, rtol=1e-2, atol=1e-3)


def test_fused_forward_backward(rng):
    A, B = features(rng, 19, 8), features(rng, 19, 8)
    loss, dA, dB, dt = clip_reference(A, B, 1.5, eps=0.05)
    f, g = kfuse.clip_loss_forward_backward(A, B, logit_scale=1.5, label_smoothing=0.05,
                                            row_losses=True)
    np.testing.assert_allclose(f.loss, loss, rtol=1e-5)
    assert f.row_losses.shape == (19,) and f.lse_rows is None
    for got, want in zip((g.dA, g.dB, g.dt), (dA, dB, dt)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    sl, sdA, sdB, sdt, sdb = siglip_reference(A, B, 1.5, -3.0)
    f, g = kfuse.siglip_loss_forward_backward(A, B, logit_scale=1.5, bias=-3.0)
    np.testing.assert_allclose(f.loss, sl, rtol=1e-5)
    for got, want in zip(g, (sdA, sdB, sdt, sdb)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
