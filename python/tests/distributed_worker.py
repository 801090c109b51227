"""One rank of test_distributed.py: joins a gloo process group and compares, for each
case, kfuse.torch's ClipLoss / SigLipLoss with open_clip's (same arguments, same
rank) on this rank's features: the loss and the gradients of the local features,
logit_scale and logit_bias. Exits non-zero (with the failing case on stderr) on a
mismatch.
  python distributed_worker.py INIT_METHOD RANK WORLD_SIZE"""
import datetime
import importlib.util
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

import kfuse.torch as kt


def load_open_clip_loss():
    """open_clip/loss.py alone (it imports only torch): the whole package takes ~10 s
    to import, in every rank."""
    where = importlib.util.find_spec("open_clip").submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location("open_clip_loss",
                                                  os.path.join(where, "loss.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


open_clip_loss = load_open_clip_loss()

N, D = 6, 8  # rows per rank, feature width


def features(rank, salt):
    g = torch.Generator().manual_seed(1000 * salt + rank)
    return F.normalize(torch.randn(N, D, generator=g), dim=1)


def run(make_loss, rank, with_bias):
    """The loss and the gradients of (image, text, logit_scale[, logit_bias])."""
    inputs = [features(rank, 1), features(rank, 2), torch.tensor(1 / 0.07)]
    if with_bias:
        inputs.append(torch.tensor(-4.0))
    inputs = [x.clone().requires_grad_() for x in inputs]
    loss = make_loss()(*inputs, output_dict=True)["contrastive_loss"]
    loss.backward()
    return loss.detach(), [x.grad for x in inputs]


def compare(name, kfuse_loss, open_clip_loss_, rank, with_bias):
    got, got_g = run(kfuse_loss, rank, with_bias)
    want, want_g = run(open_clip_loss_, rank, with_bias)
    try:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        for what, g, w in zip(("image", "text", "logit_scale", "logit_bias"), got_g, want_g):
            assert g is not None, f"no gradient for {what}"
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6, msg=lambda m: f"{what}: {m}")
    except AssertionError as e:
        raise AssertionError(f"rank {rank}, {name}: {e}") from None


def main(init_method, rank, world_size):
    # A short timeout: a rank that fails leaves the others waiting in a collective.
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=60))
    ws = dict(rank=rank, world_size=world_size)
    for local_loss in (False, True):
        for gather_with_grad in (False, True):
            kw = dict(local_loss=local_loss, gather_with_grad=gather_with_grad, **ws)
            compare(f"ClipLoss({kw})", lambda: kt.ClipLoss(**kw),
                    lambda: open_clip_loss.ClipLoss(**kw), rank, with_bias=False)
    for dist_impl in ("bidir", "shift", "reduce", "gather"):
        kw = dict(dist_impl=dist_impl, **ws)
        compare(f"SigLipLoss({kw})", lambda: kt.SigLipLoss(**kw),
                lambda: open_clip_loss.SigLipLoss(**kw), rank, with_bias=True)
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank}: ok")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
