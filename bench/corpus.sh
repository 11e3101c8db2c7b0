#!/usr/bin/env bash
# Push the corpus images in order (A, B, C, Cip) into one store served on loopback, then
# pull C (cold) and C seeded with B; report throughput, peak RSS and dedup figures.
#
#   bench/corpus.sh [CORPUS_DIR]      (default /var/tmp/bonsai-corpus; built with
#                                      ../shared/bench/make-corpus.sh if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/var/tmp/bonsai-corpus}
work=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}/corpus-run
[ -f "$corpus/C.raw" ] || bash ../shared/bench/make-corpus.sh "$corpus"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time
cargo build -q --release -p bonsai-cli
bonsai=$PWD/target/release/bonsai
rm -rf "$work"; mkdir -p "$work"
$bonsai init "$work/store" > /dev/null
$bonsai serve --listen 127.0.0.1:0 --data "$work/store" > "$work/serve.out" 2> "$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/serve.out")

rss() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }
printf '| image | logical | data | sent | new chunks / distinct | overall | wall s | MiB/s (logical) | MiB/s (data) | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for img in ${IMAGES:-A B C Cip}; do
  /usr/bin/time -v -o "$work/$img.time" $bonsai push "$corpus/$img.raw" --store "$url" \
    -o "$work/$img.recipe" --name "$img" --json --quiet > "$work/$img.push.json"
  python3 - "$work/$img.push.json" "$(rss "$work/$img.time")" "$img" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); M = 1 << 20
ratio = "inf" if r["dedup_ratio"] is None else f'{r["dedup_ratio"]:.1f}x'
print(f'| {sys.argv[3]} | {r["logical_bytes"]/M:.0f} MiB | {r["data_bytes"]/M:.0f} MiB | {r["sent_bytes"]/M:.1f} MiB | {r["new_chunks"]} / {r["unique_chunks"]} | {ratio} | {r["wall_seconds"]:.2f} | {r["logical_bytes"]/M/r["wall_seconds"]:.0f} | {r["data_bytes"]/M/r["wall_seconds"]:.0f} | {int(sys.argv[2])/1024:.0f} |')
PY
done
echo
printf '| pull | fetched | seeded | wall s | MiB/s (logical) | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|\n'
for mode in cold seeded; do
  seed=(); [ $mode = seeded ] && seed=(--seed "$corpus/B.raw")
  rm -f "$work/C.out"; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -v -o "$work/pull-$mode.time" $bonsai pull "$work/C.recipe" --store "$url" \
    -o "$work/C.out" "${seed[@]}" --json --quiet > "$work/pull-$mode.json"
  python3 - "$work/pull-$mode.json" "$(rss "$work/pull-$mode.time")" "C $mode" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); M = 1 << 20
assert r["verified"]
print(f'| {sys.argv[3]} | {r["fetched_bytes"]/M:.1f} MiB ({r["fetched_blocks"]} blocks) | {r["seeded_bytes"]/M:.0f} MiB | {r["wall_seconds"]:.2f} | {r["logical_bytes"]/M/r["wall_seconds"]:.0f} | {int(sys.argv[2])/1024:.0f} |')
PY
done
cmp "$corpus/C.raw" "$work/C.out" && echo "pulled C is identical to C.raw"
echo
$bonsai stats --store "$url"
