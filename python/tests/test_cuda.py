"""On a CUDA device (skipped elsewhere): every family on PyTorch CUDA tensors against
the CPU path, results on the caller's device, the call on PyTorch's current stream,
workspace from PyTorch's caching allocator. These run on a GPU machine
(scripts/gpu-check --steps python); this machine has none."""
import math

import numpy as np
import pytest

import kfuse

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and "cuda" in kfuse.backends()),
    reason="needs a CUDA device and a kfuse built with CUDA")


def both(*shape, dtype=torch.float32):
    x = torch.randn(*shape, dtype=dtype)
    return x, x.cuda()


def close(gpu, cpu, rtol=1e-4, atol=1e-5):
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=rtol, atol=atol)


def test_gauss_family_on_cuda():
    (X, Xg), (Y, Yg), (V, Vg) = both(70, 5), both(90, 5), both(90, 3)
    close(kfuse.gauss_matvec(Xg, Yg, Vg, sigma=0.7), kfuse.gauss_matvec(X, Y, V, sigma=0.7))
    close(kfuse.kde(Xg, Yg), kfuse.kde(X, Y))
    close(kfuse.mmd2(Xg, Yg), kfuse.mmd2(X, Y))
    close(kfuse.mean_shift_step(Xg, Yg), kfuse.mean_shift_step(X, Y))


def test_fuse_family_on_cuda_is_bitwise_the_cpu():
    (A, Ag), (B, Bg) = both(33, 12), both(33, 7)
    for f in (lambda a, b: kfuse.rp_fuse([a, b], 50, seed=3),
              lambda a, b: kfuse.kron_fuse([a, b]),
              lambda a, b: kfuse.rff_fuse([a, b], 20, sigmas=[1.0, 2.0])):
        torch.testing.assert_close(f(Ag, Bg).cpu(), f(A, B), rtol=0, atol=0)


def test_fuse_backwards_on_cuda():
    # Not bitwise: cuBLAS sums in its own order (fp32 under Exact).
    (A, Ag), (B, Bg) = both(33, 12), both(33, 7)
    (G, Gg), (K, Kg) = both(33, 50), both(33, 84)
    sides = ["cosine", ("rbf", 0.8, 6)]
    for got, want in ((kfuse.rp_fuse_backward([Ag, Bg], Gg, sides=sides, seed=3),
                       kfuse.rp_fuse_backward([A, B], G, sides=sides, seed=3)),
                      (kfuse.kron_fuse_backward([Ag, Bg], Kg, sides=["cosine", "linear"]),
                       kfuse.kron_fuse_backward([A, B], K, sides=["cosine", "linear"]))):
        for g, w in zip(got, want):
            close(g, w)


def test_contrastive_on_cuda_with_device_scale():
    A = torch.nn.functional.normalize(torch.randn(300, 64), dim=1)
    B = torch.nn.functional.normalize(torch.randn(300, 64), dim=1)
    t = math.log(1 / 0.07)
    cpu = kfuse.clip_loss_forward(A, B, logit_scale=t)
    tg = torch.tensor([t], device="cuda")
    gpu = kfuse.clip_loss_forward(A.cuda(), B.cuda(), logit_scale=tg)
    close(gpu.loss, cpu.loss, rtol=1e-5)
    g = kfuse.clip_loss_backward(A.cuda(), B.cuda(), gpu.lse_rows, gpu.lse_cols, logit_scale=tg)
    c = kfuse.clip_loss_backward(A, B, cpu.lse_rows, cpu.lse_cols, logit_scale=t)
    close(g.dA, c.dA)
    close(g.dt, c.dt, rtol=1e-4)


def test_moe_on_cuda():
    T, k, E, H, F = 64, 2, 8, 32, 48
    ids = torch.stack([torch.randperm(E)[:k] for _ in range(T)]).int()
    gates = torch.rand(T, k)
    X, w1, w3 = torch.randn(T, H), torch.randn(E, H, F) * 0.1, torch.randn(E, H, F) * 0.1
    w2 = torch.randn(E, F, H) * 0.1
    plan, plan_g = kfuse.moe_plan(ids, E), kfuse.moe_plan(ids.cuda(), E)
    torch.testing.assert_close(plan_g.storage.cpu(), plan.storage)
    cpu = kfuse.moe_mlp_forward(plan, X, gates, w1, w3, w2, save=False)
    gpu = kfuse.moe_mlp_forward(plan_g, X.cuda(), gates.cuda(), w1.cuda(), w3.cuda(), w2.cuda(),
                                save=False)
    close(gpu, cpu, rtol=1e-4, atol=1e-4)


def test_runs_on_the_current_stream_with_torch_workspace():
    A = torch.nn.functional.normalize(torch.randn(2048, 128, device="cuda"), dim=1)
    B = torch.nn.functional.normalize(torch.randn(2048, 128, device="cuda"), dim=1)
    ref = kfuse.clip_loss(A, B, logit_scale=2.0)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    before = torch.cuda.memory_stats()["allocation.all.allocated"]
    with torch.cuda.stream(side):
        loss = kfuse.clip_loss(A, B, logit_scale=2.0)
    # Workspace came from PyTorch's caching allocator: more allocations than the output.
    assert torch.cuda.memory_stats()["allocation.all.allocated"] - before > 1
    side.synchronize()
    torch.testing.assert_close(loss, ref)


def test_torch_layer_on_cuda():
    import kfuse.torch as kt

    img = torch.nn.functional.normalize(torch.randn(64, 32, device="cuda"), dim=1).requires_grad_()
    txt = torch.nn.functional.normalize(torch.randn(64, 32, device="cuda"), dim=1).requires_grad_()
    scale = torch.tensor(1 / 0.07, device="cuda", requires_grad=True)
    loss = kt.ClipLoss()(img, txt, scale)
    loss.backward()
    S = scale * img @ txt.T
    lab = torch.arange(64, device="cuda")
    ref = (torch.nn.functional.cross_entropy(S, lab) + torch.nn.functional.cross_entropy(S.T, lab)) / 2
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=1e-5)
    torch.library.opcheck(kt.ops.clip_loss_fwd, (img, txt, scale.log().detach(), 0.0, True))
    assert np.isfinite(img.grad.sum().item())


def test_torch_contrastive_labels_on_cuda():
    # What the distributed losses call: one CLIP direction with labels (local rows
    # against gathered ones) and SigLIP rows with no positive, labels on the device,
    # checked and unchecked (no synchronisation).
    import kfuse.torch as kt

    (L, Lg), (G, Gg) = both(8, 16), both(24, 16)
    labels, negatives = torch.arange(8) + 8, torch.full((8,), -1)
    t = math.log(1 / 0.07)
    cases = {
        "AtoB": lambda a, b, lab, check: kt.clip_loss(a, b, t, labels=lab, direction="AtoB",
                                                      check_labels=check),
        "BtoA": lambda a, b, lab, check: kt.clip_loss(b, a, t, labels=lab, direction="BtoA",
                                                      check_labels=check),
        "siglip": lambda a, b, lab, check: kt.siglip_loss(a, b, math.log(10.0), -3.0,
                                                          labels=lab, check_labels=check),
    }
    for name, f in cases.items():
        lab = negatives if name == "siglip" else labels
        for check in (True, False):
            cpu = [x.clone().requires_grad_() for x in (L, G)]
            gpu = [x.clone().requires_grad_() for x in (Lg, Gg)]
            want = f(*cpu, lab, True)
            got = f(*gpu, lab.cuda(), check)
            want.backward()
            got.backward()
            close(got, want.detach())
            for g, w in zip(gpu, cpu):
                close(g.grad, w.grad)


def test_torch_fuse_ops_on_cuda():
    import kfuse.torch as kt

    A = torch.randn(20, 6, device="cuda", requires_grad=True)
    B = torch.randn(20, 5, device="cuda", requires_grad=True)
    G = torch.randn(20, 16, device="cuda")
    kt.rp_fuse([A, B], 16, sides=["cosine", "linear"], seed=5).backward(G)
    Ac, Bc = (x.detach().cpu().requires_grad_() for x in (A, B))
    kt.rp_fuse([Ac, Bc], 16, sides=["cosine", "linear"], seed=5).backward(G.cpu())
    close(A.grad, Ac.grad)
    close(B.grad, Bc.grad)
    torch.library.opcheck(kt.ops.rp_fuse_op, ([A, B], 16, [1, 0], [1.0, 1.0], [0, 0], 5,
                                              "Uniform", "Unbiased", "Exact"))
