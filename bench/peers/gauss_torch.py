"""PyTorch peer for gauss_matvec: out = exp(-cdist(X, Y)^2 / (2 sigma^2)) @ V, computed
the way PyTorch users do it (torch.cdist, exp, matmul), in row chunks sized so that
the materialised chunk of K fits in a memory budget. Precisions: exact (fp32 with
TF32 disabled), tf32 (TF32 matmuls allowed), bf16 (bf16 operands of the cross term
and of K @ V, fp32 accumulation)."""
import math

from common import (load_cases, machine, parse_args, pick_device, require, result, time_ms,
                    uniform_inputs, write)

(torch,) = require("torch")

BUDGET_BYTES = {"cpu": 256 << 20, "cuda": 4 << 30}


def matvec(X, Y, V, sigma, precision, chunk):
    inv = 1.0 / (2.0 * sigma * sigma)
    out = torch.empty(X.shape[0], V.shape[1], device=X.device, dtype=torch.float32)
    if precision == "bf16":
        Yb, Vb = Y.bfloat16(), V.bfloat16()
        y2 = (Yb.float() ** 2).sum(1)
    for i in range(0, X.shape[0], chunk):
        x = X[i:i + chunk]
        if precision == "bf16":
            xb = x.bfloat16()
            d2 = ((xb.float() ** 2).sum(1, keepdim=True) + y2 - 2.0 * (xb @ Yb.T).float()).clamp_(min=0)
            out[i:i + chunk] = (torch.exp_(d2.mul_(-inv)).bfloat16() @ Vb).float()
        else:
            d2 = torch.cdist(x, Y).pow_(2)
            out[i:i + chunk] = torch.exp_(d2.mul_(-inv)) @ V
    return out


def main():
    args = parse_args(__doc__)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(torch, args.device)
    doc, cases = load_cases(args.cases, "gauss_matvec")
    results = []
    for c in cases:
        s = c["sizes"]
        M, N, d, R = s["M"], s["N"], s["d"], s["R"]
        precision = c["precision"]
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        X, Y, V = uniform_inputs(torch, device, 1, (M, d), (N, d), (N, R))
        sigma = math.sqrt(d)
        chunk = max(1, min(M, BUDGET_BYTES[device] // (4 * N * 3)))
        ms = time_ms(torch, device, lambda: matvec(X, Y, V, sigma, precision, chunk), args.warmup, args.runs)
        results.append(result(c, "torch", device, ms, note=f"cdist+exp+matmul, chunk {chunk} rows"))
        print(f"torch {c['case']:6s} {precision:6s} median {results[-1]['median_ms']:.3f} ms")
    write(args.json, doc.get("preset", ""), machine(torch, device, args.threads), results)


if __name__ == "__main__":
    main()
