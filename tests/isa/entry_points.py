#!/usr/bin/env python3
"""Checks that the CPU entry points per instruction set (src/core/isa.hpp) are what
their names say, in the built library's machine code:

  - every hot loop has its three entry points (baseline, avx2, avx512);
  - a baseline entry point uses no 256- or 512-bit register (it runs on any x86-64);
  - an avx2 entry point uses no 512-bit register and, except where listed, 256-bit ones;
  - an avx512 entry point uses 512-bit registers, except where listed.

A hot loop that stopped being inlined into its entry points (a lost always_inline)
would run the baseline's code in all three and fail here. The processor running the
check needs none of these instructions: it reads the code, it does not run it.

usage: entry_points.py OBJDUMP LIBRARY
"""
import re
import subprocess
import sys
from collections import defaultdict

# Hot loops whose AVX-512 build keeps 256-bit vectors: the eight-lane fp32 row norms
# (eight rows' chains, one ymm), whose AVX2 and AVX-512 code are alike.
NO_ZMM_EXPECTED = ("inv_norms_rows<float>",)
# Hot loops that have no vector loop in their AVX2 build worth requiring one.
NO_YMM_EXPECTED = ()

HEADER = re.compile(r"^[0-9a-f]+ <(.*IsaEntryPoints<(.*)>::(baseline|avx2|avx512)\(.*)>:$")


def main():
    objdump, library = sys.argv[1], sys.argv[2]
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", library],
                          check=True, capture_output=True, text=True).stdout
    # [hot loop][level] -> {"ymm": count, "zmm": count}, over the function and its clones.
    use = defaultdict(lambda: defaultdict(lambda: {"ymm": 0, "zmm": 0}))
    current = None
    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            current = use[m.group(2)][m.group(3)]
            continue
        if not line.strip():
            current = None
        elif current is not None:
            current["ymm"] += line.count("%ymm")
            current["zmm"] += line.count("%zmm")
    failures = []
    if not use:
        failures.append("no IsaEntryPoints<...> functions found in " + library)
    for hot, levels in sorted(use.items()):
        name = re.sub(r"\s+", " ", hot)
        for level in ("baseline", "avx2", "avx512"):
            if level not in levels:
                failures.append(f"{name}: no {level} entry point")
        b, a2, a5 = levels["baseline"], levels["avx2"], levels["avx512"]
        if b["ymm"] or b["zmm"]:
            failures.append(f"{name}: the baseline entry point uses ymm/zmm registers")
        if a2["zmm"]:
            failures.append(f"{name}: the avx2 entry point uses zmm registers")
        if a2["ymm"] == 0 and not any(s in name for s in NO_YMM_EXPECTED):
            failures.append(f"{name}: the avx2 entry point uses no ymm register")
        if a5["zmm"] == 0 and not any(s in name for s in NO_ZMM_EXPECTED):
            failures.append(f"{name}: the avx512 entry point uses no zmm register")
        print(f"{name[:90]:90s} avx2 {a2['ymm']:4d} ymm; avx512 {a5['zmm']:4d} zmm")
    for f in failures:
        print("FAIL:", f)
    print(f"{len(use)} hot loops, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
