"""Arrays of the caller's framework: outputs allocated like the inputs (NumPy on the
host, PyTorch on the tensor's device, an array-API namespace otherwise), the stream a
call runs on, and option conversions shared by the op modules."""

import sys

import numpy as np

from . import _kfuse

_torch_allocator_set = False


def _torch():
    return sys.modules.get("torch")


def is_torch(x):
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def as_array(x, op, name):
    """x itself when the binding takes it (NumPy, PyTorch or any DLPack producer);
    a NumPy array for sequences."""
    if x is None or isinstance(x, np.ndarray) or is_torch(x) or hasattr(x, "__dlpack__"):
        return x
    if isinstance(x, (list, tuple, int, float)):
        return np.asarray(x)
    raise TypeError(f"{op}: argument '{name}' is a {type(x).__name__}, not an array")


def shape2(op, name, x):
    """(rows, cols) of a 2-D array; ValueError naming the argument otherwise."""
    if x is None or len(x.shape) != 2:
        got = "None" if x is None else f"{len(x.shape)} dimensions"
        raise ValueError(f"{op}: argument '{name}' has {got}, expected 2 (rows x cols)")
    return int(x.shape[0]), int(x.shape[1])


def dtype_name(x):
    if is_torch(x):
        return str(x.dtype).replace("torch.", "")
    dt = getattr(x, "dtype", None)
    return getattr(dt, "name", str(dt))


def empty(like, shape, dtype=None):
    """An uninitialised array of `dtype` (a name: "float32", "int64", ...; None: like's
    dtype) in the framework and on the device of `like`."""
    shape = tuple(int(s) for s in shape)
    if isinstance(like, np.ndarray):
        return np.empty(shape, dtype=like.dtype if dtype is None else dtype)
    if is_torch(like):
        torch = _torch()
        return torch.empty(shape, dtype=like.dtype if dtype is None else getattr(torch, dtype),
                           device=like.device)
    if like is None:
        return np.empty(shape, dtype=dtype)
    if dtype is None:
        dtype = dtype_name(like)
    xp = getattr(like, "__array_namespace__", None)
    if xp is not None:
        ns = xp()
        return ns.empty(shape, dtype=getattr(ns, dtype), device=like.device)
    return np.empty(shape, dtype=dtype)


def _set_torch_allocator():
    global _torch_allocator_set
    if _torch_allocator_set:
        return
    torch = _torch()

    def allocate(nbytes, device):
        # Allocated on the current stream, which is the call's stream (execution()).
        return torch.empty(int(nbytes), dtype=torch.uint8, device=torch.device("cuda", device))

    _kfuse._set_torch_workspace_allocator(allocate)
    _torch_allocator_set = True


def execution(like, stream=None):
    """The binding's stream and torch_workspace arguments for a call on `like`'s device.

    A PyTorch CUDA tensor runs on PyTorch's current stream of its device (or on
    `stream`), asynchronously, with workspace from PyTorch's caching allocator when the
    stream is the current one. `stream` may be an int (cudaStream_t), or an object with
    ``cuda_stream`` (torch.cuda.Stream) or ``ptr`` (cupy.cuda.Stream)."""
    if stream is not None and not isinstance(stream, int):
        stream = int(getattr(stream, "cuda_stream", getattr(stream, "ptr", stream)))
    if is_torch(like) and like.device.type == "cuda":
        torch = _torch()
        current = torch.cuda.current_stream(like.device).cuda_stream
        if stream is None:
            stream = current
        _set_torch_allocator()
        return {"stream": int(stream), "torch_workspace": stream == current}
    return {"stream": int(stream or 0), "torch_workspace": False}


def enum(kind, value, op, name):
    """An option of an enum type, given as the enum or as its name (any case)."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        for member in kind:
            if member.name.lower() == value.lower():
                return member
    choices = ", ".join(m.name for m in kind)
    raise ValueError(f"{op}: argument '{name}' is {value!r}, expected one of {choices}")


def side(value, op, name):
    """A FuseSide from a FuseSide, a kernel name ("linear", "cosine", "rbf"), a tuple
    (kernel, sigma[, rff_features]) or a dict of FuseSide's fields; None is Linear."""
    if value is None:
        return _kfuse.FuseSide()
    if isinstance(value, _kfuse.FuseSide):
        return value
    if isinstance(value, (str, _kfuse.SideKernel)):
        return _kfuse.FuseSide(enum(_kfuse.SideKernel, value, op, name))
    if isinstance(value, dict):
        d = dict(value)
        d["kernel"] = enum(_kfuse.SideKernel, d.get("kernel", "linear"), op, name)
        return _kfuse.FuseSide(**d)
    if isinstance(value, (tuple, list)) and 1 <= len(value) <= 3:
        kernel = enum(_kfuse.SideKernel, value[0], op, name)
        sigma = float(value[1]) if len(value) > 1 else 1.0
        rff_features = int(value[2]) if len(value) > 2 else 0
        return _kfuse.FuseSide(kernel, sigma, rff_features)
    raise TypeError(f"{op}: argument '{name}' is {value!r}, not a side kernel")


def scalar(value, op, name):
    """(host value, array or None): a float option given as a number or as a one-element
    float32 array in the call's memory (read by the backend, no synchronisation)."""
    if value is None:
        raise TypeError(f"{op}: argument '{name}' is None")
    if isinstance(value, (int, float, np.floating, np.integer)):
        return float(value), None
    return 0.0, value
