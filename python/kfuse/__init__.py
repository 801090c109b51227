"""kfuse: fused operations for machine learning (Gaussian kernel sums, Kronecker and
random-projection fusion, tiled contrastive losses, sparse mixture-of-experts), on the
CPU and on CUDA devices.

Every function takes DLPack arrays (NumPy arrays, PyTorch tensors, ...) on the host or
on a CUDA device and returns arrays of the caller's framework on the caller's device.
``kfuse.torch`` adds PyTorch custom operators with autograd and drop-in modules.
"""

from . import _kfuse
from ._kfuse import (
    ClipDirection,
    FuseSide,
    Modality,
    Precision,
    RouterMode,
    RpDistribution,
    RpScaling,
    SideKernel,
)
from .contrastive import (
    clip_loss,
    clip_loss_backward,
    clip_loss_forward,
    clip_loss_forward_backward,
    siglip_loss,
    siglip_loss_backward,
    siglip_loss_forward,
    siglip_loss_forward_backward,
)
from .fuse import (
    cross_modal_kron,
    cross_modal_rp,
    kron_fuse,
    kron_fuse_backward,
    product_kernel_topk,
    rff_fuse,
    rp_fuse,
    rp_fuse_backward,
    rp_projection_matrix,
    tensor_sketch,
)
from .gauss import gauss_matvec, gauss_matvec_grad_x, kde, mean_shift_step, mmd2
from .moe import (
    MoePlan,
    moe_gather,
    moe_gather_backward,
    moe_gather_gemm,
    moe_gemm_combine,
    moe_grouped_gemm,
    moe_grouped_gemm_wgrad,
    moe_mlp_backward,
    moe_mlp_forward,
    moe_plan,
    moe_router_topk,
    moe_scatter,
    moe_scatter_backward,
)

__version__ = _kfuse.__version__


def backends():
    """The backends usable here: ``["cpu"]``, plus ``"cuda"`` when this build has the
    CUDA path and a usable device exists."""
    return ["cpu"] + (["cuda"] if _kfuse.cuda_device_count() > 0 else [])


def built_with_cuda():
    """True when this build of kfuse contains the CUDA path."""
    return _kfuse.built_with_cuda()

__all__ = [
    "ClipDirection",
    "FuseSide",
    "Modality",
    "Precision",
    "RouterMode",
    "RpDistribution",
    "RpScaling",
    "SideKernel",
    "clip_loss",
    "clip_loss_backward",
    "clip_loss_forward",
    "clip_loss_forward_backward",
    "siglip_loss",
    "siglip_loss_backward",
    "siglip_loss_forward",
    "siglip_loss_forward_backward",
    "cross_modal_kron",
    "cross_modal_rp",
    "kron_fuse",
    "kron_fuse_backward",
    "product_kernel_topk",
    "rff_fuse",
    "rp_fuse",
    "rp_fuse_backward",
    "rp_projection_matrix",
    "tensor_sketch",
    "MoePlan",
    "moe_gather",
    "moe_gather_backward",
    "moe_gather_gemm",
    "moe_gemm_combine",
    "moe_grouped_gemm",
    "moe_grouped_gemm_wgrad",
    "moe_mlp_backward",
    "moe_mlp_forward",
    "moe_plan",
    "moe_router_topk",
    "moe_scatter",
    "moe_scatter_backward",
    "gauss_matvec",
    "gauss_matvec_grad_x",
    "kde",
    "mean_shift_step",
    "mmd2",
    "backends",
    "built_with_cuda",
    "__version__",
]
