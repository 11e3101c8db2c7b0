#!/usr/bin/env bash
# Boot corpus image B from `bonsai export` over the shaped link, against a local copy and
# against pulling it whole first; prints the RESULTS.md section on stdout (~5 min, root).
#
#   bench/boot.sh [CORPUS_DIR]
#
# Installs qemu-system-x86 of the same version as the installed qemu-utils: Debian's main
# suite has an older one whose installation would replace qemu-utils, so when qemu-utils
# came from bookworm-backports the suite is added and used.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/var/tmp/bonsai-corpus}
[ -f "$corpus/B.raw" ] || bash ../shared/bench/make-corpus.sh "$corpus" >&2
want=$(dpkg-query -W -f '${Version}' qemu-utils)
have=$(dpkg-query -W -f '${Version}' qemu-system-x86 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  suite=()
  if [[ "$want" == *bpo12* ]]; then
    [ -f /etc/apt/sources.list.d/backports.sources ] || printf '%s\n' 'Types: deb' \
      'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > /etc/apt/sources.list.d/backports.sources
    suite=(-t bookworm-backports)
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${suite[@]}" \
    "qemu-system-x86=$want" e2fsprogs >&2
fi
cargo build -q --release -p bonsai-cli
out=$(mktemp); trap 'rm -f "$out"' EXIT
python3 bench/boot.py --bonsai "$PWD/target/release/bonsai" --corpus "$corpus" --out "$out" >&2
cat "$out"
