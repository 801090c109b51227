#!/usr/bin/env python3
"""Resource check of the real kernels against the launches the tests make.

Two halves, one per build:

  launches  (emulated build) -- turns the emulated device's launch log (kernel address
            offsets within the library, block threads, dynamic shared memory, parameter
            bytes) into kernel names through the library's symbol table, and checks that
            every launch the tests made is covered by the committed manifest
            (tests/resources/launches.tsv): a launch with more threads, more dynamic shared
            memory or more parameter bytes than recorded fails until the manifest is
            updated (--update), so the CUDA build's check always sees what the tests launch.

  check     (CUDA build) -- reads the ptxas -v reports of the sm_90a and sm_80 compiles and
            fails when a recorded launch would exceed the register file (registers, rounded
            to the allocation unit, times the block's threads, > 65536), the shared-memory
            limit (static + dynamic > 227 KiB on sm_90, 163 KiB on sm_80), the 4 KiB
            kernel-parameter limit, or the kernel's __launch_bounds__ (ptxas reports the
            registers under that bound; a launch above the bound fails on the GPU), or when
            a kernel's spills or stack frame exceed the committed baseline
            (tests/resources/ptxas_baseline.tsv; --update rewrites it).

Kernel names are compared demangled, with anonymous namespaces normalised: nvcc names
them _GLOBAL__N__<hash>_<file>, the host compiler "(anonymous namespace)".
"""
import argparse
import collections
import glob
import os
import re
import subprocess
import sys

SMEM_LIMIT = {"sm_90a": 227 * 1024, "sm_90": 227 * 1024, "sm_80": 163 * 1024}
REGISTER_FILE = 65536
PARAM_LIMIT = 4096

ANON = re.compile(r"_GLOBAL__N__\w+|\(anonymous namespace\)|\{anonymous\}")


def normalise(demangled):
    return ANON.sub("(anon)", demangled).strip()


def demangle(names):
    if not names:
        return {}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                         check=True).stdout.splitlines()
    return {m: normalise(d) for m, d in zip(names, out)}


# ---------------------------------------------------------------- manifest (emulated build)

def read_manifest(path):
    """name -> (threads, dynamic smem, param bytes)"""
    table = {}
    if not os.path.exists(path):
        return table
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            name, threads, smem, params = line.rstrip("\n").split("\t")
            table[name] = (int(threads), int(smem), int(params))
    return table


def write_manifest(path, table):
    with open(path, "w") as f:
        f.write("# kernel\tmax block threads\tmax dynamic smem bytes\tmax parameter bytes\n")
        f.write("# the launches the tests make on the emulated device "
                "(tests/resources/kernel_resources.py launches --update)\n")
        for name in sorted(table):
            t, s, p = table[name]
            f.write(f"{name}\t{t}\t{s}\t{p}\n")


def symbol_offsets(library):
    """offset -> mangled name, for every function symbol (local ones too) of the library."""
    out = subprocess.run(["nm", "--defined-only", library], capture_output=True, text=True,
                         check=True).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            table[int(parts[0], 16)] = parts[2]
    return table


def launches(args):
    offsets = symbol_offsets(args.library)
    live = {}
    unresolved = set()
    with open(args.log) as f:
        for line in f:
            offset, threads, smem, params = line.split()
            mangled = offsets.get(int(offset, 16))
            if mangled is None:
                unresolved.add(offset)
                continue
            live.setdefault(mangled, []).append((int(threads), int(smem), int(params)))
    if unresolved:
        print(f"launches at offsets with no symbol in {args.library}: {sorted(unresolved)}")
        return 1
    names = demangle(sorted(live))
    merged = {}
    for mangled, rows in live.items():
        name = names[mangled]
        old = merged.get(name, (0, 0, 0))
        merged[name] = tuple(max([old[i]] + [r[i] for r in rows]) for i in range(3))
    committed = read_manifest(args.manifest)
    if args.update:
        for name, row in committed.items():
            if name in merged:
                merged[name] = tuple(max(a, b) for a, b in zip(row, merged[name]))
            elif not args.replace:
                merged[name] = row
        write_manifest(args.manifest, merged)
        print(f"wrote {len(merged)} kernels to {args.manifest}")
        return 0
    failures = []
    for name, row in sorted(merged.items()):
        have = committed.get(name)
        if have is None:
            failures.append(f"not in the manifest: {name} {row}")
        elif any(a > b for a, b in zip(row, have)):
            failures.append(f"launched beyond the manifest: {name} {row} > {have}")
    # Every recorded kernel launched: otherwise the resource check would vouch for launches
    # no test makes any more (or a Cuda context has stopped reaching the kernels at all).
    for name in sorted(set(committed) - set(merged)):
        failures.append(f"in the manifest but launched by no test: {name}")
    print(f"{len(merged)} kernels launched by the tests; {len(committed)} in the manifest")
    for f in failures:
        print("FAIL", f)
    if failures:
        print("update with: tests/resources/kernel_resources.py launches --update ...")
    return 1 if failures else 0


# ---------------------------------------------------------------- ptxas reports (CUDA build)

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:, used \d+ barriers)?(?:, (\d+) bytes smem)?")


def read_reports(paths):
    """(arch, mangled) -> dict(registers, smem, stack, spill_stores, spill_loads)"""
    kernels = {}
    for path in paths:
        current = None
        with open(path, errors="replace") as f:
            for line in f:
                m = ENTRY.search(line)
                if m:
                    current = (m.group(2), m.group(1))
                    kernels[current] = {"registers": 0, "smem": 0, "stack": 0,
                                        "spill_stores": 0, "spill_loads": 0}
                    continue
                if current is None:
                    continue
                m = PROPS.search(line)
                if m:
                    k = kernels[current]
                    k["stack"], k["spill_stores"], k["spill_loads"] = map(int, m.groups())
                    continue
                m = USED.search(line)
                if m:
                    kernels[current]["registers"] = int(m.group(1))
                    kernels[current]["smem"] = int(m.group(2) or 0)
                    current = None
    return kernels


def read_baseline(path):
    table = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                arch, name, stack, stores, loads = line.rstrip("\n").split("\t")
                table[(arch, name)] = (int(stack), int(stores), int(loads))
    return table


def allocated_registers(registers, threads):
    # Registers are allocated per warp, in units of 256 (8 per thread).
    warps = (threads + 31) // 32
    return ((registers + 7) // 8 * 8) * 32 * warps


def check(args):
    reports = sorted(glob.glob(os.path.join(args.reports, "**", "*.ptxas.txt"), recursive=True))
    kernels = read_reports(reports)
    if not kernels:
        print(f"no ptxas reports under {args.reports}")
        return 1
    names = demangle(sorted({m for _, m in kernels}))
    by_name = collections.defaultdict(list)  # normalised name -> [(arch, resources)]
    for (arch, mangled), res in kernels.items():
        by_name[names[mangled]].append((arch, res))
    archs = sorted({a for a, _ in kernels})
    failures = []
    for want in args.archs.split(","):
        if want not in archs:
            failures.append(f"no report for {want} (have {archs})")
    manifest = read_manifest(args.manifest)
    if not manifest:
        failures.append(f"no launches recorded in {args.manifest}")
    checked = 0
    for name, (threads, dyn_smem, params) in sorted(manifest.items()):
        entries = by_name.get(name)
        if not entries:
            failures.append(f"launched kernel not in the CUDA build: {name}")
            continue
        if params > PARAM_LIMIT:
            failures.append(f"{name}: {params} bytes of parameters > {PARAM_LIMIT}")
        for arch, res in entries:
            checked += 1
            regs = allocated_registers(res["registers"], threads)
            if regs > REGISTER_FILE:
                failures.append(f"{arch} {name}: {res['registers']} registers x {threads} threads"
                                f" = {regs} > {REGISTER_FILE}")
            limit = SMEM_LIMIT.get(arch, 48 * 1024)
            if res["smem"] + dyn_smem > limit:
                failures.append(f"{arch} {name}: {res['smem']} static + {dyn_smem} dynamic bytes"
                                f" of shared memory > {limit}")
    baseline = read_baseline(args.baseline)
    current = {}
    for (arch, mangled), res in kernels.items():
        key = (arch, names[mangled])
        row = (res["stack"], res["spill_stores"], res["spill_loads"])
        current[key] = tuple(max(a, b) for a, b in zip(row, current.get(key, (0, 0, 0))))
    if args.update:
        with open(args.baseline, "w") as f:
            f.write("# arch\tkernel\tstack bytes\tspill store bytes\tspill load bytes (ptxas -v)\n")
            for (arch, name), row in sorted(current.items()):
                f.write(f"{arch}\t{name}\t{row[0]}\t{row[1]}\t{row[2]}\n")
        print(f"wrote {len(current)} kernels to {args.baseline}")
    else:
        for key, row in sorted(current.items()):
            base = baseline.get(key, (0, 0, 0))
            if any(a > b for a, b in zip(row, base)):
                failures.append(f"{key[0]} {key[1]}: stack/spills {row} above the baseline {base}")
    print(f"{len(kernels)} compiled kernels ({', '.join(archs)}); {len(manifest)} launched kernels,"
          f" {checked} launch checks")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("launches")
    a.add_argument("--log", required=True)
    a.add_argument("--library", required=True)
    a.add_argument("--manifest", required=True)
    a.add_argument("--update", action="store_true")
    a.add_argument("--replace", action="store_true", help="with --update: drop kernels not launched")
    c = sub.add_parser("check")
    c.add_argument("--reports", required=True, help="folder holding the *.ptxas.txt reports")
    c.add_argument("--manifest", required=True)
    c.add_argument("--baseline", required=True)
    c.add_argument("--archs", default="sm_80,sm_90a")
    c.add_argument("--update", action="store_true")
    args = p.parse_args()
    return launches(args) if args.command == "launches" else check(args)


if __name__ == "__main__":
    sys.exit(main())
