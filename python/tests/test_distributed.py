"""The distributed ClipLoss and SigLipLoss against open_clip's: CPU processes in a gloo
process group (distributed_worker.py, one per rank), each comparing its loss and
gradients with open_clip's for local_loss and gather_with_grad on and off and every
SigLIP dist_impl."""
import importlib.util
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("open_clip") is None:
    pytest.skip("open_clip is not installed", allow_module_level=True)

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_worker.py")


def gloo_missing():
    import torch.distributed as dist

    if not dist.is_available():
        return "this PyTorch build has no torch.distributed"
    if not dist.is_gloo_available():
        return "this PyTorch build has no gloo backend"
    return None


# 3 ranks: SigLIP's "bidir" exchange runs its two-sided loop (2 ranks take only its
# one-sided remainder step), and rank pairs are no longer each other's both neighbours.
@pytest.mark.parametrize("world_size", [2, 3])
def test_losses_match_open_clip_on_every_rank(tmp_path, world_size):
    reason = gloo_missing()
    if reason:
        pytest.skip(reason)
    init = "file://" + str(tmp_path / "rendezvous")
    # One thread per rank: the ranks share the machine's cores.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ranks = [subprocess.Popen([sys.executable, WORKER, init, str(r), str(world_size)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(world_size)]
    results = []
    try:
        for p in ranks:
            out, err = p.communicate(timeout=240)
            results.append((p.returncode, out, err))
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
    for r, (code, out, err) in enumerate(results):
        assert code == 0, f"rank {r} exited {code}:\n{out}\n{err[-4000:]}"
        assert f"rank {r}: ok" in out
