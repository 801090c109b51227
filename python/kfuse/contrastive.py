"""The contrastive loss family (include/kfuse/contrastive.hpp): CLIP's InfoNCE and
SigLIP's sigmoid loss over A [Na x d] and B [Nb x d] (float32, bfloat16 or float16),
with logits S = exp(t) A B^T + b that are never stored.

logit_scale is t, the log of the temperature's inverse (CLIP's learnable parameter
before .exp()); logit_scale and bias are numbers (range-checked) or one-element float32
arrays in the inputs' memory (read by the backend, no host synchronisation)."""

from collections import namedtuple

from . import _kfuse
from ._arrays import as_array, dtype_name, empty, enum, execution, scalar, shape2
from ._kfuse import ClipDirection, Precision

ClipForward = namedtuple("ClipForward", "loss row_losses col_losses lse_rows lse_cols")
SiglipForward = namedtuple("SiglipForward", "loss row_losses")
LossGradients = namedtuple("LossGradients", "dA dB dt db")


def _common(op, A, B, labels):
    A, B, labels = (as_array(a, op, n) for a, n in ((A, "A"), (B, "B"), (labels, "labels")))
    Na, d = shape2(op, "A", A)
    Nb, _ = shape2(op, "B", B)
    return A, B, labels, Na, Nb, d


def _scalars(op, logit_scale, bias):
    t, t_array = scalar(logit_scale, op, "logit_scale")
    b, b_array = scalar(bias, op, "bias")
    return dict(logit_scale=t, logit_scale_array=t_array, bias=b, bias_array=b_array)


def _clip_options(op, direction, logit_scale, bias, label_smoothing, precision, deterministic,
                  check_device_labels):
    return dict(direction=enum(ClipDirection, direction, op, "direction"),
                label_smoothing=label_smoothing,
                precision=enum(Precision, precision, op, "precision"),
                deterministic=deterministic, check_device_labels=check_device_labels,
                **_scalars(op, logit_scale, bias))


def clip_loss_forward(A, B, labels=None, *, logit_scale=0.0, bias=0.0, label_smoothing=0.0,
                      direction=ClipDirection.Both, precision=Precision.Exact,
                      deterministic=True, check_device_labels=True, row_losses=False,
                      col_losses=False, stream=None):
    """The CLIP loss (a 0-d float32 array) and the log-sum-exps its backward needs:
    ClipForward(loss, row_losses, col_losses, lse_rows, lse_cols), entries a direction
    does not have (or not asked for) None. labels [Na] int64 pair row i of A with
    row labels[i] of B (default: i)."""
    op = "clip_loss_forward"
    A, B, labels, Na, Nb, _ = _common(op, A, B, labels)
    opts = _clip_options(op, direction, logit_scale, bias, label_smoothing, precision,
                         deterministic, check_device_labels)
    rows = opts["direction"] in (ClipDirection.Both, ClipDirection.AtoB)
    cols = opts["direction"] in (ClipDirection.Both, ClipDirection.BtoA)
    f32 = lambda n, want: empty(A, (n,), "float32") if want else None  # noqa: E731
    out = ClipForward(empty(A, (), "float32"), f32(Na, rows and row_losses),
                      f32(Nb, cols and col_losses), f32(Na, rows), f32(Nb, cols))
    _kfuse.clip_loss_forward(A, B, labels, *out, **opts, **execution(A, stream))
    return out


def _grads(op, A, B, Na, Nb, d, need, grad_dtype):
    g = grad_dtype or dtype_name(A)
    return LossGradients(empty(A, (Na, d), g) if "dA" in need else None,
                         empty(A, (Nb, d), g) if "dB" in need else None,
                         empty(A, (), "float32") if "dt" in need else None,
                         empty(A, (), "float32") if "db" in need else None)


def clip_loss_backward(A, B, lse_rows, lse_cols, labels=None, *, grad_loss=1.0,
                       need=("dA", "dB", "dt"), grad_dtype=None, logit_scale=0.0, bias=0.0,
                       label_smoothing=0.0, direction=ClipDirection.Both,
                       precision=Precision.Exact, deterministic=True, check_device_labels=True,
                       stream=None):
    """Gradients of grad_loss * L from the forward's log-sum-exps: LossGradients(dA, dB,
    dt, db) for the names in `need` (others None; db is 0 for CLIP). grad_dtype:
    the gradients' dtype, the inputs' (default) or "float32"."""
    op = "clip_loss_backward"
    A, B, labels, Na, Nb, d = _common(op, A, B, labels)
    gl, gl_array = scalar(grad_loss, op, "grad_loss")
    g = _grads(op, A, B, Na, Nb, d, need, grad_dtype)
    _kfuse.clip_loss_backward(A, B, labels, lse_rows, lse_cols, *g, grad_loss=gl,
                              grad_loss_array=gl_array,
                              **_clip_options(op, direction, logit_scale, bias, label_smoothing,
                                              precision, deterministic, check_device_labels),
                              **execution(A, stream))
    return g


def clip_loss_forward_backward(A, B, labels=None, *, grad_loss=1.0, need=("dA", "dB", "dt"),
                               grad_dtype=None, logit_scale=0.0, bias=0.0, label_smoothing=0.0,
                               direction=ClipDirection.Both, precision=Precision.Exact,
                               deterministic=True, check_device_labels=True, row_losses=False,
                               col_losses=False, stream=None):
    """The loss and its gradients in one call (the statistics stay in the workspace):
    (ClipForward with lse_rows and lse_cols None, LossGradients)."""
    op = "clip_loss_forward_backward"
    A, B, labels, Na, Nb, d = _common(op, A, B, labels)
    opts = _clip_options(op, direction, logit_scale, bias, label_smoothing, precision,
                         deterministic, check_device_labels)
    rows = opts["direction"] in (ClipDirection.Both, ClipDirection.AtoB)
    cols = opts["direction"] in (ClipDirection.Both, ClipDirection.BtoA)
    f = ClipForward(empty(A, (), "float32"),
                    empty(A, (Na,), "float32") if rows and row_losses else None,
                    empty(A, (Nb,), "float32") if cols and col_losses else None, None, None)
    gl, gl_array = scalar(grad_loss, op, "grad_loss")
    g = _grads(op, A, B, Na, Nb, d, need, grad_dtype)
    _kfuse.clip_loss_forward_backward(A, B, labels, f.loss, f.row_losses, f.col_losses, *g,
                                      grad_loss=gl, grad_loss_array=gl_array, **opts,
                                      **execution(A, stream))
    return f, g


def clip_loss(A, B, labels=None, **options):
    """The CLIP loss alone (a 0-d float32 array); options as clip_loss_forward's."""
    return clip_loss_forward(A, B, labels, **options).loss


def _siglip_options(op, logit_scale, bias, precision, deterministic, check_device_labels):
    return dict(precision=enum(Precision, precision, op, "precision"),
                deterministic=deterministic, check_device_labels=check_device_labels,
                **_scalars(op, logit_scale, bias))


def siglip_loss_forward(A, B, labels=None, *, logit_scale=2.302585092994046, bias=-10.0,
                        precision=Precision.Exact, deterministic=True, check_device_labels=True,
                        row_losses=False, stream=None):
    """The SigLIP loss (1/Na) sum_ij softplus(-z_ij S_ij): SiglipForward(loss,
    row_losses or None). labels [Na] int64 in [0, Nb) or -1 (default: i)."""
    op = "siglip_loss_forward"
    A, B, labels, Na, _, _ = _common(op, A, B, labels)
    out = SiglipForward(empty(A, (), "float32"), empty(A, (Na,), "float32") if row_losses else None)
    _kfuse.siglip_loss_forward(A, B, labels, *out,
                               **_siglip_options(op, logit_scale, bias, precision, deterministic,
                                                 check_device_labels),
                               **execution(A, stream))
    return out


def siglip_loss_backward(A, B, labels=None, *, grad_loss=1.0, need=("dA", "dB", "dt", "db"),
                         grad_dtype=None, logit_scale=2.302585092994046, bias=-10.0,
                         precision=Precision.Exact, deterministic=True, check_device_labels=True,
                         stream=None):
    """Gradients of grad_loss * L: LossGradients(dA, dB, dt, db) for the names in `need`."""
    op = "siglip_loss_backward"
    A, B, labels, Na, Nb, d = _common(op, A, B, labels)
    gl, gl_array = scalar(grad_loss, op, "grad_loss")
    g = _grads(op, A, B, Na, Nb, d, need, grad_dtype)
    _kfuse.siglip_loss_backward(A, B, labels, *g, grad_loss=gl, grad_loss_array=gl_array,
                                **_siglip_options(op, logit_scale, bias, precision,
                                                  deterministic, check_device_labels),
                                **execution(A, stream))
    return g


def siglip_loss_forward_backward(A, B, labels=None, *, grad_loss=1.0,
                                 need=("dA", "dB", "dt", "db"), grad_dtype=None,
                                 logit_scale=2.302585092994046, bias=-10.0,
                                 precision=Precision.Exact, deterministic=True,
                                 check_device_labels=True, row_losses=False, stream=None):
    """The loss and its gradients in the backward's passes: (SiglipForward, LossGradients)."""
    op = "siglip_loss_forward_backward"
    A, B, labels, Na, Nb, d = _common(op, A, B, labels)
    f = SiglipForward(empty(A, (), "float32"), empty(A, (Na,), "float32") if row_losses else None)
    gl, gl_array = scalar(grad_loss, op, "grad_loss")
    g = _grads(op, A, B, Na, Nb, d, need, grad_dtype)
    _kfuse.siglip_loss_forward_backward(A, B, labels, *f, *g, grad_loss=gl,
                                        grad_loss_array=gl_array,
                                        **_siglip_options(op, logit_scale, bias, precision,
                                                          deterministic, check_device_labels),
                                        **execution(A, stream))
    return f, g


def siglip_loss(A, B, labels=None, **options):
    """The SigLIP loss alone (a 0-d float32 array); options as siglip_loss_forward's."""
    return siglip_loss_forward(A, B, labels, **options).loss
