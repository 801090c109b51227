"""Drop-in modules: swap one line of a training script to try kfuse."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _distributed, ops


def _log_scale(logit_scale):
    """open_clip passes the scale itself (exp of its parameter); kfuse takes its log."""
    if isinstance(logit_scale, torch.Tensor):
        return torch.log(logit_scale.to(torch.float32))
    return math.log(float(logit_scale))


class _Labels:
    """open_clip's cache_labels: with cache, the last batch size's labels are kept (on
    their device) until the batch size or the device changes."""

    def __init__(self, cache):
        self.cache = cache
        self.stored = {}

    def get(self, key, device, make):
        labels = self.stored.get((key, device))
        if labels is None:
            labels = make().to(device)
            if self.cache:
                self.stored = {(key, device): labels}
        return labels


class ClipLoss(nn.Module):
    """open_clip.loss.ClipLoss computed by kfuse (the logits are never stored).

    Same constructor and call: ``loss = ClipLoss()(image_features, text_features,
    logit_scale[, logit_bias], output_dict=False)`` with logit_scale the scale itself
    (``model.logit_scale.exp()``); the loss is (CE(S) + CE(S^T)) / 2 over the batch,
    S = logit_scale * image_features @ text_features.T. A bias does not change CLIP's
    loss and is accepted and ignored, as in open_clip.

    world_size > 1 (under torch.distributed, every rank with the same batch size n):
    the features are all-gathered as open_clip gathers them (differentiably with
    gather_with_grad; otherwise only this rank's rows carry a gradient); then
    local_loss=False is the loss over all N = world_size n pairs, and local_loss=True
    the mean of the cross-entropies of this rank's n image rows against all texts and
    of its n text rows against all images (pairs at n rank + i). use_horovod is not
    supported (NotImplementedError)."""

    def __init__(self, local_loss=False, gather_with_grad=False, cache_labels=False, rank=0,
                 world_size=1, use_horovod=False):
        super().__init__()
        if use_horovod and world_size > 1:
            raise NotImplementedError("kfuse.torch.ClipLoss: use_horovod=True is not "
                                      "supported; the features are gathered with "
                                      "torch.distributed only (use_horovod=False)")
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.cache_labels = cache_labels
        self.rank = rank
        self.world_size = world_size
        self.use_horovod = use_horovod
        self._labels = _Labels(cache_labels)

    def forward(self, image_features, text_features, logit_scale, logit_bias=None,
                output_dict=False):
        t = _log_scale(logit_scale)
        if self.world_size == 1:
            loss = ops.clip_loss(image_features, text_features, t)
        else:
            images, texts = _distributed.gather_features(
                image_features, text_features, local_loss=self.local_loss,
                gather_with_grad=self.gather_with_grad, rank=self.rank,
                world_size=self.world_size)
            if self.local_loss:
                n = image_features.shape[0]
                labels = self._labels.get(n, image_features.device,
                                          lambda: torch.arange(n) + n * self.rank)
                # Labels valid by construction: no check (a host synchronisation on a GPU).
                one_way = dict(labels=labels, direction="AtoB", check_labels=False)
                loss = (ops.clip_loss(image_features, texts, t, **one_way) +
                        ops.clip_loss(text_features, images, t, **one_way)) / 2
            else:
                loss = ops.clip_loss(images, texts, t)
        return {"contrastive_loss": loss} if output_dict else loss


class SigLipLoss(nn.Module):
    """open_clip.loss.SigLipLoss computed by kfuse: ``loss = SigLipLoss()(image_features,
    text_features, logit_scale, logit_bias, output_dict=False)``, the sigmoid loss
    -sum log sigmoid(z * S) / N with S = logit_scale * image @ text.T + logit_bias.

    world_size > 1 (under torch.distributed, every rank with the same batch size n):
    this rank's loss plus, for each other rank's texts, the loss of this rank's images
    against them with no positive pair (open_clip's negative_only: labels -1), the texts
    received differentiably as dist_impl says ("bidir" (default), "shift", "reduce" or
    "gather"; "gather" takes the other ranks' texts in one block)."""

    def __init__(self, cache_labels=False, rank=0, world_size=1, dist_impl=None):
        super().__init__()
        self.cache_labels = cache_labels
        self.rank = rank
        self.world_size = world_size
        self.dist_impl = dist_impl or "bidir"
        if self.dist_impl not in ("bidir", "shift", "reduce", "gather"):
            raise ValueError(f"kfuse.torch.SigLipLoss: dist_impl {self.dist_impl!r} is not "
                             "one of 'bidir', 'shift', 'reduce', 'gather'")
        self._labels = _Labels(cache_labels)

    def forward(self, image_features, text_features, logit_scale, logit_bias, output_dict=False):
        t = _log_scale(logit_scale)
        loss = ops.siglip_loss(image_features, text_features, t, logit_bias)
        if self.world_size > 1:
            n = image_features.shape[0]
            negatives = self._labels.get(n, image_features.device,
                                         lambda: torch.full((n,), -1, dtype=torch.int64))
            for texts, other in _distributed.other_texts(text_features, rank=self.rank,
                                                         world_size=self.world_size,
                                                         dist_impl=self.dist_impl):
                if other:
                    loss = loss + ops.siglip_loss(image_features, texts, t, logit_bias,
                                                  labels=negatives, check_labels=False)
                else:  # in the graph with weight 0 (see other_texts), without a loss
                    loss = loss + 0.0 * texts.sum()
        return {"contrastive_loss": loss} if output_dict else loss


class SparseMoeBlock(nn.Module):
    """A sparse MoE block with SwiGLU experts, computed by kfuse's grouped MoE MLP.

    Routing: router logits = x W_gate^T, then
      "softmax_topk":  softmax over the experts, the top_k probabilities (renormalised to
                       sum 1 when renormalize, as Mixtral does);
      "topk_softmax":  the top_k logits, softmax over them.
    Experts: y = sum_j g_j (silu(x W1_e) * (x W3_e)) W2_e; W1, W3 [E x H x F], W2
    [E x F x H]. Takes [..., H] hidden states; returns the hidden states, or
    (hidden_states, router_logits) with return_router_logits (what transformers 4.x's
    block returned; from_hf picks what the given block returns)."""

    def __init__(self, hidden_size, intermediate_size, num_experts, top_k, *,
                 routing="softmax_topk", renormalize=True, return_router_logits=False,
                 dtype=None, device=None):
        super().__init__()
        if routing not in ("softmax_topk", "topk_softmax"):
            raise ValueError(f"SparseMoeBlock: routing {routing!r} is not one of "
                             "'softmax_topk', 'topk_softmax'")
        kw = dict(dtype=dtype, device=device)
        self.top_k = int(top_k)
        self.num_experts = int(num_experts)
        self.routing = routing
        self.renormalize = bool(renormalize)
        self.return_router_logits = bool(return_router_logits)
        self.gate = nn.Parameter(torch.empty(num_experts, hidden_size, **kw))
        self.w1 = nn.Parameter(torch.empty(num_experts, hidden_size, intermediate_size, **kw))
        self.w3 = nn.Parameter(torch.empty(num_experts, hidden_size, intermediate_size, **kw))
        self.w2 = nn.Parameter(torch.empty(num_experts, intermediate_size, hidden_size, **kw))
        for p in (self.gate, self.w1, self.w3, self.w2):
            nn.init.normal_(p, std=0.02)

    def route(self, x):
        """(router_logits [T x E], gates [T x k] float32, ids [T x k])."""
        logits = F.linear(x, self.gate)
        if self.routing == "softmax_topk":
            probs = F.softmax(logits, dim=-1, dtype=torch.float32)
            gates, ids = torch.topk(probs, self.top_k, dim=-1)
            if self.renormalize:
                gates = gates / gates.sum(dim=-1, keepdim=True)
        else:
            top, ids = torch.topk(logits, self.top_k, dim=-1)
            gates = F.softmax(top, dim=-1, dtype=torch.float32)
        return logits, gates, ids

    def forward(self, hidden_states):
        shape = hidden_states.shape
        x = hidden_states.reshape(-1, shape[-1])
        logits, gates, ids = self.route(x)
        y = ops.moe_mlp(x, gates, ids, self.w1, self.w3, self.w2).reshape(shape)
        return (y, logits) if self.return_router_logits else y

    @classmethod
    def from_hf(cls, block):
        """A SparseMoeBlock with the weights (copied) and the routing of a Hugging Face
        Mixtral-style sparse MoE block: transformers 5's (gate.weight [E x H],
        experts.gate_up_proj [E x 2F x H], experts.down_proj [E x H x F]) or 4's (gate
        nn.Linear, experts[e].w1/w3/w2). Raises NotImplementedError naming a variant it
        does not support (shared experts, router jitter, a bias, an activation other
        than SiLU)."""
        name = type(block).__name__
        for attr in ("shared_expert", "shared_experts"):
            if getattr(block, attr, None) is not None:
                raise NotImplementedError(f"SparseMoeBlock.from_hf: {name} has '{attr}', "
                                          "shared experts are not supported")
        if getattr(block, "jitter_noise", 0) or getattr(block, "router_jitter_noise", 0):
            raise NotImplementedError(f"SparseMoeBlock.from_hf: {name} has router jitter "
                                      "noise > 0, which is not supported")
        gate = block.gate
        if getattr(gate, "bias", None) is not None:
            raise NotImplementedError(f"SparseMoeBlock.from_hf: {name}'s router has a bias")
        top_k = getattr(block, "top_k", None) or getattr(gate, "top_k")
        experts = block.experts
        v5 = hasattr(experts, "gate_up_proj")
        if v5:
            act = getattr(experts, "act_fn", None)
            E, two_f, H = experts.gate_up_proj.shape
            F_ = two_f // 2
            if getattr(experts, "gate_up_proj_bias", None) is not None:
                raise NotImplementedError(f"SparseMoeBlock.from_hf: {name}'s experts have biases")
            gu = experts.gate_up_proj.detach()
            w1 = gu[:, :F_, :].transpose(1, 2)
            w3 = gu[:, F_:, :].transpose(1, 2)
            w2 = experts.down_proj.detach().transpose(1, 2)
        else:
            E = len(experts)
            act = getattr(experts[0], "act_fn", None)
            F_, H = experts[0].w1.weight.shape
            w1 = torch.stack([e.w1.weight.detach().T for e in experts])
            w3 = torch.stack([e.w3.weight.detach().T for e in experts])
            w2 = torch.stack([e.w2.weight.detach().T for e in experts])
        if act is not None and type(act).__name__ not in ("SiLU", "SiLUActivation"):
            raise NotImplementedError(f"SparseMoeBlock.from_hf: {name}'s experts use "
                                      f"{type(act).__name__}; kfuse's experts are SwiGLU (SiLU)")
        # Mixtral renormalises its top-k probabilities; Qwen-style routers say so in
        # norm_topk_prob.
        renormalize = bool(getattr(gate, "norm_topk_prob", getattr(block, "norm_topk_prob", True)))
        gate_w = gate.weight.detach()
        m = cls(H, F_, E, top_k, routing="softmax_topk", renormalize=renormalize,
                return_router_logits=not v5, dtype=gate_w.dtype, device=gate_w.device)
        with torch.no_grad():
            m.gate.copy_(gate_w)
            m.w1.copy_(w1)
            m.w3.copy_(w3)
            m.w2.copy_(w2)
        return m


class GaussianKernelOperator:
    """The Gaussian kernel matrix K(X, Y) = exp(-|x - y|^2 / (2 sigma^2)) as an operator,
    never stored: ``K = GaussianKernelOperator(Y, sigma)`` (X = Y), or ``K(X)`` for
    other query points; ``K @ V`` is K(X, Y) V ([M x R] or [M]); ``K.kde(queries)`` the
    log-density under the KDE of Y. Differentiable in X, Y and V (and the queries)."""

    def __init__(self, Y, sigma=1.0, X=None):
        self.Y = Y
        self.X = Y if X is None else X
        self.sigma = float(sigma)

    def __call__(self, X):
        return GaussianKernelOperator(self.Y, self.sigma, X)

    @property
    def shape(self):
        return (self.X.shape[0], self.Y.shape[0])

    def __matmul__(self, V):
        return ops.gauss_matvec(self.X, self.Y, V, self.sigma)

    def kde(self, queries=None, *, weights=None, log=True):
        return ops.kde(self.X if queries is None else queries, self.Y, weights, sigma=self.sigma,
                       log=log)

    def mmd2(self, other, *, unbiased=False):
        """MMD^2 between this operator's sample Y and `other`."""
        return ops.mmd2(self.Y, other, sigma=self.sigma, unbiased=unbiased)
