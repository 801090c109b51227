"""kfuse builds side by side, each against the same best-of peer timings:
python3 tables.py OUT.md LABEL=kfuse.json [LABEL=kfuse.json ...] -- PEER.json [...]
The speed-up column is the first build's time over the last's; a ratio is peer / kfuse."""
import json, sys
out, args = sys.argv[1], sys.argv[2:]
split = args.index("--")
builds = [a.split("=", 1) for a in args[:split]]
def load(path):
    return {(r["op"], r["case"], r["precision"], r["impl"]): r for r in json.load(open(path))["results"]}
ks = [(label, load(path)) for label, path in builds]
pt = {}
for p in args[split + 1:]:
    pt.update(load(p))
impls = sorted({k[3] for k in pt})
ms = lambda d, k: d[k + ("kfuse",)]["median_ms"] if k + ("kfuse",) in d else None
head = ["op", "case", "precision"] + [f"{l} ms" for l, _ in ks] + [f"{ks[0][0]} / {ks[-1][0]}"]
for i in impls:
    head += [f"{i} ms"] + [f"{i}/{l}" for l, _ in ks]
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
for k in sorted({k[:3] for _, d in ks for k in d}):
    t = [ms(d, k) for _, d in ks]
    cells = list(k) + [f"{v:.3f}" if v else "-" for v in t]
    cells.append(f"{t[0] / t[-1]:.2f}x" if t[0] and t[-1] else "-")
    for i in impls:
        p = pt.get(k + (i,))
        p = p["median_ms"] if p else None
        cells.append(f"{p:.3f}" if p else "-")
        cells += [f"{p / v:.2f}x" if p and v else "-" for v in t]
    lines.append("| " + " | ".join(cells) + " |")
open(out, "w").write("\n".join(lines) + "\n")
