"""PyTorch peers for the fusion family, on the cases of a kfuse-bench JSON file:

rp_fuse           impl "torch": the authors' procedure (yokiwuuu/KrossFuse main.py,
                  hadamard_product_fusion): seed reset per call, U_j = Uniform[-sqrt 3,
                  sqrt 3] / sqrt l drawn with torch.rand, blocks of 100 rows, two
                  matmuls and their product (their per-block torch.cuda.empty_cache()
                  is left out); inputs L2-normalised in the timed call, as kfuse's
                  cosine sides do.
                  impl "torch-gemm": the two bare matmuls A U1 and B U2 (U drawn and
                  inputs normalised beforehand): the floor of rp_fuse.
kron_fuse         impl "torch": torch.einsum('ni,nj->nij').reshape(n, -1).
product_kernel_topk impl "torch": scores materialised per chunk of queries
                  (cos1 * (C + cos2)) then torch.topk; chunks bounded by a memory budget.
tensor_sketch     impl "torch": count sketches by index_add_, then rfft / irfft (hashes
                  drawn beforehand).
rff_fuse          impl "torch": [cos, sin](cat(A / s1, B / s2) @ W) / sqrt r, W drawn
                  with torch.randn in the timed call (kfuse's GPU path draws its frequencies
                  per call, its CPU path once per context: the draw cache).
Precisions: exact (fp32, TF32 off), tf32 (TF32 matmuls allowed), bf16 (bf16 operands).
"""
import math

from common import load_cases, machine, parse_args, pick_device, require, result, time_ms, write

(torch,) = require("torch")
F = torch.nn.functional

BUDGET_BYTES = {"cpu": 256 << 20, "cuda": 4 << 30}


def set_precision(precision):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def cast(x, precision):
    return x.bfloat16() if precision == "bf16" else x


def rand(shape, device, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) * 2 - 1).to(device)


def rp_authors(A, B, l, precision, block=100, seed=42):
    A = F.normalize(A, dim=1)
    B = F.normalize(B, dim=1)
    torch.manual_seed(seed)
    s3 = math.sqrt(3.0)
    U1 = (torch.rand(A.shape[1], l, device=A.device) * 2 * s3 - s3) / math.sqrt(l)
    U2 = (torch.rand(B.shape[1], l, device=B.device) * 2 * s3 - s3) / math.sqrt(l)
    U1, U2 = cast(U1, precision), cast(U2, precision)
    out = torch.zeros(A.shape[0], l, device=A.device)
    for i in range(0, A.shape[0], block):
        out[i:i + block] = ((cast(A[i:i + block], precision) @ U1) *
                            (cast(B[i:i + block], precision) @ U2)).float()
    return out


def main():
    args = parse_args(__doc__)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(torch, args.device)
    results = []
    doc = None
    for op in ["rp_fuse", "kron_fuse", "product_kernel_topk", "tensor_sketch", "rff_fuse"]:
        doc, cases = load_cases(args.cases, op)
        for c in cases:
            s, precision = c["sizes"], c["precision"]
            set_precision(precision)
            tw = lambda fn: time_ms(torch, device, fn, args.warmup, args.runs)  # noqa: E731
            if op == "rp_fuse":
                n, d1, d2, l = s["n"], s["d1"], s["d2"], s["l"]
                A, B = rand((n, d1), device, 1), rand((n, d2), device, 2)
                ms = tw(lambda: rp_authors(A, B, l, precision))
                results.append(result(c, "torch", device, ms, note="authors' blocked procedure"))
                An, Bn = cast(F.normalize(A, dim=1), precision), cast(F.normalize(B, dim=1), precision)
                U1, U2 = cast(rand((d1, l), device, 3), precision), cast(rand((d2, l), device, 4), precision)
                ms = tw(lambda: (An @ U1, Bn @ U2))
                results.append(result(c, "torch-gemm", device, ms, note="two bare matmuls: the floor"))
            elif op == "kron_fuse":
                n, d1, d2 = s["n"], s["d1"], s["d2"]
                A, B = rand((n, d1), device, 1), rand((n, d2), device, 2)
                ms = tw(lambda: torch.einsum("ni,nj->nij", A, B).reshape(n, -1))
                results.append(result(c, "torch", device, ms, note="einsum"))
            elif op == "product_kernel_topk":
                M, N, k, d1, d2 = s["M"], s["N"], s["k"], s["d1"], s["d2"]
                Q1, Q2 = rand((M, d1), device, 1), rand((M, d2), device, 2)
                G1, G2 = rand((N, d1), device, 3), rand((N, d2), device, 4)
                chunk = max(1, min(M, BUDGET_BYTES[device] // (4 * N * 3)))

                def topk():
                    g1, g2 = F.normalize(G1, dim=1), F.normalize(G2, dim=1)
                    q1, q2 = F.normalize(Q1, dim=1), F.normalize(Q2, dim=1)
                    for i in range(0, M, chunk):
                        S = (q1[i:i + chunk] @ g1.T).mul_((q2[i:i + chunk] @ g2.T).add_(1.0))
                        torch.topk(S, k, dim=1)
                ms = tw(topk)
                results.append(result(c, "torch", device, ms,
                                      note=f"materialised scores + topk, chunks of {chunk} queries"))
            elif op == "tensor_sketch":
                n, d1, d2, l = s["n"], s["d1"], s["d2"], s["l"]
                A, B = rand((n, d1), device, 1), rand((n, d2), device, 2)
                g = torch.Generator().manual_seed(5)
                h1 = torch.randint(0, l, (d1,), generator=g).to(device)
                h2 = torch.randint(0, l, (d2,), generator=g).to(device)
                s1 = (torch.randint(0, 2, (d1,), generator=g) * 2 - 1).float().to(device)
                s2 = (torch.randint(0, 2, (d2,), generator=g) * 2 - 1).float().to(device)

                def sketch():
                    ca = torch.zeros(n, l, device=device).index_add_(1, h1, A * s1)
                    cb = torch.zeros(n, l, device=device).index_add_(1, h2, B * s2)
                    return torch.fft.irfft(torch.fft.rfft(ca) * torch.fft.rfft(cb), n=l)
                ms = tw(sketch)
                results.append(result(c, "torch", device, ms, note="index_add count sketches + rfft"))
            elif op == "rff_fuse":
                n, d1, d2, l = s["n"], s["d1"], s["d2"], s["l"]
                r = l // 2
                A, B = rand((n, d1), device, 1), rand((n, d2), device, 2)

                def rff():
                    torch.manual_seed(6)  # frequencies drawn per call, as kfuse does
                    W = torch.randn(d1 + d2, r, device=device)
                    P = torch.cat([A, B], dim=1) @ W
                    return torch.cat([torch.cos(P), torch.sin(P)], dim=1) / math.sqrt(r)
                ms = tw(rff)
                results.append(result(c, "torch", device, ms, note="matmul + cos/sin"))
            print(f"torch {op} {c['case']} {precision}: median {results[-1]['median_ms']:.3f} ms")
    write(args.json, doc.get("preset", "") if doc else "", machine(torch, device, args.threads), results)


if __name__ == "__main__":
    main()
