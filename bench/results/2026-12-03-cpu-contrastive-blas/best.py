import sys, re, collections
best = collections.defaultdict(dict)
cur = None
for line in open(sys.argv[1]):
    m = re.match(r'== (\S+)', line)
    if m: cur = m.group(1); continue
    for op, v in re.findall(r'(\S+/N1024_d\d+) ([0-9.]+)', line):
        best[op].setdefault(cur, []).append(float(v))
ops = ["clip_fwd/N1024_d128","clip_fwd/N1024_d512","siglip_fwd/N1024_d128","siglip_fwd/N1024_d512","clip_fwd_bwd/N1024_d128","clip_fwd_bwd/N1024_d512","siglip_fwd_bwd/N1024_d128","siglip_fwd_bwd/N1024_d512"]
tags = [t for t in sys.argv[2:]]
print("| case | " + " | ".join(f"{t} best (n)" for t in tags) + " | " + " | ".join(f"torch/{t}" for t in tags if t!='torch') + " |")
for op in ops:
    row = best[op]
    b = {t: min(row[t]) for t in tags if t in row}
    print(f"| {op} | " + " | ".join(f"{b[t]:.1f} ({len(row[t])})" for t in tags) + " | " + " | ".join(f"{b['torch']/b[t]:.2f}x" for t in tags if t!='torch') + " |")
