"""Best-of merge of kfuse-bench/1 JSON files of the same impl: per (op, case,
precision, impl) the run with the smallest median; machine info of the first."""
import json, sys
out, files = sys.argv[1], sys.argv[2:]
best, doc0, runs = {}, None, {}
for path in files:
    doc = json.load(open(path))
    doc0 = doc0 or doc
    for r in doc["results"]:
        key = (r["op"], r["case"], r["precision"], r["impl"])
        runs.setdefault(key, []).append(r["median_ms"])
        if key not in best or r["median_ms"] < best[key]["median_ms"]:
            best[key] = r
for key, r in best.items():
    r["note"] = (r.get("note") or "") + f" [best median of {len(runs[key])} runs: " + \
        ", ".join(f"{m:.3f}" for m in runs[key]) + " ms]"
doc0["results"] = list(best.values())
json.dump(doc0, open(out, "w"), indent=1)
