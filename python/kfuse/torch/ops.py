"""kfuse's operations as torch.library custom operators (namespace ``kfuse``).

Each op with a backward in the library has a fake implementation (shapes only, for
torch.compile) and a registered autograd formula whose backward is itself a kfuse
custom op. On CUDA tensors the ops run on PyTorch's current stream, with workspace
from PyTorch's caching allocator (kfuse._arrays.execution).

Scalars that a training loop learns (CLIP/SigLIP's t and b) are 0-d float32 tensors in
the inputs' memory: the library reads them on the device, no host synchronisation.
"""

import torch
from torch import Tensor

import kfuse

_lib = "kfuse::"


def _scalar_tensor(x, like):
    """A 0-d float32 tensor on like's device (numbers become constants)."""
    if isinstance(x, Tensor):
        return x.reshape(()).to(dtype=torch.float32, device=like.device).contiguous()
    return torch.tensor(float(x), dtype=torch.float32, device=like.device)


def _autocast(tensors, allowed):
    """Under torch.autocast on the tensors' device, the floating tensors cast to the
    autocast dtype when the op takes it (`allowed`); otherwise the tensors as given.
    (torch.library.register_autocast would also cast the fp32 scalars t and b.)"""
    device = tensors[0].device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        if dtype in allowed:
            return [t.to(dtype) if t.is_floating_point() else t for t in tensors]
    return tensors


# ----------------------------------------------------------------- contrastive


# The pairs and the direction travel as labels (None: row i with row i; int64 [Na], or
# [Nb] for "BtoA") and the direction's name ("Both", "AtoB", "BtoA"). A direction
# without row (column) log-sum-exps returns an empty [0] tensor in their place: a custom
# op's outputs are tensors. check_labels=False skips the library's check of labels in
# device memory (a host synchronisation), for labels that are valid by construction.
def _has_rows(direction):
    return direction in ("Both", "AtoB")


def _has_cols(direction):
    return direction in ("Both", "BtoA")


@torch.library.custom_op(_lib + "clip_loss_fwd", mutates_args=())
def clip_loss_fwd(A: Tensor, B: Tensor, t: Tensor, label_smoothing: float, deterministic: bool,
                  labels: Tensor | None = None, direction: str = "Both",
                  check_labels: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    f = kfuse.clip_loss_forward(A, B, labels, logit_scale=t, label_smoothing=label_smoothing,
                                direction=direction, deterministic=deterministic,
                                check_device_labels=check_labels)
    none = A.new_empty((0,), dtype=torch.float32)
    return (f.loss, none if f.lse_rows is None else f.lse_rows,
            none if f.lse_cols is None else f.lse_cols)


@clip_loss_fwd.register_fake
def _(A, B, t, label_smoothing, deterministic, labels=None, direction="Both", check_labels=True):
    f32 = torch.float32
    return (A.new_empty((), dtype=f32),
            A.new_empty((A.shape[0] if _has_rows(direction) else 0,), dtype=f32),
            A.new_empty((B.shape[0] if _has_cols(direction) else 0,), dtype=f32))


@torch.library.custom_op(_lib + "clip_loss_bwd", mutates_args=())
def clip_loss_bwd(A: Tensor, B: Tensor, t: Tensor, lse_rows: Tensor, lse_cols: Tensor,
                  grad_loss: Tensor, label_smoothing: float, deterministic: bool,
                  labels: Tensor | None = None, direction: str = "Both",
                  check_labels: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    g = kfuse.clip_loss_backward(A, B, lse_rows if _has_rows(direction) else None,
                                 lse_cols if _has_cols(direction) else None, labels,
                                 grad_loss=grad_loss, logit_scale=t,
                                 label_smoothing=label_smoothing, direction=direction,
                                 deterministic=deterministic, check_device_labels=check_labels)
    return g.dA, g.dB, g.dt


@clip_loss_bwd.register_fake
def _(A, B, t, lse_rows, lse_cols, grad_loss, label_smoothing, deterministic, labels=None,
      direction="Both", check_labels=True):
    return torch.empty_like(A), torch.empty_like(B), t.new_empty(())


def _clip_setup(ctx, inputs, output):
    A, B, t, label_smoothing, deterministic, labels, direction, check_labels = inputs
    _, lse_rows, lse_cols = output
    ctx.save_for_backward(A, B, t, lse_rows, lse_cols, labels)
    ctx.options = (label_smoothing, deterministic)
    ctx.pairs = (direction, check_labels)


def _clip_backward(ctx, grad_loss, _grad_lse_rows, _grad_lse_cols):
    A, B, t, lse_rows, lse_cols, labels = ctx.saved_tensors
    dA, dB, dt = clip_loss_bwd(A, B, t, lse_rows, lse_cols,
                               grad_loss.to(torch.float32).contiguous(), *ctx.options, labels,
                               *ctx.pairs)
    return dA, dB, dt, None, None, None, None, None


clip_loss_fwd.register_autograd(_clip_backward, setup_context=_clip_setup)


def _labels_arg(labels, like):
    return None if labels is None else labels.to(dtype=torch.int64, device=like.device).contiguous()


def clip_loss(A, B, logit_scale, *, label_smoothing=0.0, deterministic=True, labels=None,
              direction="both", check_labels=True):
    """The CLIP loss of A [Na x d] and B [Nb x d] (float32, bfloat16 or float16) with
    logits exp(logit_scale) A B^T; differentiable in A, B and logit_scale (t, the log of
    the scale: open_clip's parameter before .exp()). direction "both" (default: the
    symmetric loss, Na == Nb), "AtoB" (the rows of A against all of B, labels [Na] in
    [0, Nb)) or "BtoA" (the columns, labels [Nb] in [0, Na)); labels default to i.
    Under torch.autocast, A and B are cast to the autocast dtype (tensor cores on a GPU);
    the loss is float32."""
    t = _scalar_tensor(logit_scale, A)
    direction = _name_of(kfuse.ClipDirection, direction, "kfuse.torch.clip_loss", "direction")
    A, B = _autocast([A, B], (torch.bfloat16, torch.float16))
    return clip_loss_fwd(A.contiguous(), B.contiguous(), t, float(label_smoothing),
                         bool(deterministic), _labels_arg(labels, A), direction,
                         bool(check_labels))[0]


@torch.library.custom_op(_lib + "siglip_loss_fwd", mutates_args=())
def siglip_loss_fwd(A: Tensor, B: Tensor, t: Tensor, b: Tensor, deterministic: bool,
                    labels: Tensor | None = None, check_labels: bool = True) -> Tensor:
    return kfuse.siglip_loss_forward(A, B, labels, logit_scale=t, bias=b,
                                     deterministic=deterministic,
                                     check_device_labels=check_labels).loss


@siglip_loss_fwd.register_fake
def _(A, B, t, b, deterministic, labels=None, check_labels=True):
    return A.new_empty((), dtype=torch.float32)


@torch.library.custom_op(_lib + "siglip_loss_bwd", mutates_args=())
def siglip_loss_bwd(A: Tensor, B: Tensor, t: Tensor, b: Tensor, grad_loss: Tensor,
                    deterministic: bool, labels: Tensor | None = None,
                    check_labels: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = kfuse.siglip_loss_backward(A, B, labels, grad_loss=grad_loss, logit_scale=t, bias=b,
                                   deterministic=deterministic,
                                   check_device_labels=check_labels)
    return g.dA, g.dB, g.dt, g.db


@siglip_loss_bwd.register_fake
def _(A, B, t, b, grad_loss, deterministic, labels=None, check_labels=True):
    return torch.empty_like(A), torch.empty_like(B), t.new_empty(()), b.new_empty(())


def _siglip_setup(ctx, inputs, output):
    A, B, t, b, deterministic, labels, check_labels = inputs
    ctx.save_for_backward(A, B, t, b, labels)
    ctx.options = (deterministic,)
    ctx.check_labels = check_labels


def _siglip_backward(ctx, grad_loss):
    A, B, t, b, labels = ctx.saved_tensors
    dA, dB, dt, db = siglip_loss_bwd(A, B, t, b, grad_loss.to(torch.float32).contiguous(),
                                     *ctx.options, labels, ctx.check_labels)
    return dA, dB, dt, db, None, None, None


siglip_loss_fwd.register_autograd(_siglip_backward, setup_context=_siglip_setup)


def siglip_loss(A, B, logit_scale, logit_bias, *, deterministic=True, labels=None,
                check_labels=True):
    """The SigLIP loss (1/Na) sum_ij softplus(-z_ij S_ij), S = exp(logit_scale) A B^T +
    logit_bias, z_ij = +1 where labels[i] == j (default: i == j) and -1 elsewhere;
    labels [Na] in [0, Nb) or -1 (a row with no positive pair in B: a distributed
    loss's block of another rank's texts). Differentiable in A, B, logit_scale (t, a
    log) and logit_bias."""
    t, b = _scalar_tensor(logit_scale, A), _scalar_tensor(logit_bias, A)
    A, B = _autocast([A, B], (torch.bfloat16, torch.float16))
    return siglip_loss_fwd(A.contiguous(), B.contiguous(), t, b, bool(deterministic),
                           _labels_arg(labels, A), bool(check_labels))


# ----------------------------------------------------------------- Gaussian kernel


@torch.library.custom_op(_lib + "gauss_matvec", mutates_args=())
def gauss_matvec_op(X: Tensor, Y: Tensor, V: Tensor, sigma: float) -> Tensor:
    return kfuse.gauss_matvec(X, Y, V, sigma=sigma)


@gauss_matvec_op.register_fake
def _(X, Y, V, sigma):
    return X.new_empty((X.shape[0], V.shape[1]))


@torch.library.custom_op(_lib + "gauss_matvec_grad_x", mutates_args=())
def gauss_matvec_grad_x_op(X: Tensor, Y: Tensor, V: Tensor, U: Tensor, sigma: float) -> Tensor:
    return kfuse.gauss_matvec_grad_x(X, Y, V, U, sigma=sigma)


@gauss_matvec_grad_x_op.register_fake
def _(X, Y, V, U, sigma):
    return torch.empty_like(X)


def _gauss_setup(ctx, inputs, output):
    X, Y, V, sigma = inputs
    ctx.save_for_backward(X, Y, V)
    ctx.sigma = sigma


def _gauss_backward(ctx, g):
    X, Y, V = ctx.saved_tensors
    g = g.contiguous()
    need_x, need_y, need_v, _ = ctx.needs_input_grad
    # <g, K(X, Y) V>: dX by the library's gradient; dY the same with the roles of
    # (X, g) and (Y, V) exchanged (K is symmetric); dV = K(Y, X) g.
    dX = gauss_matvec_grad_x_op(X, Y, V, g, ctx.sigma) if need_x else None
    dY = gauss_matvec_grad_x_op(Y, X, g, V, ctx.sigma) if need_y else None
    dV = gauss_matvec_op(Y, X, g, ctx.sigma) if need_v else None
    return dX, dY, dV, None


gauss_matvec_op.register_autograd(_gauss_backward, setup_context=_gauss_setup)


def gauss_matvec(X, Y, V, sigma=1.0):
    """K(X, Y) @ V, differentiable in X, Y and V (float32 or float64)."""
    vector = V.dim() == 1
    out = gauss_matvec_op(X.contiguous(), Y.contiguous(),
                          (V.reshape(-1, 1) if vector else V).contiguous(), float(sigma))
    return out.reshape(-1) if vector else out


@torch.library.custom_op(_lib + "kde", mutates_args=())
def kde_op(Q: Tensor, Y: Tensor, weights: Tensor | None, sigma: float, log: bool) -> Tensor:
    return kfuse.kde(Q, Y, weights, sigma=sigma, log=log)


@kde_op.register_fake
def _(Q, Y, weights, sigma, log):
    return Q.new_empty((Q.shape[0],))


@torch.library.custom_op(_lib + "mean_shift_step", mutates_args=())
def mean_shift_step_op(X: Tensor, Y: Tensor, weights: Tensor | None, sigma: float) -> Tensor:
    return kfuse.mean_shift_step(X, Y, weights, sigma=sigma)


@mean_shift_step_op.register_fake
def _(X, Y, weights, sigma):
    return torch.empty_like(X)


def _kde_setup(ctx, inputs, output):
    Q, Y, weights, sigma, log = inputs
    ctx.save_for_backward(Q, Y, weights, output)
    ctx.options = (sigma, log)


def _kde_backward(ctx, g):
    Q, Y, weights, out = ctx.saved_tensors
    sigma, log = ctx.options
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        raise NotImplementedError("kfuse.torch.kde: gradients flow to the queries only, "
                                  "not to the sample Y or the weights")
    # grad log p(q) = (mean_shift(q) - q) / sigma^2; grad p = p grad log p.
    step = (mean_shift_step_op(Q, Y, weights, sigma) - Q) / (sigma * sigma)
    scale = g if log else g * out
    return scale[:, None] * step, None, None, None, None


kde_op.register_autograd(_kde_backward, setup_context=_kde_setup)


def kde(queries, Y, weights=None, *, sigma=1.0, log=True):
    """(Log-)density of each query under the Gaussian KDE of Y, differentiable in the
    queries."""
    w = None if weights is None else weights.contiguous()
    return kde_op(queries.contiguous(), Y.contiguous(), w, float(sigma), bool(log))


@torch.library.custom_op(_lib + "mmd2", mutates_args=())
def mmd2_op(X: Tensor, Y: Tensor, sigma: float, unbiased: bool) -> Tensor:
    return kfuse.mmd2(X, Y, sigma=sigma, unbiased=unbiased)


@mmd2_op.register_fake
def _(X, Y, sigma, unbiased):
    return X.new_empty(())


def _mmd2_setup(ctx, inputs, output):
    X, Y, sigma, unbiased = inputs
    ctx.save_for_backward(X, Y)
    ctx.options = (sigma, unbiased)


def _mmd2_backward(ctx, g):
    X, Y = ctx.saved_tensors
    sigma, unbiased = ctx.options
    m, n = X.shape[0], Y.shape[0]
    cxx = 1.0 / (m * (m - 1)) if unbiased else 1.0 / (m * m)
    cyy = 1.0 / (n * (n - 1)) if unbiased else 1.0 / (n * n)
    cxy = 1.0 / (m * n)
    ones_m = g.reshape(1, 1).expand(m, 1).contiguous()
    ones_n = g.reshape(1, 1).expand(n, 1).contiguous()
    one_m, one_n = torch.ones_like(ones_m), torch.ones_like(ones_n)
    # d/dX sum_ij K(x_i, x_j) = 2 grad_x(X, X) (both slots; the diagonal's gradient is 0).
    dX = dY = None
    if ctx.needs_input_grad[0]:
        dX = (2 * cxx) * gauss_matvec_grad_x_op(X, X, one_m, ones_m, sigma) \
            - (2 * cxy) * gauss_matvec_grad_x_op(X, Y, one_n, ones_m, sigma)
    if ctx.needs_input_grad[1]:
        dY = (2 * cyy) * gauss_matvec_grad_x_op(Y, Y, one_n, ones_n, sigma) \
            - (2 * cxy) * gauss_matvec_grad_x_op(Y, X, one_m, ones_n, sigma)
    return dX, dY, None, None


mmd2_op.register_autograd(_mmd2_backward, setup_context=_mmd2_setup)


def mmd2(X, Y, *, sigma=1.0, unbiased=False):
    """Squared MMD between the samples X and Y (0-d), differentiable in X and Y."""
    return mmd2_op(X.contiguous(), Y.contiguous(), float(sigma), bool(unbiased))


# ----------------------------------------------------------------- fusion

# The schema cannot carry a FuseSide or an enum: sides travel as three lists (kernel
# codes: the position in kfuse.SideKernel, sigmas, rff_features), the rp options as
# their names, and the seed as a signed 64-bit int (two's complement of the library's
# uint64). The wrappers parse sides and names in plain Python, which torch.compile
# traces (it cannot trace the construction of a kfuse.FuseSide).
_U64 = 1 << 64
_KERNELS = list(kfuse.SideKernel)
_KERNEL_CODES = {m.name.lower(): j for j, m in enumerate(_KERNELS)}


def _name_of(kind, value, op, name):
    names = {m.name.lower(): m.name for m in kind}
    key = value.lower() if isinstance(value, str) else getattr(value, "name", "").lower()
    if key not in names:
        raise ValueError(f"{op}: argument '{name}' is {value!r}, expected one of "
                         + ", ".join(names.values()))
    return names[key]


def _side_triple(value, op, name):
    """(kernel code, sigma, rff_features) of a side given as kfuse.fuse takes it."""
    if value is None:
        return _KERNEL_CODES["linear"], 1.0, 0
    if isinstance(value, kfuse.FuseSide):
        return _KERNELS.index(value.kernel), float(value.sigma), int(value.rff_features)
    if isinstance(value, dict):
        value = (value.get("kernel", "linear"), value.get("sigma", 1.0),
                 value.get("rff_features", 0))
    if isinstance(value, (str, kfuse.SideKernel)):
        value = (value,)
    if isinstance(value, (tuple, list)) and 1 <= len(value) <= 3:
        kernel = _name_of(kfuse.SideKernel, value[0], op, name).lower()
        return (_KERNEL_CODES[kernel], float(value[1]) if len(value) > 1 else 1.0,
                int(value[2]) if len(value) > 2 else 0)
    raise TypeError(f"{op}: argument '{name}' is {value!r}, not a side kernel")


def _side_lists(sides, count, op):
    # Never empty lists (an empty list is no leaf of the autograd registration's pytree,
    # unlike None, its gradient): no sides are `count` linear ones.
    triples = [_side_triple(s, op, f"sides[{j}]") for j, s in enumerate(sides or [None] * count)]
    return [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]


def _sides_of(kernels, sigmas, rff_features):
    return [kfuse.FuseSide(_KERNELS[k], s, r)
            for k, s, r in zip(kernels, sigmas, rff_features)]


def _seed_arg(seed):
    seed = int(seed) % _U64
    return seed - _U64 if seed >= 1 << 63 else seed


def _width(a, j, kernels, rff_features):
    rbf = kernels and _KERNELS[kernels[j]] == kfuse.SideKernel.Rbf
    return 2 * rff_features[j] if rbf else a.shape[1]


def _fuse_dtype(a):
    return torch.float64 if a.dtype == torch.float64 else torch.float32


@torch.library.custom_op(_lib + "kron_fuse", mutates_args=())
def kron_fuse_op(inputs: list[Tensor], kernels: list[int], sigmas: list[float],
                 rff_features: list[int], seed: int) -> Tensor:
    return kfuse.kron_fuse(inputs, sides=_sides_of(kernels, sigmas, rff_features),
                           seed=seed % _U64)


@kron_fuse_op.register_fake
def _(inputs, kernels, sigmas, rff_features, seed):
    width = 1
    for j, a in enumerate(inputs):
        width *= _width(a, j, kernels, rff_features)
    return inputs[0].new_empty((inputs[0].shape[0], width), dtype=_fuse_dtype(inputs[0]))


@torch.library.custom_op(_lib + "kron_fuse_backward", mutates_args=())
def kron_fuse_backward_op(inputs: list[Tensor], grad_out: Tensor, kernels: list[int],
                          sigmas: list[float], rff_features: list[int],
                          seed: int) -> list[Tensor]:
    return kfuse.kron_fuse_backward(inputs, grad_out,
                                    sides=_sides_of(kernels, sigmas, rff_features),
                                    seed=seed % _U64)


@kron_fuse_backward_op.register_fake
def _(inputs, grad_out, kernels, sigmas, rff_features, seed):
    return [a.new_empty(a.shape, dtype=_fuse_dtype(a)) for a in inputs]


def _fuse_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[0])
    ctx.options = inputs[1:]


def _kron_backward(ctx, g):
    inputs = list(ctx.saved_tensors)
    grads = kron_fuse_backward_op(inputs, g.to(_fuse_dtype(inputs[0])).contiguous(),
                                  *ctx.options)
    return [d.to(a.dtype) for d, a in zip(grads, inputs)], None, None, None, None


kron_fuse_op.register_autograd(_kron_backward, setup_context=_fuse_setup)


def _fold_rows(info, dims, tensors):
    """Under vmap: each tensor [n x d] of a batch, with its batch dimension moved to the
    front (or expanded), folded into the rows: [batch n x d]. The fusion ops are row by
    row, so the batch is one call on more rows."""
    B = info.batch_size
    out = []
    for x, d in zip(tensors, dims):
        x = x.movedim(d, 0) if d is not None else x.expand(B, *x.shape)
        out.append(x.reshape(B * x.shape[1], x.shape[2]).contiguous())
    return out


def _unfold_rows(info, y):
    return y.reshape(info.batch_size, -1, y.shape[1])


@torch.library.register_vmap(_lib + "kron_fuse")
def _(info, in_dims, inputs, *options):
    return _unfold_rows(info, kron_fuse_op(_fold_rows(info, in_dims[0], inputs), *options)), 0


@torch.library.register_vmap(_lib + "kron_fuse_backward")
def _(info, in_dims, inputs, grad_out, *options):
    dims = list(in_dims[0]) + [in_dims[1]]
    *folded, g = _fold_rows(info, dims, list(inputs) + [grad_out])
    grads = kron_fuse_backward_op(folded, g, *options)
    return [_unfold_rows(info, d) for d in grads], [0] * len(grads)


def kron_fuse(inputs, *, sides=None, seed=0):
    """The exact fused rows phi0(a) (x) phi1(b) (x) ... of 2 to 4 inputs [n x d_j]
    (float32, float64, bfloat16 or float16; float64 in gives float64 out, else float32),
    differentiable in every input. sides: as kfuse.kron_fuse takes them."""
    kernels, sigmas, rff = _side_lists(sides, len(inputs), "kfuse.torch.kron_fuse")
    return kron_fuse_op([a.contiguous() for a in inputs], kernels, sigmas, rff, _seed_arg(seed))


@torch.library.custom_op(_lib + "rp_fuse", mutates_args=())
def rp_fuse_op(inputs: list[Tensor], l: int, kernels: list[int], sigmas: list[float],
               rff_features: list[int], seed: int, distribution: str, scaling: str,
               precision: str) -> Tensor:
    return kfuse.rp_fuse(inputs, l, sides=_sides_of(kernels, sigmas, rff_features),
                         seed=seed % _U64, distribution=distribution, scaling=scaling,
                         precision=precision)


@rp_fuse_op.register_fake
def _(inputs, l, kernels, sigmas, rff_features, seed, distribution, scaling, precision):
    return inputs[0].new_empty((inputs[0].shape[0], l), dtype=torch.float32)


@torch.library.custom_op(_lib + "rp_fuse_backward", mutates_args=())
def rp_fuse_backward_op(inputs: list[Tensor], grad_out: Tensor, kernels: list[int],
                        sigmas: list[float], rff_features: list[int], seed: int,
                        distribution: str, scaling: str, precision: str) -> list[Tensor]:
    return kfuse.rp_fuse_backward(inputs, grad_out,
                                  sides=_sides_of(kernels, sigmas, rff_features),
                                  seed=seed % _U64, distribution=distribution, scaling=scaling,
                                  precision=precision)


@rp_fuse_backward_op.register_fake
def _(inputs, grad_out, kernels, sigmas, rff_features, seed, distribution, scaling, precision):
    return [a.new_empty(a.shape, dtype=torch.float32) for a in inputs]


def _rp_backward(ctx, g):
    inputs = list(ctx.saved_tensors)
    l, *options = ctx.options
    grads = rp_fuse_backward_op(inputs, g.to(torch.float32).contiguous(), *options)
    return ([d.to(a.dtype) for d, a in zip(grads, inputs)],) + (None,) * 8


rp_fuse_op.register_autograd(_rp_backward, setup_context=_fuse_setup)


@torch.library.register_vmap(_lib + "rp_fuse")
def _(info, in_dims, inputs, l, *options):
    return _unfold_rows(info, rp_fuse_op(_fold_rows(info, in_dims[0], inputs), l, *options)), 0


@torch.library.register_vmap(_lib + "rp_fuse_backward")
def _(info, in_dims, inputs, grad_out, *options):
    dims = list(in_dims[0]) + [in_dims[1]]
    *folded, g = _fold_rows(info, dims, list(inputs) + [grad_out])
    grads = rp_fuse_backward_op(folded, g, *options)
    return [_unfold_rows(info, d) for d in grads], [0] * len(grads)


def rp_fuse(inputs, l, *, sides=None, seed=0, distribution="uniform", scaling="unbiased",
            precision="exact"):
    """RP-KrossFuse Z = s (phi0(A) U0) o (phi1(B) U1) o ... [n x l] (float32) of 2 to 4
    inputs (float32, bfloat16 or float16), differentiable in every input (the library's
    rp_fuse_backward; gradients in the inputs' dtype). Options as kfuse.rp_fuse takes
    them."""
    op = "kfuse.torch.rp_fuse"
    kernels, sigmas, rff = _side_lists(sides, len(inputs), op)
    names = [_name_of(kind, value, op, name) for kind, value, name in (
        (kfuse.RpDistribution, distribution, "distribution"),
        (kfuse.RpScaling, scaling, "scaling"), (kfuse.Precision, precision, "precision"))]
    return rp_fuse_op([a.contiguous() for a in inputs], int(l), kernels, sigmas, rff,
                      _seed_arg(seed), *names)


# ----------------------------------------------------------------- mixture of experts


def _plan_size(T, k, E, pad_to=1, capacity=0):
    """(rows, storage elements) of a plan, as moe_plan_layout computes them
    (kernels/moe/math.hpp), in arithmetic that also takes symbolic token counts
    (the fake implementations under torch.compile with dynamic shapes)."""
    slots = T * k
    kept = torch.sym_min(E * capacity, slots) if capacity > 0 else slots
    rows = kept + (pad_to - 1) * torch.sym_min(E, kept)
    if capacity > 0:
        rows = torch.sym_min(rows, E * (-(-capacity // pad_to) * pad_to))
    return rows, E + (E + 1) + rows + slots


@torch.library.custom_op(_lib + "moe_plan", mutates_args=())
def moe_plan_op(ids: Tensor, experts: int, pad_to: int, capacity: int) -> Tensor:
    return kfuse.moe_plan(ids, experts, pad_to=pad_to, capacity=capacity).storage


@moe_plan_op.register_fake
def _(ids, experts, pad_to, capacity):
    _, size = _plan_size(ids.shape[0], ids.shape[1], experts, pad_to, capacity)
    return ids.new_empty((size,), dtype=torch.int32)


def moe_plan(ids, experts, *, pad_to=1, capacity=0):
    """The plan of ids [T x k] as a kfuse.MoePlan whose storage is an int32 tensor."""
    ids = ids.to(torch.int32).contiguous()
    storage = moe_plan_op(ids, int(experts), int(pad_to), int(capacity))
    return kfuse.MoePlan(storage, ids.shape[0], ids.shape[1], experts, pad_to, capacity)


def _plan_of(storage, T, k, E, pad_to, capacity):
    return kfuse.MoePlan(storage, T, k, E, pad_to, capacity)


@torch.library.custom_op(_lib + "moe_scatter", mutates_args=())
def moe_scatter_op(X: Tensor, storage: Tensor, top_k: int, experts: int, pad_to: int,
                   capacity: int) -> Tensor:
    plan = _plan_of(storage, X.shape[0], top_k, experts, pad_to, capacity)
    return kfuse.moe_scatter(plan, X)


@moe_scatter_op.register_fake
def _(X, storage, top_k, experts, pad_to, capacity):
    rows, _ = _plan_size(X.shape[0], top_k, experts, pad_to, capacity)
    return X.new_empty((rows, X.shape[1]))


@torch.library.custom_op(_lib + "moe_scatter_backward", mutates_args=())
def moe_scatter_backward_op(dXp: Tensor, storage: Tensor, tokens: int, top_k: int, experts: int,
                            pad_to: int, capacity: int) -> Tensor:
    plan = _plan_of(storage, tokens, top_k, experts, pad_to, capacity)
    return kfuse.moe_scatter_backward(plan, dXp)


@moe_scatter_backward_op.register_fake
def _(dXp, storage, tokens, top_k, experts, pad_to, capacity):
    return dXp.new_empty((tokens, dXp.shape[1]))


def _scatter_setup(ctx, inputs, output):
    X, storage, top_k, experts, pad_to, capacity = inputs
    ctx.save_for_backward(storage)
    ctx.layout = (X.shape[0], top_k, experts, pad_to, capacity)


def _scatter_backward(ctx, dXp):
    (storage,) = ctx.saved_tensors
    return moe_scatter_backward_op(dXp.contiguous(), storage, *ctx.layout), None, None, None, \
        None, None


moe_scatter_op.register_autograd(_scatter_backward, setup_context=_scatter_setup)


def moe_scatter(plan, X):
    """Xp [rows x H] = X[token of each row] (differentiable in X)."""
    T, k, E, pad_to, capacity = plan.layout
    return moe_scatter_op(X.contiguous(), plan.storage, k, E, pad_to, capacity)


@torch.library.custom_op(_lib + "moe_gather", mutates_args=())
def moe_gather_op(Yp: Tensor, gates: Tensor, storage: Tensor, experts: int, pad_to: int,
                  capacity: int) -> Tensor:
    plan = _plan_of(storage, gates.shape[0], gates.shape[1], experts, pad_to, capacity)
    return kfuse.moe_gather(plan, Yp, gates)


@moe_gather_op.register_fake
def _(Yp, gates, storage, experts, pad_to, capacity):
    return Yp.new_empty((gates.shape[0], Yp.shape[1]))


@torch.library.custom_op(_lib + "moe_gather_backward", mutates_args=())
def moe_gather_backward_op(Yp: Tensor, gates: Tensor, dY: Tensor, storage: Tensor, experts: int,
                           pad_to: int, capacity: int) -> tuple[Tensor, Tensor]:
    plan = _plan_of(storage, gates.shape[0], gates.shape[1], experts, pad_to, capacity)
    return kfuse.moe_gather_backward(plan, Yp, gates, dY)


@moe_gather_backward_op.register_fake
def _(Yp, gates, dY, storage, experts, pad_to, capacity):
    return torch.empty_like(Yp), torch.empty_like(gates)


def _gather_setup(ctx, inputs, output):
    Yp, gates, storage, experts, pad_to, capacity = inputs
    ctx.save_for_backward(Yp, gates, storage)
    ctx.layout = (experts, pad_to, capacity)


def _gather_backward(ctx, dY):
    Yp, gates, storage = ctx.saved_tensors
    dYp, dgates = moe_gather_backward_op(Yp, gates, dY.contiguous(), storage, *ctx.layout)
    return dYp, dgates, None, None, None, None


moe_gather_op.register_autograd(_gather_backward, setup_context=_gather_setup)


def moe_gather(plan, Yp, gates):
    """Y [T x H] = sum_j gates[t, j] Yp[row of (t, j)] (differentiable in Yp and gates)."""
    T, k, E, pad_to, capacity = plan.layout
    return moe_gather_op(Yp.contiguous(), gates.to(torch.float32).contiguous(), plan.storage, E,
                         pad_to, capacity)


@torch.library.custom_op(_lib + "moe_mlp_fwd", mutates_args=())
def moe_mlp_fwd(X: Tensor, gates: Tensor, ids: Tensor, w1: Tensor, w3: Tensor,
                w2: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    plan = kfuse.moe_plan(ids, w1.shape[0])
    Y, h1, h3 = kfuse.moe_mlp_forward(plan, X, gates, w1, w3, w2)
    return Y, plan.storage, h1, h3


@moe_mlp_fwd.register_fake
def _(X, gates, ids, w1, w3, w2):
    rows, size = _plan_size(ids.shape[0], ids.shape[1], w1.shape[0])
    F = w1.shape[2]
    return (torch.empty_like(X), ids.new_empty((size,), dtype=torch.int32),
            X.new_empty((rows, F)), X.new_empty((rows, F)))


@torch.library.custom_op(_lib + "moe_mlp_bwd", mutates_args=())
def moe_mlp_bwd(storage: Tensor, X: Tensor, gates: Tensor, w1: Tensor, w3: Tensor, w2: Tensor,
                dY: Tensor, h1: Tensor,
                h3: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    plan = _plan_of(storage, X.shape[0], gates.shape[1], w1.shape[0], 1, 0)
    return tuple(kfuse.moe_mlp_backward(plan, X, gates, w1, w3, w2, dY, h1, h3))


@moe_mlp_bwd.register_fake
def _(storage, X, gates, w1, w3, w2, dY, h1, h3):
    return (torch.empty_like(X), torch.empty_like(gates), torch.empty_like(w1),
            torch.empty_like(w3), torch.empty_like(w2))


def _mlp_setup(ctx, inputs, output):
    X, gates, ids, w1, w3, w2 = inputs
    _, storage, h1, h3 = output
    ctx.save_for_backward(storage, X, gates, w1, w3, w2, h1, h3)


def _mlp_backward(ctx, dY, _dstorage, _dh1, _dh3):
    storage, X, gates, w1, w3, w2, h1, h3 = ctx.saved_tensors
    dX, dgates, dw1, dw3, dw2 = moe_mlp_bwd(storage, X, gates, w1, w3, w2, dY.contiguous(), h1, h3)
    return dX, dgates, None, dw1, dw3, dw2


moe_mlp_fwd.register_autograd(_mlp_backward, setup_context=_mlp_setup)


def moe_mlp(X, gates, ids, w1, w3, w2):
    """SwiGLU experts: Y [T x H] = sum_j gates[t, j] (silu(x W1_e) * (x W3_e)) W2_e for
    e = ids[t, j]; w1, w3 [E x H x F], w2 [E x F x H]. Differentiable in X, gates and
    the weights (float32 or bfloat16; gates float32). Under torch.autocast with bfloat16
    the experts run in bfloat16."""
    for name, w in (("w1", w1), ("w3", w3), ("w2", w2)):
        if w.dim() != 3:
            raise ValueError(f"kfuse.torch.moe_mlp: argument '{name}' has {w.dim()} dimensions, "
                             "expected 3 (experts x in x out)")
    X, w1, w3, w2 = _autocast([X, w1, w3, w2], (torch.bfloat16,))
    return moe_mlp_fwd(X.contiguous(), gates.to(torch.float32).contiguous(),
                       ids.to(torch.int32).contiguous(), w1.contiguous(), w3.contiguous(),
                       w2.contiguous())[0]
