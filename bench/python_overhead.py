#!/usr/bin/env python3
"""The Python binding's cost per call, measured: microseconds per call of a tiny
gauss_matvec (1 x 1 points, so the work is nothing and the call is everything)

    C++             kfuse::gauss_matvec on views made once, looped in C++
    binding         kfuse._kfuse.gauss_matvec with a preallocated output (nanobind,
                    DLPack import of four arrays, validation, GIL release)
    kfuse (NumPy)   kfuse.gauss_matvec: the wrapper, which also allocates the output
    kfuse (torch)   the same on PyTorch CPU tensors
    kfuse.torch     the custom operator (torch.library dispatch, autograd registration)

and each one's overhead over the C++ call. Usage: python3 bench/python_overhead.py
[--calls N] [--json FILE] (kfuse importable: pip install ., or PYTHONPATH=<build>/python).
"""
import argparse
import json
import time

import numpy as np

import kfuse
from kfuse import _kfuse


def per_call_us(fn, calls):
    fn()
    best = float("inf")
    for _ in range(5):  # the best of five rounds: the least disturbed by other load
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--json")
    args = parser.parse_args()
    X = np.ones((1, 1), np.float32)
    out = np.empty((1, 1), np.float32)
    rows = {}
    rows["C++"] = min(_kfuse._gauss_matvec_cpp_loop(X, X, X, out, args.calls)
                      for _ in range(5)) / args.calls * 1e6
    rows["binding"] = per_call_us(lambda: _kfuse.gauss_matvec(X, X, X, out), args.calls)
    rows["kfuse (NumPy)"] = per_call_us(lambda: kfuse.gauss_matvec(X, X, X), args.calls)
    try:
        import torch

        import kfuse.torch as kt

        T = torch.ones(1, 1)
        rows["kfuse (torch)"] = per_call_us(lambda: kfuse.gauss_matvec(T, T, T), args.calls)
        rows["kfuse.torch"] = per_call_us(lambda: kt.gauss_matvec(T, T, T), args.calls // 4)
    except ImportError:
        pass
    base = rows["C++"]
    print(f"{'call':<16} {'us/call':>9} {'overhead us':>12}")
    for name, us in rows.items():
        print(f"{name:<16} {us:9.2f} {us - base:12.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"us_per_call": rows, "calls": args.calls}, f, indent=1)


if __name__ == "__main__":
    main()
