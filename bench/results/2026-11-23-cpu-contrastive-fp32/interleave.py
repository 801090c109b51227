"""Interleaved CPU comparison, before / after / PyTorch: for each case, the kfuse-bench of the
commit before this work (BEFORE), the one of this commit (AFTER), then the PyTorch peer, back to
back, so that all three see the same contention on the shared 2-core machine; two rounds, and per
case the round that started at the lower load is kept. Derived from
bench/results/2026-11-23-cpu-contrastive/interleave.py (which runs AFTER and the peer only).
The before results are relabelled impl "kfuse-before", so that bench/compare.py shows them as a
column beside the peer.

    python3 bench/results/2026-11-23-cpu-contrastive-fp32/interleave.py OUT THREADS BEFORE AFTER
    (from the repo root; BEFORE, AFTER: paths of the two kfuse-bench binaries)
"""
import json, subprocess, sys, os
out, THREADS, BEFORE, AFTER = sys.argv[1:5]
os.makedirs(out, exist_ok=True)
env = dict(os.environ, OMP_NUM_THREADS=THREADS)
bdocs, kdocs, tdocs, loads = [], [], [], []
for rnd in range(2):
  for c in [f"{op}N1024_d{d}" for d in (128, 512) for op in ("clip_fwd/", "clip_fwd_bwd/", "siglip_fwd/", "siglip_fwd_bwd/")]:
    bj, kj, tj = "/tmp/cl_b.json", "/tmp/cl_k.json", "/tmp/cl_t.json"
    l0 = open("/proc/loadavg").read().split()[0]
    subprocess.run([BEFORE, "--filter", c, "--runs", "10", "--json", bj], check=True, capture_output=True, env=env)
    subprocess.run([AFTER, "--filter", c, "--runs", "10", "--json", kj], check=True, capture_output=True, env=env)
    subprocess.run(["/work/main/.venv/bin/python", "contrastive_torch.py", "--cases", kj, "--device", "cpu", "--runs", "10", "--threads", THREADS, "--json", tj], check=True, capture_output=True, cwd="bench/peers")
    l1 = open("/proc/loadavg").read().split()[0]
    b = json.load(open(bj))
    for r in b["results"]:
      r["impl"] = "kfuse-before"
    bdocs.append(b); kdocs.append(json.load(open(kj))); tdocs.append(json.load(open(tj)))
    loads.append((rnd, c, l0, l1))
    print(rnd, c, l0, l1, bdocs[-1]["results"][0]["median_ms"], kdocs[-1]["results"][0]["median_ms"], tdocs[-1]["results"][0]["median_ms"], flush=True)
best = {}
for (rnd, c, l0, l1), b, k, t in zip(loads, bdocs, kdocs, tdocs):
  if c not in best or float(l0) < best[c][0]:
    best[c] = (float(l0), b, k, t)
def merged(docs):
  d = dict(docs[0]); d["results"] = [r for doc in docs for r in doc["results"]]; return d
json.dump(merged([v[1] for v in best.values()]), open(f"{out}/kfuse_before.json", "w"), indent=2)
json.dump(merged([v[2] for v in best.values()]), open(f"{out}/kfuse.json", "w"), indent=2)
json.dump(merged([v[3] for v in best.values()]), open(f"{out}/contrastive_torch.json", "w"), indent=2)
with open(f"{out}/loads.txt", "w") as f:
  f.write("round case load_before load_after\n")
  for l in loads: f.write(" ".join(map(str, l)) + "\n")
