#!/usr/bin/env bash
# Single-core cost of each push and pull stage on 256 MiB of real data: the system's binaries and
# libraries, concatenated (cached in ${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BONSAI_BENCH_DIR:-/var/tmp/bonsai-bench}
mkdir -p "$dir"
sample="$dir/system-256m.bin"
if [ ! -s "$sample" ] || [ "$(stat -c %s "$sample")" -lt 268435456 ]; then
  (set +o pipefail
   find /usr/bin /usr/lib /usr/libexec -type f -size +16k 2>/dev/null | sort | xargs cat 2>/dev/null \
     | head -c 268435456 > "$sample")
fi
cargo bench -p bonsai-core --bench codec -- "$sample" 256
