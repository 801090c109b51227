"""The sparse mixture-of-experts family (include/kfuse/moe.hpp). Activations and
weights float32 or bfloat16, gates float32, ids int32. Expert weights are [E x K x N]
arrays (or their [E*K x N] matrix view); gradients come back in the shape given.
A MoePlan (from moe_plan) groups the T k (token, choice) slots by expert."""

import numpy as np

from . import _kfuse
from ._arrays import as_array, empty, enum, execution, shape2
from ._kfuse import RouterMode


class MoePlan:
    """A dispatch plan: one int32 array ``storage`` holding counts [E], offsets [E + 1],
    row_slot [rows] and slot_row [T k], and its layout (tokens, top_k, experts, pad_to,
    capacity). ``rows`` bounds every permuted buffer; ``host_counts`` is a NumPy copy of
    the counts when moe_plan was asked for it."""

    def __init__(self, storage, tokens, top_k, experts, pad_to=1, capacity=0, host_counts=None):
        self.storage = storage
        self.layout = (int(tokens), int(top_k), int(experts), int(pad_to), int(capacity))
        self.rows, size = _kfuse.moe_plan_layout(*self.layout)
        if int(storage.shape[0]) != size:
            raise ValueError(f"MoePlan: storage has {storage.shape[0]} elements, the layout "
                             f"needs {size}")
        self.host_counts = host_counts

    tokens = property(lambda self: self.layout[0])
    top_k = property(lambda self: self.layout[1])
    experts = property(lambda self: self.layout[2])

    @property
    def counts(self):
        return self.storage[: self.experts]

    @property
    def offsets(self):
        return self.storage[self.experts: 2 * self.experts + 1]

    @property
    def row_slot(self):
        start = 2 * self.experts + 1
        return self.storage[start: start + self.rows]

    @property
    def slot_row(self):
        start = 2 * self.experts + 1 + self.rows
        return self.storage[start: start + self.tokens * self.top_k]

    def __repr__(self):
        t, k, e, p, c = self.layout
        return f"MoePlan(tokens={t}, top_k={k}, experts={e}, pad_to={p}, capacity={c}, rows={self.rows})"


def _plan(op, plan):
    if not isinstance(plan, MoePlan):
        raise TypeError(f"{op}: argument 'plan' is a {type(plan).__name__}, not a kfuse.MoePlan")
    return plan.storage, plan.layout


def _weights(op, name, W, experts):
    """W as the [E*K x N] matrix the library takes (3-D arrays are reshaped, a view)."""
    W = as_array(W, op, name)
    if W is not None and len(W.shape) == 3:
        if int(W.shape[0]) != experts:
            raise ValueError(f"{op}: argument '{name}' has {W.shape[0]} experts, the plan {experts}")
        W = W.reshape(int(W.shape[0]) * int(W.shape[1]), int(W.shape[2]))
    return W


def moe_router_topk(logits, k, *, mode=RouterMode.SoftmaxTopK, renormalize=False, stream=None):
    """The router: logits [T x E] -> (ids [T x k] int32, gates [T x k] float32), experts
    by decreasing logit, ties to the lower index."""
    op = "moe_router_topk"
    logits = as_array(logits, op, "logits")
    T, _ = shape2(op, "logits", logits)
    ids, gates = empty(logits, (T, k), "int32"), empty(logits, (T, k), "float32")
    _kfuse.moe_router_topk(logits, ids, gates, mode=enum(RouterMode, mode, op, "mode"),
                           renormalize=renormalize, **execution(logits, stream))
    return ids, gates


def moe_plan(ids, experts, *, pad_to=1, capacity=0, check_device_ids=False, host_counts=False,
             stream=None):
    """The dispatch plan of ids [T x k] (int32) over `experts` experts. host_counts=True
    also copies the counts to the host (plan.host_counts; waits for the device)."""
    op = "moe_plan"
    ids = as_array(ids, op, "ids")
    T, k = shape2(op, "ids", ids)
    _, size = _kfuse.moe_plan_layout(T, k, int(experts), pad_to, capacity)
    storage = empty(ids, (size,), "int32")
    counts = np.empty((int(experts),), np.int32) if host_counts else None
    layout = [T, k, int(experts), int(pad_to), int(capacity)]
    _kfuse.moe_plan(ids, storage, layout, check_device_ids=check_device_ids,
                    host_counts=counts, **execution(ids, stream))
    return MoePlan(storage, *layout, host_counts=counts)


def moe_scatter(plan, X, *, stream=None):
    """Xp [rows x H]: Xp[row of slot (t, j)] = X[t]; padding rows zero."""
    storage, layout = _plan("moe_scatter", plan)
    X = as_array(X, "moe_scatter", "X")
    _, H = shape2("moe_scatter", "X", X)
    Xp = empty(X, (plan.rows, H))
    _kfuse.moe_scatter(storage, layout, X, Xp, **execution(X, stream))
    return Xp


def moe_scatter_backward(plan, dXp, *, stream=None):
    """dX [T x H] = sum over the token's kept slots of dXp[row]."""
    storage, layout = _plan("moe_scatter_backward", plan)
    dXp = as_array(dXp, "moe_scatter_backward", "dXp")
    _, H = shape2("moe_scatter_backward", "dXp", dXp)
    dX = empty(dXp, (plan.tokens, H))
    _kfuse.moe_scatter_backward(storage, layout, dXp, dX, **execution(dXp, stream))
    return dX


def moe_gather(plan, Yp, gates, *, stream=None):
    """Y [T x H] = sum_j gates[t, j] Yp[row of (t, j)] (the combine)."""
    op = "moe_gather"
    storage, layout = _plan(op, plan)
    Yp, gates = as_array(Yp, op, "Yp"), as_array(gates, op, "gates")
    _, H = shape2(op, "Yp", Yp)
    Y = empty(Yp, (plan.tokens, H))
    _kfuse.moe_gather(storage, layout, Yp, gates, Y, **execution(Yp, stream))
    return Y


def moe_gather_backward(plan, Yp, gates, dY, *, stream=None):
    """(dYp [rows x H] = g dY[t], dgates [T x k] = <Yp[row], dY[t]>)."""
    op = "moe_gather_backward"
    storage, layout = _plan(op, plan)
    Yp, gates, dY = (as_array(a, op, n) for a, n in ((Yp, "Yp"), (gates, "gates"), (dY, "dY")))
    _, H = shape2(op, "Yp", Yp)
    dYp = empty(Yp, (plan.rows, H))
    dgates = empty(Yp, (plan.tokens, plan.top_k), "float32")
    _kfuse.moe_gather_backward(storage, layout, Yp, gates, dY, dYp, dgates,
                               **execution(Yp, stream))
    return dYp, dgates


def _out_cols(op, W, experts, transpose_w):
    rows, cols = shape2(op, "W", W)
    return rows // experts if transpose_w else cols


def moe_grouped_gemm(plan, Xp, W, *, transpose_w=False, stream=None):
    """Yp [rows x N] = Xp_e W_e per expert; W [E x K x N] (or [E x N x K] with
    transpose_w)."""
    op = "moe_grouped_gemm"
    storage, layout = _plan(op, plan)
    Xp, W = as_array(Xp, op, "Xp"), _weights(op, "W", W, plan.experts)
    Yp = empty(Xp, (plan.rows, _out_cols(op, W, plan.experts, transpose_w)))
    _kfuse.moe_grouped_gemm(storage, layout, Xp, W, Yp, transpose_w=transpose_w,
                            **execution(Xp, stream))
    return Yp


def moe_gather_gemm(plan, X, W, *, transpose_w=False, stream=None):
    """moe_grouped_gemm with the scatter fused into it: X [T x K] in token order."""
    op = "moe_gather_gemm"
    storage, layout = _plan(op, plan)
    X, W = as_array(X, op, "X"), _weights(op, "W", W, plan.experts)
    Yp = empty(X, (plan.rows, _out_cols(op, W, plan.experts, transpose_w)))
    _kfuse.moe_gather_gemm(storage, layout, X, W, Yp, transpose_w=transpose_w,
                           **execution(X, stream))
    return Yp


def moe_gemm_combine(plan, Hp, W, gates, *, transpose_w=False, stream=None):
    """Y [T x N] = sum_j gates[t, j] (Hp[row] W_e): the down-projection and the combine."""
    op = "moe_gemm_combine"
    storage, layout = _plan(op, plan)
    Hp, W, gates = (as_array(Hp, op, "Hp"), _weights(op, "W", W, plan.experts),
                    as_array(gates, op, "gates"))
    Y = empty(Hp, (plan.tokens, _out_cols(op, W, plan.experts, transpose_w)))
    _kfuse.moe_gemm_combine(storage, layout, Hp, W, gates, Y, transpose_w=transpose_w,
                            **execution(Hp, stream))
    return Y


def moe_grouped_gemm_wgrad(plan, Xp, dYp, *, stream=None):
    """dW [E x K x N], dW_e = Xp_e^T dYp_e."""
    op = "moe_grouped_gemm_wgrad"
    storage, layout = _plan(op, plan)
    Xp, dYp = as_array(Xp, op, "Xp"), as_array(dYp, op, "dYp")
    _, K = shape2(op, "Xp", Xp)
    _, N = shape2(op, "dYp", dYp)
    dW = empty(Xp, (plan.experts, K, N))
    _kfuse.moe_grouped_gemm_wgrad(storage, layout, Xp, dYp, dW.reshape(plan.experts * K, N),
                                  **execution(Xp, stream))
    return dW


def moe_mlp_forward(plan, X, gates, w1, w3, w2, *, save=True, stream=None):
    """SwiGLU experts: Y [T x H] = sum_j g_tj (silu(x W1_e) * (x W3_e)) W2_e, with
    w1, w3 [E x H x F] and w2 [E x F x H]. save=True returns (Y, h1, h3), the
    activations [rows x F] the backward can reuse; save=False returns Y."""
    op = "moe_mlp_forward"
    storage, layout = _plan(op, plan)
    X, gates = as_array(X, op, "X"), as_array(gates, op, "gates")
    w1, w3, w2 = (_weights(op, n, w, plan.experts) for n, w in (("w1", w1), ("w3", w3), ("w2", w2)))
    T, H = shape2(op, "X", X)
    _, F = shape2(op, "w1", w1)
    Y = empty(X, (T, H))
    h1 = empty(X, (plan.rows, F)) if save else None
    h3 = empty(X, (plan.rows, F)) if save else None
    _kfuse.moe_mlp_forward(storage, layout, X, gates, w1, w3, w2, Y, h1, h3,
                           **execution(X, stream))
    return (Y, h1, h3) if save else Y


def moe_mlp_backward(plan, X, gates, w1, w3, w2, dY, h1=None, h3=None, *, stream=None):
    """Gradients of <dY, Y>: (dX, dgates, dw1, dw3, dw2), the weights' gradients in the
    weights' shapes. h1, h3: the forward's saved activations, or None to recompute."""
    op = "moe_mlp_backward"
    storage, layout = _plan(op, plan)
    X, gates, dY = (as_array(a, op, n) for a, n in ((X, "X"), (gates, "gates"), (dY, "dY")))
    shapes = [tuple(int(s) for s in w.shape) for w in (w1, w3, w2)]
    w1, w3, w2 = (_weights(op, n, w, plan.experts) for n, w in (("w1", w1), ("w3", w3), ("w2", w2)))
    T, H = shape2(op, "X", X)
    dX = empty(X, (T, H))
    dgates = empty(X, (plan.tokens, plan.top_k), "float32")
    dws = [empty(X, s) for s in shapes]
    flat = [d.reshape(int(w.shape[0]), int(w.shape[1])) for d, w in zip(dws, (w1, w3, w2))]
    _kfuse.moe_mlp_backward(storage, layout, X, gates, w1, w3, w2, dY, h1, h3, dX, dgates, *flat,
                            **execution(X, stream))
    return (dX, dgates, *dws)
