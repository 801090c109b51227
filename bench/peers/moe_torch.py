"""PyTorch peers for the mixture-of-experts cases, bf16, the way PyTorch users write it:

  torch             the reference MoE: softmax + topk, a stable argsort of the slots by
                    expert and bincount (counts to the host), index_select into expert
                    order, a Python loop of per-expert matmuls, and the combine as an
                    inverse permutation plus a weighted sum over k; backward by autograd
  torch_grouped_mm  the same with torch._grouped_mm (one call for all experts, offsets
                    on the device) where the installed PyTorch has it
  torch_dense       for moe_grouped_gemm / moe_gather_gemm only: one dense matmul of
                    the same flops, (T k x H) @ (H x F) -- the cuBLAS (or CPU BLAS)
                    yardstick for a grouped GEMM

Each op of kfuse-bench's JSON is timed on the same sizes; bytes and flops are kfuse's."""
import math

from common import load_cases, machine, parse_args, pick_device, require, result, time_ms, write

(torch,) = require("torch")
F = torch.nn.functional

OPS = ["moe_router_plan", "moe_scatter", "moe_gather", "moe_grouped_gemm", "moe_gather_gemm",
       "moe_mlp_fwd", "moe_mlp_fwd_bwd"]


class Problem:
    """One case's inputs (bf16) and its routing, built once."""

    def __init__(self, sizes, device):
        T, H, Fd, E, k = (sizes[n] for n in ("T", "H", "F", "E", "k"))
        self.T, self.H, self.F, self.E, self.k = T, H, Fd, E, k
        g = torch.Generator(device="cpu").manual_seed(1)
        bf = torch.bfloat16

        def rand(*shape, scale=1.0):
            return ((torch.rand(*shape, generator=g) * 2 - 1) * scale).to(device=device, dtype=bf)

        self.logits = rand(T, E, scale=2.0)
        self.x = rand(T, H)
        self.dy = rand(T, H)
        self.w1 = rand(E, H, Fd, scale=math.sqrt(3.0 / H))
        self.w3 = rand(E, H, Fd, scale=math.sqrt(3.0 / H))
        self.w2 = rand(E, Fd, H, scale=math.sqrt(3.0 / Fd))
        self.ids, self.gates = route(self.logits, k)
        self.order, self.inverse, self.counts, self.offs = plan(self.ids, E)
        self.xs = self.x.index_select(0, self.order // k)


def route(logits, k):
    p = torch.softmax(logits.float(), dim=-1)
    gates, ids = torch.topk(p, k, dim=-1)
    return ids, gates / gates.sum(-1, keepdim=True)


def plan(ids, E):
    """Slots in expert order (stable), the inverse permutation, counts, end offsets."""
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    counts = torch.bincount(flat, minlength=E)
    offs = torch.cumsum(counts, 0).to(torch.int32)
    return order, inverse, counts, offs


def per_expert(xs, w, counts):
    """Rows of xs in expert order times each expert's weights: the loop users write."""
    out = torch.empty(xs.shape[0], w.shape[2], device=xs.device, dtype=xs.dtype)
    start = 0
    for e, c in enumerate(counts.tolist()):  # the counts go to the host
        if c:
            out[start:start + c] = xs[start:start + c] @ w[e]
        start += c
    return out


def grouped(xs, w, offs):
    return torch._grouped_mm(xs, w, offs=offs)


def combine(yp, inverse, gates):
    T, k = gates.shape
    ys = yp.index_select(0, inverse).view(T, k, -1)
    return (ys.float() * gates.unsqueeze(-1)).sum(1).to(yp.dtype)


def mlp(p, x, gates, w1, w3, w2, mm):
    """mm(xs, w) is the grouped product (per_expert or grouped)."""
    xs = x.index_select(0, p.order // p.k)
    h = F.silu(mm(xs, w1)) * mm(xs, w3)
    return combine(mm(h, w2), p.inverse, gates)


def main():
    args = parse_args(__doc__)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(torch, args.device)
    has_grouped = hasattr(torch, "_grouped_mm")
    problems = {}
    doc = None
    results = []
    for op in OPS:
        doc, cases = load_cases(args.cases, op)
        for c in cases:
            key = c["case"]
            if key not in problems:
                problems[key] = Problem(c["sizes"], device)
            p = problems[key]
            by_expert = lambda xs, w: per_expert(xs, w, p.counts)
            by_group = lambda xs, w: grouped(xs, w, p.offs)
            impls = {}
            if op == "moe_router_plan":
                impls["torch"] = lambda: plan(route(p.logits, p.k)[0], p.E)
            elif op == "moe_scatter":
                impls["torch"] = lambda: p.x.index_select(0, p.order // p.k)
            elif op == "moe_gather":
                impls["torch"] = lambda: combine(p.xs, p.inverse, p.gates)
            elif op in ("moe_grouped_gemm", "moe_gather_gemm"):
                gather = op == "moe_gather_gemm"
                src = (lambda: p.x.index_select(0, p.order // p.k)) if gather else (lambda: p.xs)
                impls["torch"] = lambda: by_expert(src(), p.w1)
                if has_grouped:
                    impls["torch_grouped_mm"] = lambda: by_group(src(), p.w1)
                impls["torch_dense"] = lambda: p.xs @ p.w1[0]
            elif op == "moe_mlp_fwd":
                impls["torch"] = lambda: mlp(p, p.x, p.gates, p.w1, p.w3, p.w2, by_expert)
                if has_grouped:
                    impls["torch_grouped_mm"] = lambda: mlp(p, p.x, p.gates, p.w1, p.w3, p.w2,
                                                            by_group)
            elif op == "moe_mlp_fwd_bwd":
                leaves = [t.detach().requires_grad_() for t in (p.x, p.gates, p.w1, p.w3, p.w2)]

                def fwd_bwd(mm):
                    for t in leaves:
                        t.grad = None
                    y = mlp(p, *leaves, mm)
                    y.backward(p.dy)

                impls["torch"] = lambda: fwd_bwd(by_expert)
                if has_grouped:
                    impls["torch_grouped_mm"] = lambda: fwd_bwd(by_group)
            for impl, fn in impls.items():
                try:
                    with torch.set_grad_enabled(op == "moe_mlp_fwd_bwd"):
                        ms = time_ms(torch, device, fn, args.warmup, args.runs)
                except Exception as e:  # e.g. an op this PyTorch build lacks on this device
                    print(f"{impl} {op} {key}: skipped ({type(e).__name__}: {str(e)[:120]})")
                    continue
                note = {"torch": "sort + index_select + per-expert loop",
                        "torch_grouped_mm": "torch._grouped_mm",
                        "torch_dense": "one dense matmul of equal flops"}[impl]
                results.append(result(c, impl, device, ms, note=note))
                print(f"{impl:16s} {op:16s} {key:16s} median {results[-1]['median_ms']:.3f} ms")
    write(args.json, doc.get("preset", "") if doc else "", machine(torch, device, args.threads),
          results)


if __name__ == "__main__":
    main()
