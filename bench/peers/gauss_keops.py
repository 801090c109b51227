"""KeOps peer for gauss_matvec: the LazyTensor formula exp(-|x_i - y_j|^2 / (2 sigma^2)) @ V,
K never materialised (pykeops + keopscore from PyPI). KeOps computes in fp32 with
its own kernels (no tensor cores), so every precision maps to its one fp32 path;
the note says so."""
from common import (load_cases, machine, parse_args, pick_device, require, result, time_ms,
                    uniform_inputs, write)

torch, _ = require("torch", "pykeops.torch")
from pykeops.torch import LazyTensor  # noqa: E402


def matvec(X, Y, V, inv):
    x_i = LazyTensor(X[:, None, :])
    y_j = LazyTensor(Y[None, :, :])
    K = (-((x_i - y_j) ** 2).sum(-1) * inv).exp()
    return K @ V


def main():
    args = parse_args(__doc__)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(torch, args.device)
    doc, cases = load_cases(args.cases, "gauss_matvec")
    results = []
    for c in cases:
        if c["precision"] != "exact":
            continue  # one fp32 path: compared with kfuse's exact results only
        s = c["sizes"]
        M, N, d, R = s["M"], s["N"], s["d"], s["R"]
        X, Y, V = uniform_inputs(torch, device, 1, (M, d), (N, d), (N, R))
        inv = 1.0 / (2.0 * d)  # sigma = sqrt(d)
        ms = time_ms(torch, device, lambda: matvec(X, Y, V, inv), args.warmup, args.runs)
        results.append(result(c, "keops", device, ms, note="LazyTensor, fp32 (no tensor cores)"))
        print(f"keops {c['case']:6s} {c['precision']:6s} median {results[-1]['median_ms']:.3f} ms")
    write(args.json, doc.get("preset", ""), machine(torch, device, args.threads), results)


if __name__ == "__main__":
    main()
