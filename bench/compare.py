"""Joins kfuse-bench JSON files (kfuse and peers, schema kfuse-bench/1) into one
side-by-side table of medians and speed ratios (peer time / kfuse time: > 1 means
kfuse is faster), and optionally draws the ratios as a PNG.

    python3 bench/compare.py kfuse.json torch.json keops.json [--png ratios.png] [--md table.md]
"""
import argparse
import json
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--png")
    ap.add_argument("--md")
    args = ap.parse_args()
    rows = defaultdict(dict)  # (op, case, precision, backend) -> impl -> result
    machines = {}
    for path in args.files:
        with open(path) as f:
            doc = json.load(f)
        for r in doc["results"]:
            rows[(r["op"], r["case"], r["precision"], r["backend"])][r["impl"]] = r
            machines[r["impl"]] = doc.get("machine", {})
    peers = sorted({impl for v in rows.values() for impl in v if impl != "kfuse"})
    header = ["op", "case", "precision", "backend", "kfuse ms"] + [f"{p} ms" for p in peers] + \
             [f"{p}/kfuse" for p in peers] + ["roofline"]
    lines, plot = [], []
    for key in sorted(rows):
        impls = rows[key]
        k = impls.get("kfuse")
        cells = list(key) + [f"{k['median_ms']:.3f}" if k else "-"]
        cells += [f"{impls[p]['median_ms']:.3f}" if p in impls else "-" for p in peers]
        for p in peers:
            if k and p in impls:
                ratio = impls[p]["median_ms"] / k["median_ms"]
                cells.append(f"{ratio:.2f}x")
                plot.append((f"{key[0]} {key[1]} {key[2]} vs {p}", ratio))
            else:
                cells.append("-")
        frac = k.get("roofline_fraction") if k else None
        cells.append(f"{100 * frac:.1f}% {k['roofline']}" if frac is not None else "n/a")
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = "  ".join("{:>%d}" % w for w in widths)
    print(fmt.format(*header))
    for cells in lines:
        print(fmt.format(*cells))
    if args.md:
        with open(args.md, "w") as f:
            f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
            for cells in lines:
                f.write("| " + " | ".join(cells) + " |\n")
            for impl, m in sorted(machines.items()):
                f.write(f"\n- {impl}: {json.dumps(m)}")
            f.write("\n")
    if args.png and plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(plot) + 2), 5))
        ax.bar(range(len(plot)), [r for _, r in plot], color="tab:blue")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(plot)))
        ax.set_xticklabels([n for n, _ in plot], fontsize=7, rotation=40, ha="right")
        ax.set_ylabel("peer time / kfuse time (>1: kfuse faster)")
        ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
