#!/usr/bin/env bash
# One corpus disk as raw, qcow2, vmdk and vhdx: each pushed into its own empty embedded
# store (push time against raw), then each pushed into the raw one (must send nothing).
#   bench/formats.sh [CORPUS_DIR] [IMAGE]      (defaults /var/tmp/bonsai-corpus, C)
# The vmdk and vhdx are made once with qemu-img convert and kept beside the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/var/tmp/bonsai-corpus}; img=${2:-C}
work=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}/formats-run
[ -f "$corpus/$img.qcow2" ] || bash ../shared/bench/make-corpus.sh "$corpus"
for fmt in vmdk vhdx; do
  [ -f "$corpus/$img.$fmt" ] && continue
  qemu-img convert -f raw -O $fmt "$corpus/$img.raw" "$corpus/$img.$fmt.tmp"
  mv "$corpus/$img.$fmt.tmp" "$corpus/$img.$fmt"
done
# BONSAI_BIN=path uses an already built binary
if [ -z "${BONSAI_BIN:-}" ]; then cargo build -q --release -p bonsai-cli; fi
bonsai=${BONSAI_BIN:-$PWD/target/release/bonsai}
export BONSAI_CACHE_DIR=$work/cache
rm -rf "$work"; mkdir -p "$work"
for fmt in raw qcow2 vmdk vhdx; do $bonsai init "$work/store-$fmt" >/dev/null; done
report() { python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); M=1<<20; w=r["wall_seconds"]
print("%-6s %-22s %6.2f s, %4.0f MiB/s of data, sent %7.1f MiB in %5d blocks, read %s"
      % (sys.argv[2], sys.argv[3], w, r["data_bytes"]/M/w, r["sent_bytes"]/M, r["new_chunks"], r.get("files_read")))' "$@"; }
for fmt in raw qcow2 vmdk vhdx; do
  /usr/bin/time -f "%e s wall, %M KiB peak RSS" -o "$work/$fmt.time" \
    $bonsai push "$corpus/$img.$fmt" --store "$work/store-$fmt" -o "$work/$fmt.recipe" --no-cache --json --quiet > "$work/$fmt.json"
  report "$work/$fmt.json" "$fmt" "to an empty store:"
  echo "       $(cat "$work/$fmt.time")"
done
for fmt in qcow2 vmdk vhdx; do
  $bonsai push "$corpus/$img.$fmt" --store "$work/store-raw" -o "$work/cross-$fmt.recipe" --no-cache --json --quiet > "$work/cross-$fmt.json"
  report "$work/cross-$fmt.json" "$fmt" "after raw, one store:"
  cmp <($bonsai recipe show "$work/raw.recipe" --json | grep -v source_format) \
      <($bonsai recipe show "$work/cross-$fmt.recipe" --json | grep -v source_format) && echo "       recipe identical to raw's apart from the source format"
done
