#!/usr/bin/env bash
# Operating a store on the corpus: push A, B, C, D into one embedded store, then time
# `check` (sizes only), `check --read-data` (every block re-hashed), `forget` of one image
# and `gc --grace 0` (with a dry run first). Figures come from the commands' own --json
# and from /usr/bin/time (wall, peak RSS); the page cache is dropped before each check
# when we may (root), so --read-data reads from disk.
#
#   bench/ops.sh [CORPUS_DIR]        (default /var/tmp/bonsai-corpus, made by
#                                      ../shared/bench/make-corpus.sh or bench/corpus.sh)
#
# Needs a release build (made here unless BONSAI=path/to/bonsai).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/var/tmp/bonsai-corpus}
work=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}/ops-run
if [ -z "${BONSAI:-}" ]; then
  cargo build -q --release -p bonsai-cli
fi
bonsai=${BONSAI:-$PWD/target/release/bonsai}
rm -rf "$work"; mkdir -p "$work"
export BONSAI_CACHE_DIR="$work/cache"
"$bonsai" init "$work/store" >/dev/null

drop_caches() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches || true; }
timed() {  # timed LABEL CMD… : JSON on stdout to $work/LABEL.json, "wall s, RSS" to the table
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$label.time" "$@" > "$work/$label.json" || true
  read -r wall rss < "$work/$label.time"
  echo "$label $wall $rss"
}

for i in A B C D; do
  "$bonsai" push "$corpus/$i.raw" --store "$work/store" -o "$work/$i.recipe" --name "$i" --no-cache --quiet --json > "$work/push-$i.json"
done
stored=$(du -sb "$work/store/blocks" | cut -f1)

rows=()
drop_caches; rows+=("$(timed check "$bonsai" check --store "$work/store" --json --quiet)")
drop_caches; rows+=("$(timed check-read-data "$bonsai" check --store "$work/store" --read-data --json --quiet)")
"$bonsai" images --store "$work/store" --json > "$work/images.json"
"$bonsai" forget C --all-versions --store "$work/store" --json > "$work/forget.json"
rows+=("$(timed gc-dry-run "$bonsai" gc --store "$work/store" --grace 0 --dry-run --json --quiet)")
rows+=("$(timed gc "$bonsai" gc --store "$work/store" --grace 0 --json --quiet)")

python3 - "$work" "$stored" "${rows[@]}" <<'PY'
import json, sys
work, stored = sys.argv[1], int(sys.argv[2])
only_c = [i for i in json.load(open(f"{work}/images.json"))["images"] if i["name"] == "C"][0]
print(f"blocks on disk before gc: {stored/2**20:.0f} MiB; `images` said C alone holds "
      f"{only_c['unique_bytes']} bytes, gc freed {json.load(open(f'{work}/gc.json'))['bytes_freed']}\n")
print("| run | wall s | peak RSS MiB | blocks | bytes | throughput |")
print("|---|---:|---:|---:|---:|---:|")
for row in sys.argv[3:]:
    label, wall, rss = row.split()
    wall, rss = float(wall), int(rss) / 1024
    j = json.load(open(f"{work}/{label}.json"))
    if label.startswith("check"):
        blocks, nbytes = j["blocks_checked"], j["read_bytes"]
        rate = f"{nbytes / 2**20 / wall:.0f} MiB/s" if nbytes else f"{blocks / wall:.0f} blocks/s"
    else:
        blocks, nbytes = j["blocks_freed"], j["bytes_freed"]
        rate = f"{blocks / wall:.0f} blocks/s"
    print(f"| {label} | {wall:.2f} | {rss:.0f} | {blocks} | {nbytes/2**20:.0f} MiB | {rate} |")
PY
