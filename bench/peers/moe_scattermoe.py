"""ScatterMoE peer (shawntan/scattermoe, Triton) for the SwiGLU MLP cases: its GLUMLP
(scatter2scatter grouped GEMMs that read scattered rows inside the tiles, the combine
with the gates as a batched matmul), forward and forward + backward, bf16, routing
from softmax + topk on the same logits. ScatterMoE is not on PyPI: install it from
its repository (pip install git+...) on the GPU machine; without it this peer is
reported as skipped. Triton needs a GPU, so there is no CPU run."""
import math

from common import load_cases, machine, parse_args, pick_device, require, result, time_ms, write

(torch, scattermoe_mlp) = require("torch", "scattermoe.mlp")


def main():
    args = parse_args(__doc__)
    device = pick_device(torch, args.device)
    if device != "cuda":
        print("skipped: ScatterMoE runs on a GPU only")
        raise SystemExit(3)
    results, doc = [], None
    for op in ("moe_mlp_fwd", "moe_mlp_fwd_bwd"):
        doc, cases = load_cases(args.cases, op)
        for c in cases:
            s = c["sizes"]
            T, H, Fd, E, k = s["T"], s["H"], s["F"], s["E"], s["k"]
            g = torch.Generator(device="cpu").manual_seed(1)
            mlp = scattermoe_mlp.GLUMLP(input_size=H, hidden_size=Fd, num_experts=E, top_k=k,
                                        activation=torch.nn.SiLU()).to(device=device,
                                                                       dtype=torch.bfloat16)
            with torch.no_grad():  # the same scales as kfuse-bench
                mlp.experts.weight.uniform_(-math.sqrt(3.0 / H), math.sqrt(3.0 / H))
                mlp.output_experts.weight.uniform_(-math.sqrt(3.0 / Fd), math.sqrt(3.0 / Fd))
            x = ((torch.rand(T, H, generator=g) * 2 - 1)).to(device, torch.bfloat16)
            dy = ((torch.rand(T, H, generator=g) * 2 - 1)).to(device, torch.bfloat16)
            logits = ((torch.rand(T, E, generator=g) * 4 - 2)).to(device, torch.bfloat16)
            p, ids = torch.topk(torch.softmax(logits.float(), -1), k, dim=-1)
            gates = (p / p.sum(-1, keepdim=True)).to(torch.bfloat16)
            if op == "moe_mlp_fwd":
                def fn():
                    with torch.no_grad():
                        mlp(x, gates, ids)
            else:
                xg = x.detach().requires_grad_()
                gg = gates.detach().requires_grad_()

                def fn():
                    mlp.zero_grad(set_to_none=True)
                    mlp(xg, gg, ids).backward(dy)
            ms = time_ms(torch, device, fn, args.warmup, args.runs)
            results.append(result(c, "scattermoe", device, ms, note="GLUMLP"))
            print(f"scattermoe {op:16s} {c['case']:16s} median {results[-1]['median_ms']:.3f} ms")
    write(args.json, doc.get("preset", "") if doc else "", machine(torch, device, args.threads),
          results)


if __name__ == "__main__":
    main()
