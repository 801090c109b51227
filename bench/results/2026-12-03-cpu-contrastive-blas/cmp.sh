#!/bin/bash
# usage: cmp.sh tag...  : runs each kfuse build and torch, prints medians
for b in "$@"; do
  echo "== $b $(cat /proc/loadavg | cut -d' ' -f1)"
  OMP_NUM_THREADS=2 LD_LIBRARY_PATH=/tmp/cb-$b /tmp/cb-$b/kfuse-bench --preset quick --filter N1024 --json /tmp/k-$b.json 2>&1 | grep -E "^(clip|siglip)" | awk '{printf "%s/%s %s  ", $1, $2, $6} END {print ""}'
done
echo "== torch $(cat /proc/loadavg | cut -d' ' -f1)"
cd /work/wt-cblas/bench/peers && /root/venv-kfpy/bin/python contrastive_torch.py --cases /tmp/cb.json --device cpu --threads 2 --json /tmp/t.json 2>&1 | grep torch | awk '{printf "%s/%s %s  ", $2, $3, $6} END {print ""}'
