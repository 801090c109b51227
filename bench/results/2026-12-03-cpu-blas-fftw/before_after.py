"""Side-by-side: kfuse before and after, each against the same best-of peer timings."""
import json, sys
from collections import defaultdict
before, after, peers, out = sys.argv[1], sys.argv[2], sys.argv[3:-1], sys.argv[-1]
def load(path):
    return {(r["op"], r["case"], r["precision"], r["impl"]): r for r in json.load(open(path))["results"]}
kb, ka = load(before), load(after)
pt = {}
for p in peers:
    pt.update(load(p))
keys = sorted({k[:3] for k in list(kb) + list(ka)})
impls = sorted({k[3] for k in pt})
lines = ["| op | case | precision | kfuse before ms | kfuse after ms | after speed-up | " +
         " | ".join(f"{i} ms | {i}/kfuse before | {i}/kfuse after" for i in impls) + " |",
         "|" + "---|" * (6 + 3 * len(impls))]
for k in keys:
    b = kb.get(k + ("kfuse",)); a = ka.get(k + ("kfuse",))
    cells = list(k)
    cells.append(f"{b['median_ms']:.3f}" if b else "-")
    cells.append(f"{a['median_ms']:.3f}" if a else "-")
    cells.append(f"{b['median_ms'] / a['median_ms']:.2f}x" if a and b else "-")
    for i in impls:
        p = pt.get(k + (i,))
        cells.append(f"{p['median_ms']:.3f}" if p else "-")
        cells.append(f"{p['median_ms'] / b['median_ms']:.2f}x" if p and b else "-")
        cells.append(f"**{p['median_ms'] / a['median_ms']:.2f}x**" if p and a else "-")
    lines.append("| " + " | ".join(cells) + " |")
open(out, "w").write("\n".join(lines) + "\n")
