"""The communication of the distributed CLIP and SigLIP losses, as open_clip's loss.py
does it (torch.distributed, not Horovod), so that kfuse's ClipLoss and SigLipLoss
exchange the same tensors in the same pattern and differentiate through it the same
way; the losses themselves are kfuse's ops."""

import torch


def require(name):
    """torch.distributed, or a clear error where this PyTorch has none."""
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError(f"kfuse.torch.{name}: world_size > 1 needs torch.distributed, "
                           "which this PyTorch build does not have")
    return dist


def gather_features(image, text, *, local_loss, gather_with_grad, rank, world_size):
    """(all image features, all text features) [world_size n x d], rank r's rows at
    r n. With gather_with_grad the gathers are differentiable (each rank's gradient of
    its rows summed over the ranks); without, only this rank's own rows carry a
    gradient, and only when not local_loss (the local loss differentiates the local
    features directly)."""
    dist = require("ClipLoss")
    if gather_with_grad:
        from torch.distributed import nn as differentiable

        return (torch.cat(differentiable.all_gather(image), dim=0),
                torch.cat(differentiable.all_gather(text), dim=0))
    images = [torch.zeros_like(image) for _ in range(world_size)]
    texts = [torch.zeros_like(text) for _ in range(world_size)]
    dist.all_gather(images, image.contiguous())
    dist.all_gather(texts, text.contiguous())
    if not local_loss:
        images[rank], texts[rank] = image, text
    return torch.cat(images, dim=0), torch.cat(texts, dim=0)


def _exchange(dist, pairs):
    """Sends and receives at once: pairs of (rank, tensor to send) and (rank, tensor to
    receive into), in open_clip's order."""
    ops = [dist.P2POp(dist.isend, x, r) for r, x in pairs[0]]
    ops += [dist.P2POp(dist.irecv, x, r) for r, x in pairs[1]]
    for request in dist.batch_isend_irecv(ops):
        request.wait()


class _Shift(torch.autograd.Function):
    """Receives a tensor from from_rank while sending one to to_rank; the gradient
    travels back the other way."""

    @staticmethod
    def forward(ctx, from_rank, to_rank, tensor):
        import torch.distributed as dist

        ctx.ranks = (from_rank, to_rank)
        received = torch.zeros_like(tensor)
        _exchange(dist, ([(to_rank, tensor.contiguous())], [(from_rank, received)]))
        return received

    @staticmethod
    def backward(ctx, grad):
        from_rank, to_rank = ctx.ranks
        return None, None, _Shift.apply(to_rank, from_rank, grad.contiguous())


class _Bidir(torch.autograd.Function):
    """Sends to_left to the left neighbour and to_right to the right one; returns (from
    the right, from the left)."""

    @staticmethod
    def forward(ctx, left, right, to_left, to_right):
        import torch.distributed as dist

        ctx.ranks = (left, right)
        from_left, from_right = torch.zeros_like(to_right), torch.zeros_like(to_left)
        _exchange(dist, ([(right, to_right.contiguous()), (left, to_left.contiguous())],
                         [(right, from_right), (left, from_left)]))
        return from_right, from_left

    @staticmethod
    def backward(ctx, grad_from_right, grad_from_left):
        left, right = ctx.ranks
        return (None, None) + _Bidir.apply(right, left, grad_from_right.contiguous(),
                                           grad_from_left.contiguous())


def other_texts(text, *, rank, world_size, dist_impl):
    """The other ranks' text features, differentiable, as open_clip's SigLipLoss
    receives them: pairs (block, other), other false for a block that is this rank's
    own texts. Blocks of n rows one neighbour exchange at a time ("bidir", "shift"),
    one all-reduce per rank ("reduce", whose own block the loss must keep in its graph
    with weight 0, as open_clip does, so that every rank runs every all-reduce's
    backward, another all-reduce, in the same order), or, for "gather", one all-gather
    whose other ranks' rows come as one block [(world_size - 1) n x d]."""
    dist = require("SigLipLoss")
    from torch.distributed import nn as differentiable

    right, left = (rank + 1) % world_size, (rank - 1 + world_size) % world_size
    if dist_impl == "bidir":
        to_left = to_right = text
        pairs, remainder = divmod(world_size - 1, 2)
        for _ in range(pairs):
            received = _Bidir.apply(left, right, to_left, to_right)
            for block in received:
                yield block, True
            to_left, to_right = received
        if remainder:
            yield _Shift.apply(left, right, to_right), True
    elif dist_impl == "shift":
        to_right = text
        for _ in range(world_size - 1):
            to_right = _Shift.apply(left, right, to_right)
            yield to_right, True
    elif dist_impl == "reduce":
        for i in range(world_size):
            yield differentiable.all_reduce(text * (rank == i), dist.ReduceOp.SUM), i != rank
    elif dist_impl == "gather":
        blocks = differentiable.all_gather(text)
        yield torch.cat([b for i, b in enumerate(blocks) if i != rank], dim=0), True
    else:
        raise ValueError(f"kfuse.torch.SigLipLoss: dist_impl {dist_impl!r} is not one of "
                         "'bidir', 'shift', 'reduce', 'gather'")
