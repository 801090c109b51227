"""The Gaussian kernel family: K(x, y) = exp(-|x - y|^2 / (2 sigma^2)) between the rows
of two point sets, never stored (see include/kfuse/gauss.hpp). float32 and float64."""

from . import _kfuse
from ._arrays import as_array, empty, enum, execution, shape2
from ._kfuse import Precision


def _prec(precision, op):
    return enum(Precision, precision, op, "precision")


def gauss_matvec(X, Y, V, *, sigma=1.0, alpha=1.0, beta=0.0, precision=Precision.Exact,
                 out=None, stream=None):
    """``alpha * K(X, Y) @ V + beta * out``: X [M x d], Y [N x d], V [N x R] (or [N],
    giving [M]). ``out`` (optional) is written in place and returned; beta != 0 needs it."""
    op = "gauss_matvec"
    X, Y, V = (as_array(a, op, n) for a, n in ((X, "X"), (Y, "Y"), (V, "V")))
    vector = V is not None and len(V.shape) == 1
    if vector:
        V = V.reshape(-1, 1)
    M, _ = shape2(op, "X", X)
    _, R = shape2(op, "V", V)
    if out is None:
        if beta != 0:
            raise ValueError(f"{op}: argument 'beta' is {beta} but no 'out' is given to scale")
        result = empty(X, (M,) if vector else (M, R))
    else:
        result = out
    target = result.reshape(-1, 1) if vector else result
    _kfuse.gauss_matvec(X, Y, V, target, sigma=sigma, alpha=alpha, beta=beta,
                        precision=_prec(precision, op), **execution(X, stream))
    return result


def kde(queries, Y, weights=None, *, sigma=1.0, log=True, precision=Precision.Exact,
        stream=None):
    """(Log-)density of each query [M x d] under the weighted Gaussian KDE of Y [N x d]
    (weights [N] optional, >= 0): [M]."""
    op = "kde"
    queries, Y, weights = (as_array(a, op, n) for a, n in
                           ((queries, "queries"), (Y, "Y"), (weights, "weights")))
    M, _ = shape2(op, "queries", queries)
    out = empty(queries, (M,))
    _kfuse.kde(queries, Y, weights, out, sigma=sigma, log=log,
               precision=_prec(precision, op), **execution(queries, stream))
    return out


def gauss_matvec_grad_x(X, Y, V, U, *, sigma=1.0, precision=Precision.Exact, stream=None):
    """d/dX <U, K(X, Y) V>: [M x d], for U [M x R] and V [N x R]."""
    op = "gauss_matvec_grad_x"
    X, Y, V, U = (as_array(a, op, n) for a, n in ((X, "X"), (Y, "Y"), (V, "V"), (U, "U")))
    M, d = shape2(op, "X", X)
    out = empty(X, (M, d))
    _kfuse.gauss_matvec_grad_x(X, Y, V, U, out, sigma=sigma, precision=_prec(precision, op),
                               **execution(X, stream))
    return out


def mean_shift_step(X, Y, weights=None, *, sigma=1.0, precision=Precision.Exact, stream=None):
    """One mean-shift step of the rows of X [M x d] towards the modes of the KDE of Y:
    the KDE-weighted mean of Y seen from each x, [M x d]."""
    op = "mean_shift_step"
    X, Y, weights = (as_array(a, op, n) for a, n in ((X, "X"), (Y, "Y"), (weights, "weights")))
    M, d = shape2(op, "X", X)
    out = empty(X, (M, d))
    _kfuse.mean_shift_step(X, Y, weights, out, sigma=sigma, precision=_prec(precision, op),
                           **execution(X, stream))
    return out


def mmd2(X, Y, *, sigma=1.0, unbiased=False, precision=Precision.Exact, stream=None):
    """Squared MMD between the samples X [m x d] and Y [n x d]: a 0-d array on X's
    device (no host synchronisation)."""
    op = "mmd2"
    X, Y = as_array(X, op, "X"), as_array(Y, op, "Y")
    shape2(op, "X", X)
    out = empty(X, ())
    _kfuse.mmd2(X, Y, out, sigma=sigma, unbiased=unbiased, precision=_prec(precision, op),
                **execution(X, stream))
    return out
