"""The fusion family (KrossFuse and relatives, include/kfuse/fuse.hpp). Inputs float32,
bfloat16 or float16 (float64 too for the exact Kronecker forms); outputs float32
(float64 for float64). A side kernel is given as a kfuse.FuseSide, a name ("linear",
"cosine", "rbf") or a tuple (kernel, sigma[, rff_features])."""

from . import _kfuse
from ._arrays import as_array, dtype_name, empty, enum, execution, shape2, side
from ._kfuse import Modality, Precision, RpDistribution, RpScaling


def _inputs(op, inputs):
    inputs = [as_array(a, op, f"inputs[{j}]") for j, a in enumerate(inputs)]
    if not inputs:
        raise ValueError(f"{op}: argument 'inputs' is empty")
    return inputs


def _sides(op, sides):
    if sides is None:
        return []
    return [side(s, op, f"sides[{j}]") for j, s in enumerate(sides)]


def _out_dtype(x):
    return "float64" if dtype_name(x) == "float64" else "float32"


def kron_fuse(inputs, *, sides=None, seed=0, stream=None):
    """Exact fused rows phi0(a) (x) phi1(b) (x) ... of 2 to 4 inputs with n rows each:
    [n x w0 w1 ...]."""
    op = "kron_fuse"
    inputs = _inputs(op, inputs)
    sides = _sides(op, sides)
    n = shape2(op, "inputs[0]", inputs[0])[0]
    width = 1
    for j, a in enumerate(inputs):
        d = shape2(op, f"inputs[{j}]", a)[1]
        width *= _kfuse.fuse_side_width(sides[j] if j < len(sides) else _kfuse.FuseSide(), d)
    out = empty(inputs[0], (n, width), _out_dtype(inputs[0]))
    _kfuse.kron_fuse(inputs, out, sides=sides, seed=seed, **execution(inputs[0], stream))
    return out


def _rp_kwargs(op, sides, seed, distribution, scaling, precision):
    return dict(sides=_sides(op, sides), seed=seed,
                distribution=enum(RpDistribution, distribution, op, "distribution"),
                scaling=enum(RpScaling, scaling, op, "scaling"),
                precision=enum(Precision, precision, op, "precision"))


def rp_fuse(inputs, l, *, sides=None, seed=0, distribution=RpDistribution.Uniform,
            scaling=RpScaling.Unbiased, precision=Precision.Exact, stream=None):
    """RP-KrossFuse: Z = (1/sqrt l) (A U1) o (B U2) o ..., [n x l] float32."""
    op = "rp_fuse"
    inputs = _inputs(op, inputs)
    n = shape2(op, "inputs[0]", inputs[0])[0]
    out = empty(inputs[0], (n, l), "float32")
    _kfuse.rp_fuse(inputs, out, **_rp_kwargs(op, sides, seed, distribution,
                                             scaling, precision),
                   **execution(inputs[0], stream))
    return out


def _grads(op, inputs, dtype):
    return [empty(a, shape2(op, f"inputs[{j}]", a), dtype) for j, a in enumerate(inputs)]


def kron_fuse_backward(inputs, grad_out, *, sides=None, seed=0, stream=None):
    """The gradients of kron_fuse with respect to its inputs: given grad_out = dL/d
    kron_fuse(inputs, ...) [n x w0 w1 ...] and the forward's options, the list of dL/d
    inputs[j] (each of its input's shape; float32, float64 for float64 inputs)."""
    op = "kron_fuse_backward"
    inputs = _inputs(op, inputs)
    grad_out = as_array(grad_out, op, "grad_out")
    grads = _grads(op, inputs, _out_dtype(inputs[0]))
    _kfuse.kron_fuse_backward(inputs, grad_out, grads, sides=_sides(op, sides), seed=seed,
                              **execution(inputs[0], stream))
    return grads


def rp_fuse_backward(inputs, grad_out, *, sides=None, seed=0, distribution=RpDistribution.Uniform,
                     scaling=RpScaling.Unbiased, precision=Precision.Exact, stream=None):
    """The gradients of rp_fuse with respect to its inputs: given grad_out = dL/dZ
    [n x l] (float32) and the forward's options, the list of dL/d inputs[j] (each of its
    input's shape, float32 whatever the inputs' dtype)."""
    op = "rp_fuse_backward"
    inputs = _inputs(op, inputs)
    grad_out = as_array(grad_out, op, "grad_out")
    grads = _grads(op, inputs, "float32")
    _kfuse.rp_fuse_backward(inputs, grad_out, grads,
                            **_rp_kwargs(op, sides, seed, distribution, scaling, precision),
                            **execution(inputs[0], stream))
    return grads


def rp_projection_matrix(input, rows, l, *, sides=None, seed=0,
                         distribution=RpDistribution.Uniform, scaling=RpScaling.Unbiased,
                         precision=Precision.Exact, like=None, stream=None):
    """U_input [rows x l] exactly as rp_fuse draws it (rows: the width of that input's
    feature map). The result is a NumPy array, or of `like`'s framework and device."""
    op = "rp_projection_matrix"
    out = empty(like, (rows, l), "float32")
    _kfuse.rp_projection_matrix(int(input), out,
                                **_rp_kwargs(op, sides, seed, distribution, scaling, precision),
                                **execution(out, stream))
    return out


def _cross_kwargs(op, C, image_dim, text_dim, shared_side, image_side, text_side, seed,
                  distribution, scaling, precision):
    return dict(C=C, image_dim=int(image_dim), text_dim=int(text_dim),
                shared_side=side(shared_side, op, "shared_side"),
                image_side=side(image_side, op, "image_side"),
                text_side=side(text_side, op, "text_side"),
                seed=seed, distribution=enum(RpDistribution, distribution, op, "distribution"),
                scaling=enum(RpScaling, scaling, op, "scaling"),
                precision=enum(Precision, precision, op, "precision"))


def cross_modal_kron(modality, shared, expert, *, image_dim, text_dim, C=1.0, shared_side=None,
                     image_side=None, text_side=None, seed=0, stream=None):
    """The paper's cross-modal fusion (Algorithm 2), exact: [n x cross-modal width].
    modality: "image" (expert has image_dim columns) or "text" (text_dim)."""
    op = "cross_modal_kron"
    shared, expert = as_array(shared, op, "shared"), as_array(expert, op, "expert")
    n, d = shape2(op, "shared", shared)
    kw = _cross_kwargs(op, C, image_dim, text_dim, shared_side, image_side, text_side, seed,
                       RpDistribution.Uniform, RpScaling.Unbiased, Precision.Exact)
    width = _kfuse.cross_modal_width(d, C, kw["image_dim"], kw["text_dim"], kw["shared_side"],
                                     kw["image_side"], kw["text_side"])
    out = empty(shared, (n, width), _out_dtype(shared))
    _kfuse.cross_modal_kron(enum(Modality, modality, op, "modality"), shared, expert, out, **kw,
                            **execution(shared, stream))
    return out


def cross_modal_rp(modality, shared, expert, l, *, image_dim, text_dim, C=1.0,
                   shared_side=None, image_side=None, text_side=None, seed=0,
                   distribution=RpDistribution.Uniform, scaling=RpScaling.Unbiased,
                   precision=Precision.Exact, stream=None):
    """The random-projection form of cross_modal_kron: [n x l], image and text rows in
    one space."""
    op = "cross_modal_rp"
    shared, expert = as_array(shared, op, "shared"), as_array(expert, op, "expert")
    n, _ = shape2(op, "shared", shared)
    out = empty(shared, (n, l), "float32")
    _kfuse.cross_modal_rp(enum(Modality, modality, op, "modality"), shared, expert, out,
                          **_cross_kwargs(op, C, image_dim, text_dim, shared_side, image_side,
                                          text_side, seed, distribution, scaling, precision),
                          **execution(shared, stream))
    return out


def rff_fuse(inputs, r, *, sigmas, seed=0, stream=None):
    """Random Fourier features of prod_j exp(-|a_j - a_j'|^2 / (2 sigma_j^2)):
    [n x 2r] = (1/sqrt r) [cos(w x), sin(w x)]."""
    op = "rff_fuse"
    inputs = _inputs(op, inputs)
    n = shape2(op, "inputs[0]", inputs[0])[0]
    out = empty(inputs[0], (n, 2 * int(r)), "float32")
    _kfuse.rff_fuse(inputs, out, sigmas=[float(s) for s in sigmas], seed=seed,
                    **execution(inputs[0], stream))
    return out


def tensor_sketch(A, B, l, *, side_a=None, side_b=None, seed=0, stream=None):
    """TensorSketch of a (x) b: [n x l]."""
    op = "tensor_sketch"
    A, B = as_array(A, op, "A"), as_array(B, op, "B")
    n, _ = shape2(op, "A", A)
    out = empty(A, (n, l), "float32")
    _kfuse.tensor_sketch(A, B, out, side_a=side(side_a, op, "side_a"),
                         side_b=side(side_b, op, "side_b"), seed=seed, **execution(A, stream))
    return out


def product_kernel_topk(Q1, Q2, G1, G2, k, *, side1=None, side2=None, C=0.0,
                        precision=Precision.Exact, stream=None):
    """For each query, the k gallery rows with the highest k1(q1, g1) (C + k2(q2, g2)),
    highest first, ties to the lower index: (indices [M x k] int64, scores [M x k])."""
    op = "product_kernel_topk"
    Q1, Q2, G1, G2 = (as_array(a, op, n) for a, n in ((Q1, "Q1"), (Q2, "Q2"), (G1, "G1"),
                                                      (G2, "G2")))
    M, _ = shape2(op, "Q1", Q1)
    indices = empty(Q1, (M, k), "int64")
    scores = empty(Q1, (M, k), "float32")
    _kfuse.product_kernel_topk(Q1, Q2, G1, G2, indices, scores, side1=side(side1, op, "side1"),
                               side2=side(side2, op, "side2"), C=C,
                               precision=enum(Precision, precision, op, "precision"),
                               **execution(Q1, stream))
    return indices, scores
