"""kfuse.torch's custom operators: opcheck (schema, fake tensors, autograd registration,
AOT dispatch), gradients (gradcheck in float64 where the op has fp64; against a float64
PyTorch reference otherwise) and torch.compile(fullgraph=True)."""
import math

import pytest

torch = pytest.importorskip("torch")
import kfuse  # noqa: E402
import kfuse.torch as kt  # noqa: E402
from kfuse.torch import ops  # noqa: E402

F = torch.nn.functional


def rand(*shape, dtype=torch.float64, grad=True, scale=1.0):
    return (torch.randn(*shape, dtype=dtype) * scale).requires_grad_(grad)


def unit(n, d, grad=True):
    return F.normalize(torch.randn(n, d), dim=1).requires_grad_(grad)


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def kernel(X, Y, sigma):
    return torch.exp(-torch.cdist(X, Y) ** 2 / (2 * sigma**2))


# ------------------------------------------------------------------ opcheck

def opcheck(op, args):
    torch.library.opcheck(op, args)


def test_opcheck_contrastive():
    A, B, t = unit(9, 6), unit(9, 6), torch.tensor(2.0, requires_grad=True)
    opcheck(ops.clip_loss_fwd, (A, B, t, 0.1, True))
    f = ops.clip_loss_fwd(A, B, t, 0.1, True)
    opcheck(ops.clip_loss_bwd, (A.detach(), B.detach(), t.detach(), f[1].detach(),
                                f[2].detach(), torch.tensor(1.0), 0.1, True))
    b = torch.tensor(-3.0, requires_grad=True)
    opcheck(ops.siglip_loss_fwd, (A, B, t, b, True))
    opcheck(ops.siglip_loss_bwd, (A.detach(), B.detach(), t.detach(), b.detach(),
                                  torch.tensor(1.0), True))


def test_opcheck_contrastive_labels_and_direction():
    # A distributed loss's shapes: 4 local rows against 9 gathered columns, one
    # direction at a time (the other's log-sum-exps an empty tensor), and SigLIP rows
    # with no positive (-1).
    A, B, t = unit(4, 6), unit(9, 6), torch.tensor(2.0, requires_grad=True)
    labels = torch.arange(4) + 4
    for direction, lab in (("AtoB", labels), ("BtoA", labels), ("Both", None)):
        X, Y = (A, B) if direction == "AtoB" else (B, A) if direction == "BtoA" else (B, B)
        args = (X, Y, t, 0.0, True, lab, direction, True)
        opcheck(ops.clip_loss_fwd, args)
        f = ops.clip_loss_fwd(*args)
        assert f[1].shape[0] == (X.shape[0] if direction != "BtoA" else 0)
        assert f[2].shape[0] == (Y.shape[0] if direction != "AtoB" else 0)
        opcheck(ops.clip_loss_bwd, (X.detach(), Y.detach(), t.detach(), f[1].detach(),
                                    f[2].detach(), torch.tensor(1.0), 0.0, True, lab,
                                    direction, False))
    b = torch.tensor(-3.0, requires_grad=True)
    negatives = torch.tensor([-1, 2, -1, 8])
    opcheck(ops.siglip_loss_fwd, (A, B, t, b, True, negatives, True))
    opcheck(ops.siglip_loss_bwd, (A.detach(), B.detach(), t.detach(), b.detach(),
                                  torch.tensor(1.0), True, negatives, False))


def test_opcheck_gauss():
    X, Y, V = rand(7, 3), rand(5, 3), rand(5, 2)
    opcheck(ops.gauss_matvec_op, (X, Y, V, 0.9))
    opcheck(ops.gauss_matvec_grad_x_op, (X.detach(), Y.detach(), V.detach(),
                                         rand(7, 2, grad=False), 0.9))
    opcheck(ops.kde_op, (X, Y.detach(), None, 0.9, True))
    opcheck(ops.kde_op, (X, Y.detach(), torch.rand(5, dtype=torch.float64) + 0.1, 0.9, False))
    opcheck(ops.mean_shift_step_op, (X.detach(), Y.detach(), None, 0.9))
    opcheck(ops.mmd2_op, (X, Y, 0.9, False))


def moe_inputs(T=11, k=2, E=4, H=8, Fd=12, dtype=torch.float32, grad=True):
    torch.manual_seed(1)
    X = (torch.randn(T, H, dtype=dtype)).requires_grad_(grad)
    logits = torch.randn(T, E)
    gates, ids = torch.topk(logits.softmax(-1), k)
    gates = gates.detach().requires_grad_(grad)
    w1 = (torch.randn(E, H, Fd, dtype=dtype) * 0.3).requires_grad_(grad)
    w3 = (torch.randn(E, H, Fd, dtype=dtype) * 0.3).requires_grad_(grad)
    w2 = (torch.randn(E, Fd, H, dtype=dtype) * 0.3).requires_grad_(grad)
    return X, gates, ids.to(torch.int32), w1, w3, w2


def test_opcheck_moe():
    X, gates, ids, w1, w3, w2 = moe_inputs()
    E = w1.shape[0]
    opcheck(ops.moe_plan_op, (ids, E, 1, 0))
    opcheck(ops.moe_mlp_fwd, (X, gates, ids, w1, w3, w2))
    plan = kt.moe_plan(ids, E)
    T, k = ids.shape
    opcheck(ops.moe_scatter_op, (X, plan.storage, k, E, 1, 0))
    Yp = torch.randn(plan.rows, 8, requires_grad=True)
    opcheck(ops.moe_gather_op, (Yp, gates, plan.storage, E, 1, 0))
    opcheck(ops.moe_scatter_backward_op, (Yp.detach(), plan.storage, T, k, E, 1, 0))
    opcheck(ops.moe_gather_backward_op, (Yp.detach(), gates.detach(), torch.randn(T, 8),
                                         plan.storage, E, 1, 0))
    Y, storage, h1, h3 = ops.moe_mlp_fwd(X, gates, ids, w1, w3, w2)
    opcheck(ops.moe_mlp_bwd, tuple(a.detach() for a in (storage, X, gates, w1, w3, w2)) +
            (torch.randn_like(Y), h1.detach(), h3.detach()))


# ------------------------------------------------------------------ gradients

def test_gradcheck_gauss_float64():
    X, Y, V = rand(6, 3), rand(5, 3), rand(5, 2)
    assert torch.autograd.gradcheck(lambda x, y, v: kt.gauss_matvec(x, y, v, 0.8), (X, Y, V))
    Q, S = rand(4, 2), rand(7, 2, grad=False)
    w = torch.rand(7, dtype=torch.float64) + 0.2
    assert torch.autograd.gradcheck(lambda q: kt.kde(q, S, w, sigma=0.7), (Q,))
    assert torch.autograd.gradcheck(lambda q: kt.kde(q, S, sigma=0.7, log=False), (Q,))
    for unbiased in (False, True):
        assert torch.autograd.gradcheck(lambda x, y: kt.mmd2(x, y, sigma=1.2, unbiased=unbiased),
                                        (rand(5, 3), rand(6, 3)))


def test_gauss_matvec_forward_against_reference():
    X, Y, V = rand(6, 3), rand(5, 3), rand(5, 2)
    torch.testing.assert_close(kt.gauss_matvec(X, Y, V, 0.8), kernel(X, Y, 0.8) @ V)


def clip_ref(A, B, t, eps=0.0):
    S = t.exp() * A @ B.T
    lab = torch.arange(A.shape[0])
    return (F.cross_entropy(S, lab, label_smoothing=eps) +
            F.cross_entropy(S.T, lab, label_smoothing=eps)) / 2


def test_clip_loss_gradients_against_float64_reference():
    A, B = unit(16, 8), unit(16, 8)
    t = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    loss = kt.clip_loss(A, B, t, label_smoothing=0.1)
    loss.backward()
    A64, B64, t64 = (x.detach().double().requires_grad_() for x in (A, B, t))
    ref = clip_ref(A64, B64, t64, 0.1)
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    for got, want in ((A.grad, A64.grad), (B.grad, B64.grad), (t.grad, t64.grad)):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_clip_loss_one_direction_with_labels_against_float64_reference(direction):
    # open_clip's local loss: 5 local rows against 15 gathered ones, pairs at 5 + i.
    local, gathered = unit(5, 8), unit(15, 8)
    t = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    labels = torch.arange(5) + 5
    A, B = (local, gathered) if direction == "AtoB" else (gathered, local)
    loss = kt.clip_loss(A, B, t, labels=labels, direction=direction)
    loss.backward()
    L64, G64, t64 = (x.detach().double().requires_grad_() for x in (local, gathered, t))
    ref = F.cross_entropy(t64.exp() * L64 @ G64.T, labels)
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    for got, want in ((local.grad, L64.grad), (gathered.grad, G64.grad), (t.grad, t64.grad)):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


def test_siglip_negative_rows_against_float64_reference():
    A, B = unit(6, 8), unit(6, 8)
    t, b = torch.tensor(math.log(10.0), requires_grad=True), torch.tensor(-3.0, requires_grad=True)
    labels = torch.tensor([-1, 3, -1, -1, 0, -1])
    loss = kt.siglip_loss(A, B, t, b, labels=labels)
    loss.backward()
    A64, B64, t64, b64 = (x.detach().double().requires_grad_() for x in (A, B, t, b))
    z = -torch.ones(6, 6, dtype=torch.float64)
    z[1, 3] = z[4, 0] = 1
    ref = -F.logsigmoid(z * (t64.exp() * A64 @ B64.T + b64)).sum() / 6
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    for got, want in ((A.grad, A64.grad), (B.grad, B64.grad), (t.grad, t64.grad),
                      (b.grad, b64.grad)):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Input #:UserWarning")
def test_clip_loss_finite_differences_fp32():
    # The library's losses have no fp64 path: a finite-difference check in fp32. With
    # eps = 1e-2 on a loss of size ~3 the central difference's rounding error is about
    # 3 * 2^-24 / 1e-2 ~ 2e-5 and its truncation error eps^2 |f'''| / 6 ~ 1e-4 for
    # unit-norm features and tau = 2; atol = 2e-3 leaves a 10x margin.
    A, B = unit(6, 4), unit(6, 4)
    t = torch.tensor(math.log(2.0), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, s: kt.clip_loss(a, b, s), (A, B, t), eps=1e-2,
                                    atol=2e-3, rtol=1e-2, fast_mode=False)
    bias = torch.tensor(-1.0, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, s, c: kt.siglip_loss(a, b, s, c),
                                    (A, B, t, bias), eps=1e-2, atol=2e-3, rtol=1e-2)


def test_siglip_gradients_against_float64_reference():
    A, B = unit(12, 8), unit(12, 8)
    t, b = torch.tensor(math.log(10.0), requires_grad=True), torch.tensor(-10.0, requires_grad=True)
    loss = kt.siglip_loss(A, B, t, b)
    loss.backward()
    A64, B64, t64, b64 = (x.detach().double().requires_grad_() for x in (A, B, t, b))
    S = t64.exp() * A64 @ B64.T + b64
    z = 2 * torch.eye(12, dtype=torch.float64) - 1
    ref = -F.logsigmoid(z * S).sum() / 12
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    for got, want in ((A.grad, A64.grad), (B.grad, B64.grad), (t.grad, t64.grad), (b.grad, b64.grad)):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


def moe_reference(X, gates, ids, w1, w3, w2):
    Y = torch.zeros_like(X)
    T, k = ids.shape
    for t in range(T):
        for j in range(k):
            e = int(ids[t, j])
            a = F.silu(X[t] @ w1[e]) * (X[t] @ w3[e])
            Y = Y.index_add(0, torch.tensor([t]), (gates[t, j] * (a @ w2[e]))[None])
    return Y


def test_moe_mlp_gradients_against_reference():
    X, gates, ids, w1, w3, w2 = moe_inputs()
    dY = torch.randn(X.shape)
    Y = kt.moe_mlp(X, gates, ids, w1, w3, w2)
    Y.backward(dY)
    ref_in = [x.detach().double().requires_grad_() for x in (X, gates, w1, w3, w2)]
    R = moe_reference(ref_in[0], ref_in[1], ids, *ref_in[2:])
    R.backward(dY.double())
    torch.testing.assert_close(Y.double(), R, rtol=1e-4, atol=1e-5)
    for got, ref in zip((X, gates, w1, w3, w2), ref_in):
        torch.testing.assert_close(got.grad.double(), ref.grad, rtol=1e-4, atol=1e-4)


def test_moe_scatter_gather_gradients():
    X, gates, ids, *_ = moe_inputs()
    plan = kt.moe_plan(ids, 4)
    Xp = kt.moe_scatter(plan, X)
    Y = kt.moe_gather(plan, Xp * 2, gates)
    Y.sum().backward()
    # Y[t] = 2 X[t] sum_j g_tj: dX = 2 sum_j g_tj, dg_tj = 2 sum_h X[t, h].
    torch.testing.assert_close(X.grad, 2 * gates.detach().sum(1, keepdim=True).expand_as(X))
    torch.testing.assert_close(gates.grad, 2 * X.detach().sum(1, keepdim=True).expand_as(gates))


# ------------------------------------------------------------------ torch.compile

def test_compiled_gauss_and_mmd():
    X, Y, V = rand(6, 3, dtype=torch.float32), rand(5, 3, dtype=torch.float32), rand(5, 2, dtype=torch.float32)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x, y, v):
        return kt.gauss_matvec(x, y, v, 0.8).sum() + kt.mmd2(x, y) + kt.kde(x, y.detach()).sum()

    out = f(X, Y, V)
    out.backward()
    assert X.grad is not None and V.grad is not None and torch.isfinite(out)


def test_compiled_siglip_and_moe_rows():
    A, B = unit(8, 6), unit(8, 6)
    t, b = torch.tensor(1.0, requires_grad=True), torch.tensor(-2.0, requires_grad=True)
    X, gates, ids, *_ = moe_inputs()
    plan = kt.moe_plan(ids, 4)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(a, bb, t, b, x, g):
        y = kt.moe_gather(plan, kt.moe_scatter(plan, x) * 2, g)
        return kt.siglip_loss(a, bb, t, b) + y.pow(2).mean()

    out = f(A, B, t, b, X, gates)
    out.backward()
    ref_in = [z.detach().clone().requires_grad_() for z in (A, B, t, b, X, gates)]
    ref = kt.siglip_loss(*ref_in[:4]) + kt.moe_gather(
        plan, kt.moe_scatter(plan, ref_in[4]) * 2, ref_in[5]).pow(2).mean()
    ref.backward()
    torch.testing.assert_close(out, ref)
    for got, want in zip((A, B, t, b, X, gates), ref_in):
        torch.testing.assert_close(got.grad, want.grad)


def test_fake_plan_sizes_are_the_library_layout():
    import itertools

    from kfuse import _kfuse

    for T, k, E, pad, cap in itertools.product((0, 1, 7, 64), (1, 2, 3), (3, 8), (1, 4, 16),
                                               (0, 1, 5, 40)):
        if k > E:
            continue
        assert ops._plan_size(T, k, E, pad, cap) == _kfuse.moe_plan_layout(T, k, E, pad, cap), \
            (T, k, E, pad, cap)


def test_compiled_moe_with_dynamic_token_counts():
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    block = kt.SparseMoeBlock(8, 16, 4, 2)
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(block, fullgraph=True, dynamic=True, backend=counter)
    for tokens in (5, 9, 13):
        x = torch.randn(tokens, 8, requires_grad=True)
        y = step(x)
        y.sum().backward()
        torch.testing.assert_close(y, block(x))
    # The fake plan sizes are symbolic in the token count: one graph for every count.
    assert counter.frame_count == 1


# ------------------------------------------------------------------ fusion

def test_opcheck_fuse():
    A, B = rand(5, 3), rand(5, 4)
    opcheck(ops.kron_fuse_op, ([A, B], [0, 1], [1.0, 1.0], [0, 0], 7))
    opcheck(ops.kron_fuse_backward_op, ([A.detach(), B.detach()], rand(5, 12, grad=False),
                                        [1, 0], [1.0, 1.0], [0, 0], 7))
    A32, B32 = rand(5, 3, dtype=torch.float32), rand(5, 4, dtype=torch.float32)
    args = ([1, 2], [1.0, 0.8], [0, 3], -5, "Gaussian", "AuthorsCompat", "Exact")
    opcheck(ops.rp_fuse_op, ([A32, B32], 8) + args)
    opcheck(ops.rp_fuse_backward_op, ([A32.detach(), B32.detach()],
                                      rand(5, 8, dtype=torch.float32, grad=False)) + args)


def test_gradcheck_kron_fuse_float64():
    for sides in (None, ["cosine", "linear"], ["linear", "cosine", "cosine"]):
        inputs = [rand(4, d) for d in (3, 2, 3)[:len(sides or (0, 0))]]
        assert torch.autograd.gradcheck(lambda *a: kt.kron_fuse(list(a), sides=sides),
                                        tuple(inputs))


def rp_reference(inputs, l, sides, seed, scaling="unbiased"):
    """Z in float64 by PyTorch, U from kfuse.rp_projection_matrix."""
    s = 1 / math.sqrt(l)
    z = None
    for j, (a, side) in enumerate(zip(inputs, sides)):
        U = kfuse.rp_projection_matrix(j, a.shape[1], l, seed=seed, like=a).double()
        phi = F.normalize(a, dim=1) if side == "cosine" else a
        f = phi @ U * (s if scaling == "authorscompat" else 1.0)
        z = f if z is None else z * f
    return z * (s if scaling == "unbiased" else 1.0)


def test_rp_fuse_gradients_against_float64_reference():
    sides = ["cosine", "linear", "cosine"]
    for scaling in ("unbiased", "authorscompat"):
        inputs = [rand(6, d, dtype=torch.float32) for d in (4, 3, 5)]
        G = torch.randn(6, 16)
        z = kt.rp_fuse(inputs, 16, sides=sides, seed=3, scaling=scaling)
        z.backward(G)
        ref_in = [a.detach().double().requires_grad_() for a in inputs]
        ref = rp_reference(ref_in, 16, sides, 3, scaling)
        ref.backward(G.double())
        torch.testing.assert_close(z.double(), ref.detach(), rtol=1e-5, atol=1e-6)
        for a, r in zip(inputs, ref_in):
            torch.testing.assert_close(a.grad.double(), r.grad, rtol=1e-4, atol=1e-6)


def test_rp_fuse_bf16_gradients_are_bf16():
    A, B = rand(4, 3, dtype=torch.bfloat16), rand(4, 2, dtype=torch.bfloat16)
    kt.rp_fuse([A, B], 8).sum().backward()
    assert A.grad.dtype == torch.bfloat16 and B.grad.shape == B.shape


@pytest.mark.filterwarnings("ignore:Input #:UserWarning")
def test_rp_fuse_finite_differences_fp32():
    # rp_fuse is fp32 only. With linear sides every Z is linear in each single input
    # entry, so the central difference has no truncation error; its rounding error is
    # ~|Z| 2^-24 / eps ~ 3 * 6e-8 / 1e-2 ~ 2e-5 for |Z| ~ 3 (d <= 4, l = 6): atol 1e-3
    # leaves a 50x margin. A cosine side adds truncation eps^2 |f'''| / 6 ~ 1e-4 for
    # rows of norm ~1 (|f'''| ~ 1 / |a|^3): still under atol.
    inputs = tuple(rand(3, d, dtype=torch.float32) for d in (2, 4))
    for sides in (None, ["linear", "cosine"]):
        assert torch.autograd.gradcheck(lambda *a: kt.rp_fuse(list(a), 6, sides=sides, seed=1),
                                        inputs, eps=1e-2, atol=1e-3, rtol=1e-2, fast_mode=False)


def test_compiled_rp_and_kron_fuse():
    inputs = [rand(5, d, dtype=torch.float32) for d in (3, 4)]

    def f(a, b):
        return (kt.rp_fuse([a, b], 8, sides=["cosine", "linear"]) ** 2).sum() + \
            kt.kron_fuse([a, b]).sum()

    got = torch.compile(f, fullgraph=True)(*inputs)
    torch.testing.assert_close(got, f(*inputs))


# ------------------------------------------------------------------ torch.func

@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
def test_vmap_clip_loss_and_gauss_matvec():
    # PyTorch's fallback for custom ops without a vmap rule: one call per batch entry.
    A, B = torch.stack([unit(6, 4, grad=False) for _ in range(3)]), unit(6, 4, grad=False)
    t = torch.tensor(1.0)
    got = torch.func.vmap(lambda a: kt.clip_loss(a, B, t))(A)
    torch.testing.assert_close(got, torch.stack([kt.clip_loss(a, B, t) for a in A]))
    X, Y, V = rand(2, 5, 3, grad=False), rand(4, 3, grad=False), rand(4, 2, grad=False)
    got = torch.func.vmap(lambda x: kt.gauss_matvec(x, Y, V, 0.9))(X)
    torch.testing.assert_close(got, torch.stack([kt.gauss_matvec(x, Y, V, 0.9) for x in X]))


def test_vmap_fuse_folds_the_batch_into_rows():
    A = rand(5, 3, 4, dtype=torch.float32, grad=False)  # batch dim 1
    B = rand(5, 2, dtype=torch.float32, grad=False)     # not batched
    rp = torch.func.vmap(lambda a: kt.rp_fuse([a, B], 8, sides=["cosine", "linear"], seed=4),
                         in_dims=1)(A)
    want = torch.stack([kt.rp_fuse([A[:, i], B], 8, sides=["cosine", "linear"], seed=4)
                        for i in range(3)])
    torch.testing.assert_close(rp, want)
    kron = torch.func.vmap(lambda a: kt.kron_fuse([a, B]), in_dims=1)(A)
    torch.testing.assert_close(kron, torch.stack([kt.kron_fuse([A[:, i], B]) for i in range(3)]))
    G = torch.randn(3, 5, 8)
    opts = ([0, 0], [1.0, 1.0], [0, 0], 4, "Uniform", "Unbiased", "Exact")
    dA, dB = torch.func.vmap(lambda a, g: ops.rp_fuse_backward_op([a, B], g, *opts),
                             in_dims=(1, 0))(A, G)
    for i in range(3):
        wa, wb = ops.rp_fuse_backward_op([A[:, i].contiguous(), B], G[i].contiguous(), *opts)
        torch.testing.assert_close(dA[i], wa)
        torch.testing.assert_close(dB[i], wb)


# torch.library.custom_op's autograd registration builds an autograd.Function without
# setup_context, which torch.func's grad and vjp reject ("In order to use an
# autograd.Function with functorch transforms (vmap, grad, jvp, jacrev, ...), it must
# override the setup_context staticmethod", PyTorch 2.15). When PyTorch lifts that,
# these pass: then say so in README's Python section.
@pytest.mark.xfail(raises=RuntimeError, reason="custom_op autograd under torch.func.grad")
def test_func_grad_through_custom_ops():
    A, B = unit(6, 4, grad=False), unit(6, 4, grad=False)
    t = torch.tensor(1.0)
    g = torch.func.grad(lambda a: kt.clip_loss(a, B, t))(A)
    A.requires_grad_()
    kt.clip_loss(A, B, t).backward()
    torch.testing.assert_close(g, A.grad)
