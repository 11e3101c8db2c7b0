#!/usr/bin/env bash
# A seconds-long run of the benchmark machinery so it cannot rot: the codec bench on a small
# sample and a push/pull through a real server on loopback, timed.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
(set +o pipefail; find /usr/bin -type f | sort | xargs cat 2>/dev/null | head -c 8388608 > "$tmp/sample.bin")
cargo bench -q -p bonsai-core --bench codec -- "$tmp/sample.bin" 8
cargo build -q --release -p bonsai-cli
bonsai=target/release/bonsai
truncate -s 64M "$tmp/img.raw"
dd if="$tmp/sample.bin" of="$tmp/img.raw" bs=1M seek=4 conv=notrunc status=none
$bonsai init "$tmp/store" > /dev/null
$bonsai serve --listen 127.0.0.1:0 --data "$tmp/store" > "$tmp/serve.out" 2>/dev/null &
server=$!
for _ in $(seq 100); do grep -q listening "$tmp/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$tmp/serve.out")
$bonsai push "$tmp/img.raw" --store "$url" -o "$tmp/img.recipe" --json
$bonsai pull "$tmp/img.recipe" --store "$url" -o "$tmp/out.raw" --json
cmp "$tmp/img.raw" "$tmp/out.raw"
echo "smoke: ok"
