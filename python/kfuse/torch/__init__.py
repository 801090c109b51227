"""kfuse for PyTorch: custom operators (torch.library) with fake implementations and
registered autograd, so they work under torch.compile(fullgraph=True),
torch.autograd.gradcheck and torch.library.opcheck, and drop-in modules:

    ClipLoss, SigLipLoss        open_clip's losses (same arguments and results)
    SparseMoeBlock.from_hf      a Hugging Face Mixtral-style sparse MoE block
    GaussianKernelOperator      K(X, Y) @ V and .kde(queries), as KeOps users write
"""

from . import ops
from .modules import ClipLoss, GaussianKernelOperator, SigLipLoss, SparseMoeBlock
from .ops import (clip_loss, gauss_matvec, kde, kron_fuse, mmd2, moe_gather, moe_mlp, moe_plan,
                  moe_scatter, rp_fuse, siglip_loss)

__all__ = [
    "ClipLoss", "SigLipLoss", "SparseMoeBlock", "GaussianKernelOperator", "clip_loss",
    "siglip_loss", "gauss_matvec", "kde", "mmd2", "moe_plan", "moe_mlp", "moe_scatter",
    "moe_gather", "kron_fuse", "rp_fuse", "ops",
]
