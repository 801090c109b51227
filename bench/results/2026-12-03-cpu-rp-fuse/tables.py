"""kfuse before / with the draw cache off / after, each against the same best-of peer
timings: python3 tables.py before.json nocache.json after.json peer.json... out.md"""
import json, sys
before, nocache, after, peers, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:-1], sys.argv[-1]
def load(path):
    return {(r["op"], r["case"], r["precision"], r["impl"]): r for r in json.load(open(path))["results"]}
kb, kn, ka = load(before), load(nocache), load(after)
pt = {}
for p in peers:
    pt.update(load(p))
impls = sorted({k[3] for k in pt})
head = ["op", "case", "precision", "kfuse before ms", "cache off ms", "after ms", "after speed-up"]
for i in impls:
    head += [f"{i} ms", f"{i}/before", f"{i}/after"]
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
ms = lambda d, k: d[k + ("kfuse",)]["median_ms"] if k + ("kfuse",) in d else None
for k in sorted({k[:3] for k in ka}):
    b, n, a = ms(kb, k), ms(kn, k), ms(ka, k)
    cells = list(k) + [f"{v:.3f}" if v else "-" for v in (b, n, a)]
    cells.append(f"{b / a:.2f}x" if a and b else "-")
    for i in impls:
        p = pt.get(k + (i,))
        p = p["median_ms"] if p else None
        cells += [f"{p:.3f}" if p else "-", f"{p / b:.2f}x" if p and b else "-",
                  f"**{p / a:.2f}x**" if p and a else "-"]
    lines.append("| " + " | ".join(cells) + " |")
open(out, "w").write("\n".join(lines) + "\n")
