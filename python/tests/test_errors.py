"""Bad input raises the matching Python exception with the library's message, never
crashes, and leaves the outputs untouched."""
import numpy as np
import pytest

import kfuse
from kfuse import _kfuse


def f32(*shape):
    return np.ones(shape, np.float32)


def test_wrong_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="argument 'V' has dtype float64, expected float32"):
        kfuse.gauss_matvec(f32(4, 2), f32(4, 2), np.ones((4, 1)))
    with pytest.raises(TypeError, match="argument 'X' has dtype int32, expected float32 or float64"):
        kfuse.gauss_matvec(np.ones((4, 2), np.int32), f32(4, 2), f32(4, 1))
    with pytest.raises(TypeError, match="bfloat16 or float16"):
        kfuse.rp_fuse([np.ones((3, 2)), np.ones((3, 2))], 4)
    with pytest.raises(TypeError, match="float32 or bfloat16"):
        kfuse.moe_router_topk(np.ones((3, 4)), 2)
    with pytest.raises(TypeError, match="does not take"):
        kfuse.kde(np.ones((3, 2), np.complex64), f32(3, 2))


def test_non_contiguous_inner_dimension_is_a_value_error():
    X = f32(6, 8)[:, ::2]  # inner stride 2
    with pytest.raises(ValueError, match="argument 'X' has an inner stride of 2"):
        kfuse.gauss_matvec(X, f32(3, 4), f32(3, 1))
    with pytest.raises(ValueError, match="inner stride"):
        kfuse.gauss_matvec(f32(4, 3).T, f32(3, 4), f32(3, 1))  # a transposed view
    with pytest.raises(ValueError, match="argument 'weights' has an inner stride"):
        kfuse.kde(f32(3, 2), f32(4, 2), f32(8)[::2])


def test_shapes_and_options_are_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="ShapeMismatch: gauss_matvec"):
        kfuse.gauss_matvec(f32(4, 2), f32(5, 3), f32(5, 1))
    with pytest.raises(ValueError, match="sigma"):
        kfuse.gauss_matvec(f32(4, 2), f32(4, 2), f32(4, 1), sigma=float("nan"))
    with pytest.raises(ValueError, match="label_smoothing"):
        kfuse.clip_loss(f32(4, 2), f32(4, 2), label_smoothing=float("nan"))
    with pytest.raises(ValueError, match="logit_scale"):
        kfuse.clip_loss(f32(4, 2), f32(4, 2), logit_scale=float("inf"))
    with pytest.raises(ValueError, match="expected 2"):
        kfuse.gauss_matvec(f32(4), f32(4, 2), f32(4, 1))
    with pytest.raises(ValueError, match="one of Linear, Cosine, Rbf"):
        kfuse.kron_fuse([f32(2, 2), f32(2, 2)], sides=["gaussian", "linear"])


def test_zero_size_inputs():
    # M = 0 queries is a valid empty call; N = 0 sample rows is not a density.
    assert kfuse.gauss_matvec(f32(0, 3), f32(5, 3), f32(5, 2)).shape == (0, 2)
    with pytest.raises(ValueError, match="kde"):
        kfuse.kde(f32(3, 2), f32(0, 2))
    with pytest.raises(ValueError):
        kfuse.rp_fuse([f32(3, 0), f32(3, 2)], 4)
    with pytest.raises(ValueError):
        kfuse.product_kernel_topk(f32(2, 2), f32(2, 2), f32(0, 2), f32(0, 2), 1)


def test_outputs_untouched_on_error():
    out = np.full((4, 1), 7.0, np.float32)
    with pytest.raises(ValueError):
        _kfuse.gauss_matvec(f32(4, 2), f32(4, 2), f32(4, 1), out, sigma=-1.0)
    np.testing.assert_array_equal(out, 7.0)
    with pytest.raises(TypeError):
        _kfuse.gauss_matvec(f32(4, 2), f32(4, 2), np.ones((4, 1)), out)
    np.testing.assert_array_equal(out, 7.0)
    loss = np.full((), 7.0, np.float32)
    with pytest.raises(ValueError):
        _kfuse.clip_loss_forward(f32(4, 2), f32(5, 2), None, loss, None, None, None, None)
    np.testing.assert_array_equal(loss, 7.0)


def test_wrong_device_raises():
    torch = pytest.importorskip("torch")
    meta = torch.empty(4, 2, device="meta")
    with pytest.raises((TypeError, ValueError, RuntimeError, BufferError)):
        kfuse.gauss_matvec(meta, meta, torch.empty(4, 1, device="meta"))


def test_unsupported_is_not_implemented_error():
    # Status Unsupported (a valid request the build cannot serve) is NotImplementedError,
    # a RuntimeError; zero-row inputs allocate nothing.
    wide = np.ones((0, 50000), np.float32)
    with pytest.raises(NotImplementedError, match="Unsupported: kron_fuse: argument 'out'"):
        kfuse.kron_fuse([wide, wide])

