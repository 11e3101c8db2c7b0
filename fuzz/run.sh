#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh SECONDS` (default 25 s each).
# Needs a nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz --locked`).
# Seeds come from fixtures/ (the recipe and block-object vectors); corpora grow under
# fuzz/corpus/ (not committed). Exits non-zero on the first crash, leaving the input in
# fuzz/artifacts/<target>/; prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-25}"
targets=(recipe_decode object_decode batch_frames id_parse)

mkdir -p corpus/recipe_decode corpus/object_decode corpus/batch_frames corpus/id_parse
cp ../fixtures/vectors/*.bin ../fixtures/corrupt/*.recipe corpus/recipe_decode/
# block-object seeds: key ‖ plaintext length (u32 LE) ‖ object, from the vectors
python3 - <<'PY'
import json, struct
for v in json.load(open("../fixtures/vectors/blocks.json")):
    plain = bytes.fromhex(v["plaintext"])
    seed = bytes.fromhex(v["key"]) + struct.pack("<I", len(plain)) + bytes.fromhex(v["object"])
    open("corpus/object_decode/" + v["name"], "wb").write(seed)
    open("corpus/id_parse/" + v["name"], "w").write(v["id"])
PY

cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  log="$(mktemp)"
  if ! cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
      -max_len=1048576 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t crashed (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  execs="$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo '?')"
  echo "fuzz: $t ok, $execs executions in ${secs}s"
  rm -f "$log"
done
