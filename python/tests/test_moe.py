import numpy as np
import pytest

import kfuse


def reference_plan(ids, E):
    """Rows of each expert in slot order (s = t k + j): the stable sort by expert."""
    T, k = ids.shape
    slots = np.argsort(ids.reshape(-1), kind="stable")
    counts = np.bincount(ids.reshape(-1), minlength=E)
    return slots, counts


def test_router_topk(rng):
    logits = rng.normal(size=(20, 8)).astype(np.float32)
    ids, gates = kfuse.moe_router_topk(logits, 3, renormalize=True)
    ref_ids = np.argsort(-logits, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(ids, ref_ids)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top = np.take_along_axis(p, ref_ids, 1)
    np.testing.assert_allclose(gates, top / top.sum(1, keepdims=True), rtol=1e-5)
    _, g2 = kfuse.moe_router_topk(logits, 3, mode="topksoftmax")
    np.testing.assert_allclose(g2, top / top.sum(1, keepdims=True), rtol=1e-5)
    _, g3 = kfuse.moe_router_topk(logits, 3)
    np.testing.assert_allclose(g3, top, rtol=1e-5)


@pytest.fixture
def routed(rng):
    T, k, E, H = 17, 2, 5, 8
    ids = np.stack([rng.choice(E, size=k, replace=False) for _ in range(T)]).astype(np.int32)
    gates = rng.uniform(0.1, 1.0, size=(T, k)).astype(np.float32)
    return ids, gates, T, k, E, H


def test_plan_scatter_gather(rng, routed):
    ids, gates, T, k, E, H = routed
    plan = kfuse.moe_plan(ids, E, host_counts=True)
    slots, counts = reference_plan(ids, E)
    np.testing.assert_array_equal(plan.counts, counts)
    np.testing.assert_array_equal(plan.host_counts, counts)
    np.testing.assert_array_equal(plan.offsets, np.concatenate([[0], np.cumsum(counts)]))
    np.testing.assert_array_equal(plan.row_slot[: T * k], slots)
    X = rng.normal(size=(T, H)).astype(np.float32)
    Xp = kfuse.moe_scatter(plan, X)
    np.testing.assert_array_equal(Xp[: T * k], X[slots // k])
    dXp = rng.normal(size=Xp.shape).astype(np.float32)
    dX = np.zeros((T, H))
    np.add.at(dX, slots // k, dXp[: T * k])
    np.testing.assert_allclose(kfuse.moe_scatter_backward(plan, dXp), dX, rtol=1e-6, atol=1e-6)
    Yp = rng.normal(size=(plan.rows, H)).astype(np.float32)
    row_of = plan.slot_row.reshape(T, k)
    Y = (gates[:, :, None] * Yp[row_of]).sum(1)
    np.testing.assert_allclose(kfuse.moe_gather(plan, Yp, gates), Y, rtol=1e-6, atol=1e-6)
    dY = rng.normal(size=(T, H)).astype(np.float32)
    dYp, dg = kfuse.moe_gather_backward(plan, Yp, gates, dY)
    ref_dYp = np.zeros_like(Yp)
    ref_dYp[row_of] = gates[:, :, None] * dY[:, None, :]
    np.testing.assert_allclose(dYp, ref_dYp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dg, (Yp[row_of] * dY[:, None, :]).sum(-1), rtol=1e-5, atol=1e-6)


def test_plan_padding_and_capacity(routed):
    ids, _, T, k, E, _ = routed
    plan = kfuse.moe_plan(ids, E, pad_to=4, capacity=3)
    _, counts = reference_plan(ids, E)
    kept = np.minimum(counts, 3)
    np.testing.assert_array_equal(plan.counts, kept)
    padded = np.where(kept > 0, (kept + 3) // 4 * 4, 0)
    np.testing.assert_array_equal(plan.offsets, np.concatenate([[0], np.cumsum(padded)]))
    assert (plan.slot_row == -1).sum() == (counts - kept).sum()


def test_grouped_gemms(rng, routed):
    ids, gates, T, k, E, H = routed
    N = 12
    plan = kfuse.moe_plan(ids, E)
    X = rng.normal(size=(T, H)).astype(np.float32)
    W = rng.normal(size=(E, H, N)).astype(np.float32)
    row_of = plan.slot_row.reshape(T, k)
    # Reference: each slot's token times its expert's weights, at its row.
    ref = np.zeros((plan.rows, N))
    for t in range(T):
        for j in range(k):
            ref[row_of[t, j]] = X[t].astype(np.float64) @ W[ids[t, j]]
    Xp = kfuse.moe_scatter(plan, X)
    np.testing.assert_allclose(kfuse.moe_grouped_gemm(plan, Xp, W), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kfuse.moe_gather_gemm(plan, X, W), ref, rtol=1e-5, atol=1e-5)
    Wt = np.ascontiguousarray(W.transpose(0, 2, 1))
    np.testing.assert_allclose(kfuse.moe_grouped_gemm(plan, Xp, Wt, transpose_w=True), ref,
                               rtol=1e-5, atol=1e-5)
    Y = (gates[:, :, None] * ref[row_of]).sum(1)
    np.testing.assert_allclose(kfuse.moe_gemm_combine(plan, Xp, W, gates), Y, rtol=1e-5,
                               atol=1e-5)
    dYp = rng.normal(size=(plan.rows, N)).astype(np.float32)
    dW = np.zeros((E, H, N))
    for t in range(T):
        for j in range(k):
            dW[ids[t, j]] += np.outer(X[t], dYp[row_of[t, j]])
    got = kfuse.moe_grouped_gemm_wgrad(plan, Xp, dYp)
    assert got.shape == (E, H, N)
    np.testing.assert_allclose(got, dW, rtol=1e-5, atol=1e-5)


def test_mlp_forward_backward_against_torch(rng, routed):
    torch = pytest.importorskip("torch")
    ids, gates, T, k, E, H = routed
    Fd = 12
    X = torch.tensor(rng.normal(size=(T, H)), dtype=torch.float64, requires_grad=True)
    g = torch.tensor(gates, dtype=torch.float64, requires_grad=True)
    w1, w3 = (torch.tensor(rng.normal(size=(E, H, Fd)) * 0.3, requires_grad=True) for _ in range(2))
    w2 = torch.tensor(rng.normal(size=(E, Fd, H)) * 0.3, requires_grad=True)
    Y = torch.zeros(T, H, dtype=torch.float64)
    for t in range(T):
        for j in range(k):
            e = int(ids[t, j])
            a = torch.nn.functional.silu(X[t] @ w1[e]) * (X[t] @ w3[e])
            Y = Y.index_add(0, torch.tensor([t]), (g[t, j] * (a @ w2[e]))[None])
    dY = torch.tensor(rng.normal(size=(T, H)))
    Y.backward(dY)
    f32 = lambda x: x.detach().float().numpy()  # noqa: E731
    plan = kfuse.moe_plan(ids, E)
    Yk, h1, h3 = kfuse.moe_mlp_forward(plan, f32(X), gates, f32(w1), f32(w3), f32(w2))
    np.testing.assert_allclose(Yk, Y.detach().numpy(), rtol=1e-4, atol=1e-5)
    grads = kfuse.moe_mlp_backward(plan, f32(X), gates, f32(w1), f32(w3), f32(w2), f32(dY), h1, h3)
    for got, want in zip(grads, (X.grad, g.grad, w1.grad, w3.grad, w2.grad)):
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
    # Without saved activations the backward recomputes them: the same result.
    again = kfuse.moe_mlp_backward(plan, f32(X), gates, f32(w1), f32(w3), f32(w2), f32(dY))
    for a, b in zip(again, grads):
        np.testing.assert_array_equal(a, b)
