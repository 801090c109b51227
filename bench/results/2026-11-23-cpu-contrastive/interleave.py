"""Interleaved CPU comparison: for each case, kfuse-bench then the PyTorch peer, back to back,
so that both see the same contention on the shared 2-core machine; the per-case JSONs are merged
into kfuse.json / contrastive_torch.json in the kfuse-bench/1 schema.

    python3 bench/results/2026-11-23-cpu-contrastive/interleave.py OUT THREADS   (from the repo root)
"""
import json, subprocess, sys, os
out = sys.argv[1]
THREADS = sys.argv[2]
os.makedirs(out, exist_ok=True)
kdocs, tdocs, loads = [], [], []
for rnd in range(2):
  for c in [f"{op}N1024_d{d}" for d in (128, 512) for op in ("clip_fwd/", "clip_fwd_bwd/", "siglip_fwd/", "siglip_fwd_bwd/")]:
    kj, tj = f"/tmp/k.json", f"/tmp/t.json"
    l0 = open("/proc/loadavg").read().split()[0]
    subprocess.run(["build/bench-cpu/bench/kfuse-bench", "--filter", c, "--runs", "10", "--json", kj], check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS=THREADS))
    subprocess.run(["/work/main/.venv/bin/python", "contrastive_torch.py", "--cases", kj, "--device", "cpu", "--runs", "10", "--threads", THREADS, "--json", tj], check=True, capture_output=True, cwd="bench/peers")
    l1 = open("/proc/loadavg").read().split()[0]
    kdocs.append(json.load(open(kj))); tdocs.append(json.load(open(tj)))
    loads.append((rnd, c, l0, l1))
    print(rnd, c, l0, l1, kdocs[-1]["results"][0]["median_ms"], tdocs[-1]["results"][0]["median_ms"], flush=True)
# keep, per case, the round with the lower load average at its start
best = {}
for (rnd, c, l0, l1), k, t in zip(loads, kdocs, tdocs):
  if c not in best or float(l0) < best[c][0]:
    best[c] = (float(l0), k, t)
def merged(docs):
  d = dict(docs[0]); d["results"] = [r for doc in docs for r in doc["results"]]; return d
json.dump(merged([b[1] for b in best.values()]), open(f"{out}/kfuse.json", "w"), indent=2)
json.dump(merged([b[2] for b in best.values()]), open(f"{out}/contrastive_torch.json", "w"), indent=2)
with open(f"{out}/loads.txt", "w") as f:
  f.write("round case load_before load_after\n")
  for l in loads: f.write(" ".join(map(str, l)) + "\n")
