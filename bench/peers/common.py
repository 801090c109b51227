"""Shared helpers of the peer benchmarks: the cases come from a kfuse-bench JSON
file (so that both time exactly the same sizes), results go out in the same
schema (kfuse-bench/1), and timing follows kfuse-bench's method: warm-up, then the
median of timed runs; on a GPU with CUDA events and an L2 flush before each run."""
import argparse
import datetime
import importlib
import json
import platform
import statistics
import sys
import time

SKIPPED = 3  # exit status of a peer whose packages are missing (bench-compare reports it)


def require(*modules):
    """Imports the peer's packages, or exits with SKIPPED saying which one is missing."""
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except Exception as e:  # ImportError, or a package that fails to initialise
            print(f"skipped: cannot import {name}: {e}", file=sys.stderr)
            sys.exit(SKIPPED)
    return loaded


def parse_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--cases", required=True, help="kfuse-bench JSON whose cases to time")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", required=True, help="output file")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: library default)")
    return ap.parse_args()


def load_cases(path, op):
    with open(path) as f:
        doc = json.load(f)
    seen, cases = set(), []
    for r in doc["results"]:
        key = (r["op"], r["case"], r["precision"])
        if r["op"] == op and key not in seen:
            seen.add(key)
            cases.append(r)
    return doc, cases


def pick_device(torch, wanted):
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def uniform_inputs(torch, device, seed, *shapes):
    """fp32 tensors uniform in [-1, 1) on `device`, drawn from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(*shape, generator=g) * 2 - 1).to(device).contiguous() for shape in shapes]


def time_ms(torch, device, fn, warmup, runs):
    """Per-run milliseconds of fn() (which must leave its work queued on the device)."""
    for _ in range(warmup):
        fn()
    ms = []
    if device == "cuda":
        l2 = torch.cuda.get_device_properties(0).L2_cache_size or (64 << 20)
        flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")
        for _ in range(runs):
            flush.zero_()
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            ms.append(start.elapsed_time(stop))
    else:
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def machine(torch, device, threads):
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        return {"backend": "cuda", "device": p.name, "threads": 0, "sm_count": p.multi_processor_count,
                "compute_capability": f"{p.major}.{p.minor}", "torch": torch.__version__,
                "cuda": torch.version.cuda}
    return {"backend": "cpu", "device": platform.processor() or platform.machine(),
            "threads": threads or torch.get_num_threads(), "torch": torch.__version__}


def result(case, impl, backend, ms, note=""):
    med = statistics.median(ms)
    return {"op": case["op"], "impl": impl, "backend": backend, "dtype": case["dtype"],
            "precision": case["precision"], "case": case["case"], "sizes": case["sizes"],
            "runs": len(ms), "median_ms": med, "min_ms": min(ms), "max_ms": max(ms),
            "work": case["work"], "work_unit": case["work_unit"],
            "rate_per_s": case["work"] / (med * 1e-3), "roofline": "", "roofline_fraction": None,
            "note": note}


def write(path, preset, mach, results):
    doc = {"schema": "kfuse-bench/1",
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "preset": preset, "machine": mach, "results": results}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"wrote {path}")
