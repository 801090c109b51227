"""PyTorch peer for the contrastive family: the naive losses with materialised
logits, as open_clip writes them.

CLIP (open_clip ClipLoss): logits = exp(t) * A @ B.T, loss = (CE(logits, labels) +
CE(logits.T, labels)) / 2, backward by autograd into A, B and t. SigLIP (open_clip
SigLipLoss): logits = exp(t) * A @ B.T + b, loss = -logsigmoid(z * logits).sum() / N,
z = 2 I - 1. bf16 cases run under autocast with bf16 embeddings, as open_clip
trains (matmul in bf16, cross-entropy in fp32). The note gives the peak extra
memory of one call on a GPU (torch.cuda.max_memory_allocated above the inputs);
a case that does not fit is reported as skipped in the note, without a time."""
import math

from common import load_cases, machine, parse_args, pick_device, require, result, time_ms, write

(torch,) = require("torch")
F = torch.nn.functional

OPS = ("clip_fwd", "clip_fwd_bwd", "siglip_fwd", "siglip_fwd_bwd")


def clip_loss(A, B, t, labels):
    logits = t.exp() * A @ B.T
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def siglip_loss(A, B, t, b):
    logits = t.exp() * A @ B.T + b
    z = 2 * torch.eye(A.shape[0], device=A.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(z * logits).sum() / A.shape[0]


def embeddings(n, d, device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return (x / x.norm(dim=1, keepdim=True)).to(device=device, dtype=dtype)


def step(op, A, B, t, b, labels, autocast):
    backward = op.endswith("_bwd")
    with torch.autocast(A.device.type, dtype=torch.bfloat16, enabled=autocast):
        with torch.set_grad_enabled(backward):
            loss = clip_loss(A, B, t, labels) if op.startswith("clip") else siglip_loss(A, B, t, b)
    if backward:
        A.grad = B.grad = t.grad = b.grad = None
        loss.backward()
    return loss


def main():
    args = parse_args(__doc__)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(torch, args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # kfuse's fp32 cases are exact
    results = []
    doc = None
    for op in OPS:
        doc, cases = load_cases(args.cases, op)
        for c in cases:
            n, d = c["sizes"]["N"], c["sizes"]["d"]
            bf16 = c["dtype"] == "bf16"
            dtype = torch.bfloat16 if bf16 else torch.float32
            A = embeddings(n, d, device, dtype, 1).requires_grad_()
            B = embeddings(n, d, device, dtype, 2).requires_grad_()
            t = torch.tensor(math.log(1 / 0.07) if op.startswith("clip") else math.log(10.0),
                             device=device, requires_grad=True)
            b = torch.tensor(-10.0, device=device, requires_grad=True)
            labels = torch.arange(n, device=device)
            note = "materialised logits, autograd" + (", autocast bf16" if bf16 else "")
            try:
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    step(op, A, B, t, b, labels, bf16)
                    torch.cuda.synchronize()
                    note += f", peak extra memory {(torch.cuda.max_memory_allocated() - base) >> 20} MiB"
                ms = time_ms(torch, device, lambda: step(op, A, B, t, b, labels, bf16),
                             args.warmup, args.runs)
            except torch.OutOfMemoryError:
                print(f"torch {op} {c['case']} {c['dtype']}: out of memory, skipped")
                del A, B
                if device == "cuda":
                    torch.cuda.empty_cache()
                continue
            results.append(result(c, "torch", device, ms, note=note))
            print(f"torch {op:15s} {c['case']:12s} {c['dtype']:5s} median {results[-1]['median_ms']:.3f} ms")
    write(args.json, doc.get("preset", "") if doc else "", machine(torch, device, args.threads), results)


if __name__ == "__main__":
    main()
