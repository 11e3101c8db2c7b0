#!/usr/bin/env python3
"""Booting corpus image B from `bonsai export` over the shaped link, against pulling it first.

Called by bench/boot.sh (see there). The store holding B runs in one network namespace, the
export (or the pull) in the other, joined by the 100 Mbit/s link of bench/run.py; QEMU (TCG,
kernel and initrd taken from B) boots a qcow2 overlay whose backing file is the export.
Times count from the start of the export (or of the pull); bytes are the link's, both ways.
"""

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (Link, sh, table, mb)

STORE = "http://10.77.0.2:7412"
BOOT_TIMEOUT = 600


def kernel_and_initrd(image, work):
    """The newest /boot/vmlinuz-* and its initrd, copied out of the ext4 image."""
    listing = run.sh(f"debugfs -R 'ls -p /boot' {image}").stdout
    names = [l.split("/")[5] for l in listing.splitlines() if l.count("/") >= 6]
    kernels = sorted(n for n in names if n.startswith("vmlinuz-"))
    if not kernels:
        raise RuntimeError(f"{image} holds no /boot/vmlinuz-*")
    release = kernels[-1][len("vmlinuz-"):]
    out = {}
    for kind, name in (("kernel", f"vmlinuz-{release}"), ("initrd", f"initrd.img-{release}")):
        out[kind] = os.path.join(work, name)
        run.sh(f"debugfs -R 'dump /boot/{name} {out[kind]}' {image}")
    return out["kernel"], out["initrd"]


class Boot:
    """One QEMU boot of an overlay on `backing`; times the serial console's milestones."""

    def __init__(self, kernel, initrd, work):
        self.kernel, self.initrd, self.work = kernel, initrd, work

    def run(self, backing, t0, at_login=None):
        overlay = os.path.join(self.work, "overlay.qcow2")
        if os.path.exists(overlay):
            os.remove(overlay)
        run.sh(f"qemu-img create -q -f qcow2 -F raw -b '{backing}' {overlay}")
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1", "-nographic",
               "-no-reboot", "-nic", "none", "-kernel", self.kernel, "-initrd", self.initrd,
               "-append", "root=/dev/vda rw console=ttyS0",
               "-drive", f"file={overlay},if=virtio,format=qcow2"]
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        first = login = None
        tail = b""
        deadline = time.time() + BOOT_TIMEOUT
        with open(os.path.join(self.work, "serial.log"), "wb") as log:
            while time.time() < deadline:
                chunk = os.read(qemu.stdout.fileno(), 4096)
                if not chunk:
                    break
                log.write(chunk)
                tail = (tail + chunk)[-4096:]
                if first is None and b"Linux version" in tail:
                    first = time.time() - t0
                if b"login:" in tail:
                    login = time.time() - t0
                    break
        extra = at_login() if at_login and login else None
        qemu.terminate()
        qemu.wait()
        if login is None:
            raise RuntimeError(f"no login: prompt within {BOOT_TIMEOUT} s; see {self.work}/serial.log")
        return first, login, extra


class Export:
    """`bonsai export` in the client namespace; its --json events, read as they come."""

    def __init__(self, bonsai, recipe, local, sock, flags):
        for p in (local, sock):
            if os.path.exists(p):
                os.remove(p)
        for f in os.listdir(os.path.dirname(local)):
            if f.endswith(".bonsai-partial"):
                os.remove(os.path.join(os.path.dirname(local), f))
        self.t0 = time.time()
        self.proc = subprocess.Popen(
            f"exec ip netns exec bz-client {bonsai} export {recipe} --store {STORE} --socket {sock} "
            f"-o {local} --json {flags}", shell=True, stdout=subprocess.PIPE, text=True)
        self.events, self.seen = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("listening", 60)
        self.url = f"nbd+unix:///bonsai?socket={sock}"

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            ev["at"] = time.time() - self.t0
            self.events.put(ev)

    def wait_for(self, name, timeout):
        """The first event `name` not taken yet (events come in any order)."""
        end = time.time() + timeout
        while True:
            for i, ev in enumerate(self.seen):
                if ev["event"] == name:
                    return self.seen.pop(i)
            try:
                self.seen.append(self.events.get(timeout=max(0.1, end - time.time())))
            except queue.Empty:
                raise RuntimeError(f"export said no {name!r} within {timeout} s")

    def status(self):
        self.proc.send_signal(signal.SIGUSR1)
        return self.wait_for("status", 30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def boot_from_export(args, boot, link, recipe, work, flags, wait_fill):
    local = os.path.join(work, "local.raw")
    before = link.tx_bytes()
    ex = Export(args.bonsai, recipe, local, os.path.join(work, "export.sock"), flags)
    try:
        def at_login():
            return link.tx_bytes() - before, ex.status()
        first, login, (wire, status) = boot.run(ex.url, ex.t0, at_login)
        profile = None
        if "--no-profile" not in flags:
            ev = ex.wait_for("profile_saved", 30)
            profile = ev["blocks"]
        filled = ex.wait_for("filled", 600)["at"] if wait_fill else None
        return dict(first=first, login=login, wire=wire, status=status, profile=profile, filled=filled)
    finally:
        ex.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bonsai", required=True)
    ap.add_argument("--corpus", default="/var/tmp/bonsai-corpus")
    ap.add_argument("--work", default="/var/tmp/bonsai-bench/boot")
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    image = f"{args.corpus}/B.raw"
    kernel, initrd = kernel_and_initrd(image, work)
    boot = Boot(kernel, initrd, work)
    data, recipe = os.path.join(work, "store"), os.path.join(work, "B.recipe")
    run.sh(f"{args.bonsai} init {data}")
    run.sh(f"{args.bonsai} push {image} --store {data} -o {recipe} --name B --quiet --no-cache")

    link = run.Link(args.rate, 0)
    link.down()
    link.up()
    server = subprocess.Popen(f"exec ip netns exec bz-site {args.bonsai} serve --listen 10.77.0.2:7412 --data {data}",
                              shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        server.stdout.readline()
        res = {}
        t0 = time.time()
        res["local"] = boot.run(image, t0)
        print(f"local copy: {res['local']}", file=sys.stderr)

        before = link.tx_bytes()
        t0 = time.time()
        pulled = os.path.join(work, "pulled.raw")
        run.sh(f"ip netns exec bz-client {args.bonsai} pull {recipe} --store {STORE} -o {pulled} --quiet --no-cache")
        pull_s, pull_wire = time.time() - t0, link.tx_bytes() - before
        first, login, _ = boot.run(pulled, t0)
        res["pull"] = dict(first=first, login=login, wire=pull_wire, pull=pull_s)
        os.remove(pulled)
        print(f"pull then boot: {res['pull']}", file=sys.stderr)

        runs = [("demand", "--no-fill --no-profile", False), ("fill", "", True),
                ("fill+profile", "", True), ("demand+profile", "--no-fill", False)]
        for name, flags, wait_fill in runs:
            res[name] = boot_from_export(args, boot, link, recipe, work, flags, wait_fill)
            print(f"{name}: {res[name]}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
        link.down()
    write(args, res)


def write(args, res):
    local_login = res["local"][1]
    rows = [["local copy (no network)", f"{res['local'][0]:.1f}", f"{local_login:.1f}", "1.00", "-", "-", "-"]]
    p = res["pull"]
    rows.append(["`bonsai pull` of B, then boot", f"{p['first']:.1f}", f"{p['login']:.1f}",
                 f"{p['login'] / local_login:.2f}", run.mb(p["wire"]), "-", f"{p['pull']:.1f} (pull)"])
    labels = {"demand": "export `--no-fill`, no profile", "fill": "export, no profile (records one)",
              "fill+profile": "export with the boot profile", "demand+profile": "export `--no-fill` with the profile"}
    for name in ("demand", "fill", "fill+profile", "demand+profile"):
        r = res[name]
        st = r["status"]
        fetched = f"{run.mb(st['fetched_bytes'])} ({100 * st['local_bytes'] / st['data_bytes']:.1f}% of B's data)"
        rows.append([labels[name], f"{r['first']:.1f}", f"{r['login']:.1f}", f"{r['login'] / local_login:.2f}",
                     run.mb(r["wire"]), fetched, f"{r['filled']:.1f} (filled, verified)" if r["filled"] else "-"])
    def share(name):
        st = res[name]["status"]
        return 100 * st["local_bytes"] / st["data_bytes"]

    goals = [run.goal_line("boot from the export, no profile: login: / local copy's",
                           res["fill"]["login"] / local_login, 1.2),
             run.goal_line("boot from the export with the profile: login: / local copy's",
                           res["fill+profile"]["login"] / local_login, 1.05),
             run.goal_line("share of B's data fetched by login: (--no-fill, no profile), %", share("demand"), 10),
             run.goal_line("share of B's data fetched by login: (--no-fill, profile), %", share("demand+profile"), 10)]
    text = "\n".join([
        f"## 7. Boot while it arrives: B booted from `bonsai export` over the shaped link ({args.rate} Mbit/s)",
        "",
        "QEMU TCG, 1 vCPU, 1 GiB, kernel and initrd taken from B, a qcow2 overlay on the export; times from the "
        "start of the export (or of the pull); `login:` on the serial console ends a boot. Fetched: the export's "
        "object bytes at `login:` (its SIGUSR1 figures) and the share of B's data then local. Commands: bench/boot.py.",
        "",
        run.table(["how", "first kernel message s", "login: s", "vs local copy", "wire MiB at login:",
                   "fetched by login: MiB", "then"], rows),
        "", "Goals (this run):", "",
    ] + goals) + "\n"
    run.emit(text, args.out)


if __name__ == "__main__":
    main()
