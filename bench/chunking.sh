#!/usr/bin/env bash
# Chunker choice on the corpus: for several FastCDC average sizes and fixed-size chunks,
# push A, B, C, D in order into a fresh embedded store; report bytes sent for C after A
# and B, the whole store, recipe size of C, and push time of C.
#   bench/chunking.sh [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/var/tmp/bonsai-corpus}
work=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}/chunking
cargo build -q --release -p bonsai-cli
bonsai=$PWD/target/release/bonsai
echo "| chunker | C sent after A, B (MiB) | store after A-D (MiB) | C recipe (KiB) | C push s | C distinct chunks |"
echo "|---|---:|---:|---:|---:|---:|"
for cfg in "16" "32" "64" "128" "64 --fixed" "4 --fixed"; do
  rm -rf "$work"; mkdir -p "$work"
  set -- $cfg
  $bonsai init "$work/store" >/dev/null
  for img in A B C D; do
    $bonsai push "$corpus/$img.raw" --store "$work/store" -o "$work/$img.recipe" --json --quiet --no-cache \
      --chunk-kib $cfg > "$work/$img.json"
  done
  python3 - "$work" "$cfg" <<'PY'
import json, os, sys
w, cfg = sys.argv[1], sys.argv[2]; M = 1 << 20
c = json.load(open(f"{w}/C.json"))
total = sum(json.load(open(f"{w}/{i}.json"))["sent_bytes"] for i in "ABCD")
kind = ("fixed " if "fixed" in cfg else "FastCDC avg ") + cfg.split()[0] + " KiB"
print(f"| {kind} | {c['sent_bytes']/M:.1f} | {total/M:.1f} | {c['recipe_bytes']/1024:.0f} | {c['wall_seconds']:.2f} | {c['unique_chunks']} |")
PY
done
rm -rf "$work"
