#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh SECONDS` (default 25 s each).
# Needs a nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz --locked`).
# Seeds come from fixtures/ (the recipe and block-object vectors); corpora grow under
# fuzz/corpus/ (not committed). Exits non-zero on the first crash, leaving the input in
# fuzz/artifacts/<target>/; prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-25}"
targets=(recipe_decode object_decode batch_frames id_parse sealed_open manifest_parse image_tables profile_decode nbd_server pack_parse)

mkdir -p corpus/recipe_decode corpus/object_decode corpus/batch_frames corpus/id_parse corpus/sealed_open corpus/manifest_parse corpus/image_tables corpus/profile_decode corpus/nbd_server corpus/pack_parse
cp ../fixtures/vectors/pack-v1.bin corpus/pack_parse/
cp ../fixtures/profile/*.bnsp corpus/profile_decode/
# an NBD client's opening: flags, then NBD_OPT_STRUCTURED_REPLY and NBD_OPT_GO for ""
printf '\x00\x00\x00\x03IHAVEOPT\x00\x00\x00\x08\x00\x00\x00\x00IHAVEOPT\x00\x00\x00\x07\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00' > corpus/nbd_server/go
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
# sealed-recipe seeds: age headers as a store could send them (an X25519 and an scrypt
# stanza; the bodies cannot open with the target's key, the header parser is the point)
printf 'age-encryption.org/v1\n-> X25519 TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc\nEmECAEcKN+n/Vs9SbWiV+Hu0r+E8R77DdWYyd83nw7U\n--- Vn+54jqiiUCE+WZcEVY3f1sqHjlu/z1LCQ/T7Xm7qI0\n\x00\x01\x02' > corpus/sealed_open/x25519
printf 'age-encryption.org/v1\n-> scrypt rF0/NwblUHHTpgQgRpe5CQ 10\ngUjEymFKMVXQEKdMMHL24oYexjE3TIC0O0zGSqJ2aUY\n--- 7Jc1+nS2XV3TQsTr13zZ6ok9K9sD+ag5ESV9Nsg+UsQ\n\x00' > corpus/sealed_open/scrypt

# manifest seeds: a version-2 manifest and a legacy register body
printf 'bonsai-manifest 2\n{"name":"vm","version":1,"registered":1,"logical_bytes":4096,"zero_bytes":null,"image_hash":null,"by":"local"}\n' > corpus/manifest_parse/v2
head -c 40 /dev/zero > corpus/manifest_parse/legacy

# image seeds: small images qemu-img makes, each prefixed by its format's index in
# ImageFormat::ALL (the target's first byte), holding a little data so tables are filled
scratch="$(mktemp -d)"
printf 'seed data' > "$scratch/data"
truncate -s 4M "$scratch/data"
i=0
for f in raw qcow2 vmdk vhdx vpc vdi qed parallels; do
  opts=()
  [ "$f" = vmdk ] && opts=(-o subformat=streamOptimized)
  qemu-img convert -q -f raw -O "$f" "${opts[@]}" "$scratch/data" "$scratch/img"
  { printf "\\$(printf %03o "$i")"; head -c 1048575 "$scratch/img"; } > "corpus/image_tables/$f"
  i=$((i + 1))
done
qemu-img convert -q -f raw -O vmdk "$scratch/data" "$scratch/img"
{ printf '\002'; head -c 1048575 "$scratch/img"; } > corpus/image_tables/vmdk-sparse
rm -rf "$scratch"

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
