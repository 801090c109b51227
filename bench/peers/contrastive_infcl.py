"""Inf-CL peer for the CLIP cases: inf_cl.cal_inf_loss (PyPI package inf-cl, Triton,
GPU only) in both directions, loss = (cal_inf_loss(tau A, B) + cal_inf_loss(tau B, A)) / 2
(each a mean over rows), backward by autograd into A, B and t. Inf-CL has no SigLIP;
it computes in fp32 whatever the input type (its own code calls .float()), so the
bf16 cases hand it bf16 embeddings and it upcasts them. Skipped (exit 3) when inf_cl
or a GPU is missing."""
import math
import sys

from common import SKIPPED, load_cases, machine, parse_args, pick_device, require, result, time_ms, write

torch, inf_cl = require("torch", "inf_cl")


def step(op, A, B, t):
    backward = op.endswith("_bwd")
    head_dim = 256 if A.shape[1] % 256 == 0 else 128  # Inf-CL views rows as heads
    with torch.set_grad_enabled(backward):
        # The scale is applied to the rows as cal_inf_loss does with scale=...; passing
        # it as that argument routes its gradient through torch.distributed, which
        # needs an initialised process group.
        scale = t.exp()
        loss = (inf_cl.cal_inf_loss(scale * A, B, head_dim=head_dim) +
                inf_cl.cal_inf_loss(scale * B, A, head_dim=head_dim)) / 2
    if backward:
        A.grad = B.grad = t.grad = None
        loss.backward()
    return loss


def main():
    args = parse_args(__doc__)
    device = pick_device(torch, args.device)
    if device != "cuda":
        print("skipped: Inf-CL runs on a CUDA device only", file=sys.stderr)
        sys.exit(SKIPPED)
    results = []
    doc = None
    for op in ("clip_fwd", "clip_fwd_bwd"):
        doc, cases = load_cases(args.cases, op)
        for c in cases:
            n, d = c["sizes"]["N"], c["sizes"]["d"]
            dtype = torch.bfloat16 if c["dtype"] == "bf16" else torch.float32
            g = torch.Generator().manual_seed(1)
            A = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
            B = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
            A = A.to(device=device, dtype=dtype).requires_grad_()
            B = B.to(device=device, dtype=dtype).requires_grad_()
            t = torch.tensor(math.log(1 / 0.07), device=device, requires_grad=True)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step(op, A, B, t)
            torch.cuda.synchronize()
            note = f"cal_inf_loss both ways, peak extra memory {(torch.cuda.max_memory_allocated() - base) >> 20} MiB"
            ms = time_ms(torch, device, lambda: step(op, A, B, t), args.warmup, args.runs)
            results.append(result(c, "infcl", device, ms, note=note))
            print(f"infcl {op:15s} {c['case']:12s} {c['dtype']:5s} median {results[-1]['median_ms']:.3f} ms")
    write(args.json, doc.get("preset", "") if doc else "", machine(torch, device, 0), results)


if __name__ == "__main__":
    main()
