"""The drop-in modules against the code they replace (open_clip, transformers), and a
compiled training step with each."""
import math

import pytest

torch = pytest.importorskip("torch")
import kfuse.torch as kt  # noqa: E402

F = torch.nn.functional


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def features(n, d, grad=True):
    return F.normalize(torch.randn(n, d), dim=1).requires_grad_(grad)


def grads_of(loss_fn, *inputs):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    loss = loss_fn(*inputs)
    value = loss["contrastive_loss"] if isinstance(loss, dict) else loss
    value.backward()
    return value.detach(), [x.grad for x in inputs]


# ------------------------------------------------------------------ open_clip

def test_clip_loss_matches_open_clip():
    open_clip_loss = pytest.importorskip("open_clip.loss")
    img, txt = features(32, 16), features(32, 16)
    scale = torch.tensor(1 / 0.07, requires_grad=True)  # model.logit_scale.exp()
    want, want_g = grads_of(open_clip_loss.ClipLoss(), img, txt, scale)
    got, got_g = grads_of(kt.ClipLoss(), img, txt, scale)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_g, want_g):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    out = kt.ClipLoss()(img, txt, scale, output_dict=True)
    assert set(out) == {"contrastive_loss"}
    # A bias does not change CLIP's loss, in open_clip as here.
    torch.testing.assert_close(kt.ClipLoss()(img, txt, scale, torch.tensor(3.0)), want)


def test_siglip_loss_matches_open_clip():
    open_clip_loss = pytest.importorskip("open_clip.loss")
    img, txt = features(24, 16), features(24, 16)
    scale = torch.tensor(10.0, requires_grad=True)
    bias = torch.tensor(-10.0, requires_grad=True)
    want, want_g = grads_of(open_clip_loss.SigLipLoss(), img, txt, scale, bias)
    got, got_g = grads_of(kt.SigLipLoss(), img, txt, scale, bias)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_g, want_g):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert "contrastive_loss" in kt.SigLipLoss()(img, txt, scale, bias, output_dict=True)


def test_distributed_variants_without_support_are_refused_clearly():
    # The distributed losses themselves: test_distributed.py.
    with pytest.raises(NotImplementedError, match="use_horovod"):
        kt.ClipLoss(world_size=2, rank=0, use_horovod=True)
    kt.ClipLoss(use_horovod=True)  # one process: Horovod gathers nothing, as in open_clip
    with pytest.raises(ValueError, match="dist_impl 'ring'"):
        kt.SigLipLoss(world_size=2, rank=0, dist_impl="ring")


class TinyClip(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.image = torch.nn.Linear(20, 16)
        self.text = torch.nn.Linear(12, 16)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.loss = kt.ClipLoss()

    def forward(self, images, texts):
        i = F.normalize(self.image(images), dim=-1)
        t = F.normalize(self.text(texts), dim=-1)
        return self.loss(i, t, self.logit_scale.exp())


def test_compiled_clip_training_step():
    model = TinyClip()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    images, texts = torch.randn(8, 20), torch.randn(8, 12)
    eager = TinyClip()
    eager.load_state_dict(model.state_dict())
    step = torch.compile(model, fullgraph=True)
    loss = step(images, texts)
    loss.backward()
    ref = eager(images, texts)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(model.logit_scale.grad, eager.logit_scale.grad)
    opt.step()
    assert step(images, texts) < loss  # one SGD step lowers the loss


# ------------------------------------------------------------------ transformers

def mixtral_block(**overrides):
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    from transformers import MixtralConfig

    cfg = dict(hidden_size=16, intermediate_size=24, num_local_experts=4, num_experts_per_tok=2,
               router_jitter_noise=0.0)
    cfg.update(overrides)
    block = mixtral.MixtralSparseMoeBlock(MixtralConfig(**cfg))
    with torch.no_grad():
        for p in block.parameters():  # transformers leaves them to _init_weights
            p.normal_(0, 0.2)
    return block


def test_sparse_moe_block_matches_mixtral():
    hf = mixtral_block()
    ours = kt.SparseMoeBlock.from_hf(hf)
    x = torch.randn(2, 5, 16)
    want = hf(x)
    got = ours(x)
    if isinstance(want, tuple):  # transformers 4.x: (hidden_states, router_logits)
        torch.testing.assert_close(got[1], want[1])
        want, got = want[0], got[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Gradients with respect to the input agree too.
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = hf(xa), ours(xb)
    ya = ya[0] if isinstance(ya, tuple) else ya
    yb = yb[0] if isinstance(yb, tuple) else yb
    ya.pow(2).sum().backward()
    yb.pow(2).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-4, atol=1e-5)


def test_sparse_moe_routing_variants():
    x = torch.randn(9, 8)
    block = kt.SparseMoeBlock(8, 12, 4, 2, routing="topk_softmax")
    logits, gates, ids = block.route(x)
    top, ref_ids = torch.topk(x @ block.gate.T, 2)
    torch.testing.assert_close(gates, top.softmax(-1))
    plain = kt.SparseMoeBlock(8, 12, 4, 2, renormalize=False)
    _, g, _ = plain.route(x)
    torch.testing.assert_close(g, torch.topk((x @ plain.gate.T).softmax(-1), 2).values)
    with pytest.raises(ValueError, match="routing 'sinkhorn'"):
        kt.SparseMoeBlock(8, 12, 4, 2, routing="sinkhorn")


@pytest.mark.parametrize("norm_topk_prob", [False, True])
def test_sparse_moe_block_matches_olmoe(norm_topk_prob):
    # OLMoE's router: softmax, top-k, renormalised only with norm_topk_prob.
    olmoe = pytest.importorskip("transformers.models.olmoe.modeling_olmoe")
    from transformers import OlmoeConfig

    cfg = OlmoeConfig(hidden_size=16, intermediate_size=24, num_experts=6, num_experts_per_tok=2,
                      norm_topk_prob=norm_topk_prob)
    hf = olmoe.OlmoeSparseMoeBlock(cfg)
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)
    ours = kt.SparseMoeBlock.from_hf(hf)
    assert ours.renormalize == norm_topk_prob
    x = torch.randn(2, 5, 16)
    want = hf(x)
    want = want[0] if isinstance(want, tuple) else want
    got = ours(x)
    got = got[0] if isinstance(got, tuple) else got
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_shared_experts_are_refused():
    qwen = pytest.importorskip("transformers.models.qwen2_moe.modeling_qwen2_moe")
    from transformers import Qwen2MoeConfig

    cfg = Qwen2MoeConfig(hidden_size=16, moe_intermediate_size=24, num_experts=4,
                         num_experts_per_tok=2, shared_expert_intermediate_size=32)
    with pytest.raises(NotImplementedError, match="shared_expert"):
        kt.SparseMoeBlock.from_hf(qwen.Qwen2MoeSparseMoeBlock(cfg))


def test_unsupported_hf_variant_is_named():
    hf = mixtral_block(router_jitter_noise=0.1)
    with pytest.raises(NotImplementedError, match="jitter"):
        kt.SparseMoeBlock.from_hf(hf)


class TinyMoeLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(16)
        self.attn = torch.nn.Linear(16, 16)
        self.moe = kt.SparseMoeBlock(16, 24, 4, 2)

    def forward(self, x):
        x = x + self.attn(self.norm(x))
        return x + self.moe(self.norm(x))


def test_compiled_moe_training_step():
    layer = TinyMoeLayer()
    eager = TinyMoeLayer()
    eager.load_state_dict(layer.state_dict())
    x = torch.randn(2, 6, 16)
    step = torch.compile(layer, fullgraph=True)
    loss = step(x).pow(2).mean()
    loss.backward()
    ref = eager(x).pow(2).mean()
    ref.backward()
    torch.testing.assert_close(loss, ref)
    for a, b in zip(layer.parameters(), eager.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    torch.optim.SGD(layer.parameters(), lr=0.05).step()
    assert step(x).pow(2).mean() < loss


# ------------------------------------------------------------------ KeOps-style operator

def test_gaussian_kernel_operator():
    Y = torch.randn(20, 3, dtype=torch.float64)
    X = torch.randn(7, 3, dtype=torch.float64)
    V = torch.randn(20, 2, dtype=torch.float64)
    K = kt.GaussianKernelOperator(Y, sigma=0.9)
    ref = torch.exp(-torch.cdist(X, Y) ** 2 / (2 * 0.81))
    torch.testing.assert_close(K(X) @ V, ref @ V)
    torch.testing.assert_close(K(X) @ V[:, 0], ref @ V[:, 0])
    assert K.shape == (20, 20) and K(X).shape == (7, 20)
    dens = ref.mean(1) * (2 * math.pi * 0.81) ** -1.5
    torch.testing.assert_close(K.kde(X), dens.log())
    k = lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / (2 * 0.81))  # noqa: E731
    torch.testing.assert_close(K.mmd2(X), k(Y, Y).mean() + k(X, X).mean() - 2 * k(Y, X).mean())
    with pytest.raises(NotImplementedError, match="queries only"):
        kt.kde(X.requires_grad_(), Y.clone().requires_grad_()).sum().backward()


# ------------------------------------------------------------------ AMP

def test_autocast_bf16():
    torch.manual_seed(3)
    model = TinyClip()
    images, texts = torch.randn(8, 20), torch.randn(8, 12)
    ref = model(images, texts)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(images, texts)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ref, rtol=3e-2, atol=3e-2)  # bf16 features: 8-bit mantissas
    loss.backward()
    assert model.image.weight.grad.dtype == torch.float32
    layer = TinyMoeLayer()
    x = torch.randn(2, 6, 16)
    want = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)
        assert layer.moe(x).dtype == torch.bfloat16  # the experts ran in bf16
    torch.testing.assert_close(got.float(), want, rtol=5e-2, atol=5e-2)
    got.float().pow(2).mean().backward()
    assert layer.moe.w1.grad.dtype == torch.float32
