"""scikit-learn peer for tensor_sketch (CPU only): PolynomialCountSketch(degree=2,
n_components=l), fitted once (hashes drawn), then transform timed on the
concatenation x = [a; b]. It is the same algorithm (count sketches multiplied in
Fourier space, numpy FFT) at the same sizes (d = d1 + d2, l), sketching x (x) x
rather than a (x) b: comparable work, not the same output."""
import sys

from common import SKIPPED, load_cases, parse_args, require, result, time_ms, write

np, sklearn = require("numpy", "sklearn")
from sklearn.kernel_approximation import PolynomialCountSketch  # noqa: E402


class _NoTorch:
    """time_ms only needs a torch module on the GPU path."""


def main():
    args = parse_args(__doc__)
    if args.device == "cuda":
        print("skipped: scikit-learn runs on the CPU only", file=sys.stderr)
        sys.exit(SKIPPED)
    if args.threads:
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(args.threads)
        except ImportError:
            pass
    doc, cases = load_cases(args.cases, "tensor_sketch")
    results = []
    for c in cases:
        s = c["sizes"]
        n, d1, d2, l = s["n"], s["d1"], s["d2"], s["l"]
        rng = np.random.default_rng(1)
        X = rng.uniform(-1, 1, size=(n, d1 + d2)).astype(np.float32)
        sketch = PolynomialCountSketch(degree=2, n_components=l, gamma=1.0, coef0=0.0,
                                       random_state=0).fit(X)
        ms = time_ms(_NoTorch, "cpu", lambda: sketch.transform(X), args.warmup, args.runs)
        results.append(result(c, "sklearn", "cpu", ms,
                               note="PolynomialCountSketch(degree=2) of [a; b]"))
        print(f"sklearn tensor_sketch {c['case']}: median {results[-1]['median_ms']:.3f} ms")
    import platform
    mach = {"backend": "cpu", "device": platform.processor() or platform.machine(),
            "threads": args.threads, "sklearn": sklearn.__version__, "numpy": np.__version__}
    write(args.json, doc.get("preset", ""), mach, results)


if __name__ == "__main__":
    main()
