#!/usr/bin/env bash
# raw vs qcow2 of the same corpus disk: each pushed into its own empty embedded store, then
# the qcow2 pushed into the raw one (must send nothing), plus the sparse-file read rate.
#   bench/formats.sh [CORPUS_DIR] [IMAGE]      (defaults /var/tmp/bonsai-corpus, C)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/var/tmp/bonsai-corpus}; img=${2:-C}
work=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}/formats-run
[ -f "$corpus/$img.qcow2" ] || bash ../shared/bench/make-corpus.sh "$corpus"
cargo build -q --release -p bonsai-cli
bonsai=$PWD/target/release/bonsai
rm -rf "$work"; mkdir -p "$work"
for fmt in raw qcow2; do $bonsai init "$work/store-$fmt" >/dev/null; done
$bonsai inspect "$corpus/$img.qcow2"
for fmt in raw qcow2; do
  /usr/bin/time -f "%e s wall, %M KiB peak RSS" -o "$work/$fmt.time" \
    $bonsai push "$corpus/$img.$fmt" --store "$work/store-$fmt" -o "$work/$fmt.recipe" --json --quiet > "$work/$fmt.json"
  python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); M=1<<20; w=r["wall_seconds"]
print("%-6s push to empty store: %.2f s, %.0f MiB/s of data, %.0f MiB/s of image, sent %.1f MiB in %d blocks"
      % (sys.argv[2], w, r["data_bytes"]/M/w, r["logical_bytes"]/M/w, r["sent_bytes"]/M, r["new_chunks"]))' "$work/$fmt.json" "$fmt"
  echo "       $(cat "$work/$fmt.time")"
done
$bonsai push "$corpus/$img.qcow2" --store "$work/store-raw" -o "$work/cross.recipe" --json --quiet > "$work/cross.json"
python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print("qcow2 pushed after raw into one store: %d new blocks, %d known" % (r["new_chunks"], r["known_chunks"]))' "$work/cross.json"
cmp <($bonsai recipe show "$work/raw.recipe" --json | grep -v source_format) \
    <($bonsai recipe show "$work/qcow2.recipe" --json | grep -v source_format) && echo "recipes identical apart from the source format"
