#!/usr/bin/env python3
"""bonsai against its peers on real VM disk images, side by side, in one run.

Called by bench/run.sh; see that file for usage. Writes bench/RESULTS.md (or --out).

Questions answered, one table each:
  0. what each stage of push and pull costs on one core (cargo bench, on C's data)
  1. store growth as images A, B, C, D are pushed in order into one store (per tool)
  2. cold push of C into an empty store: wall, CPU, peak RSS, bytes stored
  3. restore of C from the A-D store: wall, peak RSS
  4. bonsai pull of C seeded with B: bytes fetched
  5. moving C to a site holding A and B, and Cip to a site holding A, B, C, over a
     shaped link (network namespaces + veth + tc), against zstd -3 -T0 + plain copy;
     5b. C again with 0, 40, 80 and 160 ms of round-trip time added (bench/delay.py)
  5c. sites: pulls through a site cache and a store-to-store sync over the same link
Tools run interleaved (the order rotates per image) so machine noise hits all alike.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, text=True, capture_output=True, **kw)


def timed(cmd, env=None, cwd=None):
    """Runs cmd under /usr/bin/time; returns (wall, cpu, rss_mib, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = f"/usr/bin/time -f '%e %U %S %M' -o {tf.name} {cmd}"
        t0 = time.time()
        p = subprocess.run(full, shell=True, text=True, capture_output=True, env=env, cwd=cwd)
        wall = time.time() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{cmd} failed:\n{p.stderr[-2000:]}")
        fields = tf.read().split()
        _, user, sys_, rss = fields[-4:]
        return wall, float(user) + float(sys_), int(rss) / 1024, p.stdout


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def version(cmd):
    try:
        return sh(cmd).stdout.strip().splitlines()[0]
    except Exception:
        return "not installed"


class Tool:
    """One tool's store, and how to put an image in and get it back."""

    name = ""

    def __init__(self, work, bonsai):
        self.work = work
        self.bonsai = bonsai

    def store_bytes(self, repo):
        return du(repo)


class Bonsai(Tool):
    name = "bonsai"

    def init(self, repo):
        os.makedirs(repo, exist_ok=True)

    def push(self, repo, image, tag):
        env = dict(os.environ, BONSAI_CACHE_DIR=os.path.join(self.work, "cache-" + os.path.basename(repo)))
        return timed(f"{self.bonsai} push {image} --store {repo} -o {repo}.{tag}.recipe --name {tag} --json --quiet", env=env)

    def restore(self, repo, tag, out):
        env = dict(os.environ, BONSAI_CACHE_DIR=os.path.join(self.work, "cache-restore"))
        return timed(f"{self.bonsai} pull {repo}.{tag}.recipe --store {repo} -o {out} --json --quiet --no-cache", env=env)


class Casync(Tool):
    name = "casync"

    def init(self, repo):
        os.makedirs(repo, exist_ok=True)

    def push(self, repo, image, tag):
        return timed(f"casync make --store={repo}/store {repo}/{tag}.caibx {image}")

    def restore(self, repo, tag, out):
        return timed(f"casync extract --store={repo}/store {repo}/{tag}.caibx {out}")


class Restic(Tool):
    name = "restic"
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR="/tmp/restic-bench-cache")

    def init(self, repo):
        sh(f"restic init --repo {repo} -q", env=self.env)

    def push(self, repo, image, tag):
        return timed(f"restic backup --repo {repo} -q --tag {tag} {image}", env=self.env)

    def restore(self, repo, tag, out):
        snaps = json.loads(sh(f"restic snapshots --repo {repo} --json --tag {tag}", env=self.env).stdout)
        sid = snaps[-1]["short_id"]
        path = snaps[-1]["paths"][0]
        return timed(f"sh -c 'restic dump --repo {repo} {sid} {path} > {out}'", env=self.env)

    def store_bytes(self, repo):
        return du(repo)


class Borg(Tool):
    name = "borg"
    env = dict(os.environ, BORG_PASSPHRASE="", BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
               BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_BASE_DIR="/tmp/borg-bench-base")

    def init(self, repo):
        sh(f"borg init -e none {repo}", env=self.env)

    def push(self, repo, image, tag):
        d, f = os.path.split(image)
        return timed(f"borg create {repo}::{tag} {f}", env=self.env, cwd=d)

    def restore(self, repo, tag, out):
        d = out + ".d"
        os.makedirs(d, exist_ok=True)
        r = timed(f"borg extract --sparse {repo}::{tag}", env=self.env, cwd=d)
        for f in os.listdir(d):
            os.rename(os.path.join(d, f), out)
        os.rmdir(d)
        return r


COUNTING_SERVER = """
import http.server, os, sys
log = sys.argv[3]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def copyfile(self, src, dst):
        data = src.read(); dst.write(data)
        with open(log, "a") as f: f.write(f"{len(data)}\\n")
os.chdir(sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
"""


def casync_seeded(repo, corpus, work):
    """casync extract of C seeded with B from its store over HTTP; counts bytes served."""
    log = os.path.join(work, "casync-fetch.log")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", COUNTING_SERVER, f"{repo}/store", str(port), log])
    time.sleep(1)
    out = os.path.join(work, "casync-seeded.raw")
    try:
        wall, cpu, rss, _ = timed(f"casync extract --store=http://127.0.0.1:{port}/ --seed={corpus}/B.raw "
                                  f"{repo}/C.caibx {out}")
    finally:
        server.terminate()
        server.wait()
    sizes = [int(l) for l in open(log)] if os.path.exists(log) else []
    os.remove(out)
    return ["casync", mb(sum(sizes)), len(sizes), f"{wall:.1f}", f"{rss:.0f}"]


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def mb(n):
    return f"{n / MIB:.1f}"


def emit(text, out):
    """Prints a results text, and writes it to `out` if given."""
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text)


def goal_line(what, ratio, limit, sense="<="):
    """One goal line: the measured ratio, the goal, met or not (bench/run.sh repeats them)."""
    met = ratio <= limit if sense == "<=" else ratio >= limit
    return f"- {what}: {ratio:.2f} (goal {sense} {limit}): {'met' if met else 'NOT met'}"


def goal(goals, what, ratio, limit, sense="<="):
    goals.append(goal_line(what, ratio, limit, sense))


# ---- shaped link ---------------------------------------------------------------------

class Link:
    """Two network namespaces joined by a veth pair; tbf shapes both directions."""

    def __init__(self, rate_mbit, delay_ms):
        self.rate = rate_mbit
        self.delay = delay_ms
        self.netem = False

    def up(self):
        cmds = [
            "ip netns add bz-client", "ip netns add bz-site",
            "ip link add bz-c type veth peer name bz-s",
            "ip link set bz-c netns bz-client", "ip link set bz-s netns bz-site",
            "ip -n bz-client addr add 10.77.0.1/24 dev bz-c", "ip -n bz-site addr add 10.77.0.2/24 dev bz-s",
            "ip -n bz-client link set bz-c up", "ip -n bz-site link set bz-s up",
            "ip -n bz-client link set lo up", "ip -n bz-site link set lo up",
        ]
        for c in cmds:
            sh(c)
        for ns, dev in (("bz-client", "bz-c"), ("bz-site", "bz-s")):
            half = self.delay / 2
            try:
                sh(f"ip netns exec {ns} tc qdisc add dev {dev} root netem delay {half}ms rate {self.rate}mbit limit 10000")
                self.netem = True
            except subprocess.CalledProcessError:
                sh(f"ip netns exec {ns} tc qdisc add dev {dev} root tbf rate {self.rate}mbit burst 256kb latency 100ms")

    def down(self):
        subprocess.run("ip netns del bz-client; ip netns del bz-site", shell=True, capture_output=True)

    def tx_bytes(self):
        s = sh("ip netns exec bz-client cat /sys/class/net/bz-c/statistics/tx_bytes").stdout
        r = sh("ip netns exec bz-client cat /sys/class/net/bz-c/statistics/rx_bytes").stdout
        return int(s) + int(r)


def start_site(bonsai, data):
    """`bonsai serve` in the site namespace; returns once it listens."""
    # `exec` twice over (the shell, then `ip netns exec`): the Popen is the server itself,
    # so terminate() stops it rather than the shell that started it
    p = subprocess.Popen(f"exec ip netns exec bz-site {bonsai} serve --listen 10.77.0.2:7412 --data {data}",
                         shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    p.stdout.readline()
    return p


def start_delay(rtt):
    """bench/delay.py in the client namespace: 127.0.0.1:7420 to the site, `rtt` ms added."""
    relay = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delay.py")
    p = subprocess.Popen(f"exec ip netns exec bz-client python3 {relay} --listen 127.0.0.1:7420 "
                         f"--to 10.77.0.2:7412 --rtt {rtt}", shell=True, stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    return p


def stop(p):
    if p is not None:
        p.terminate()
        p.wait()


def wan(args, bonsai, corpus, work, lines, goals):
    link = Link(args.rate, args.delay)
    link.down()
    try:
        link.up()
    except Exception as e:  # no namespaces here: say so instead of inventing numbers
        lines.append(f"\nShaped-link runs skipped: could not build namespaces ({e}).\n")
        return
    server = None
    try:
        data = os.path.join(work, "wan-store")
        shutil.rmtree(data, ignore_errors=True)
        sh(f"{bonsai} init {data}")
        # the site already holds A and B (and C for the Cip question): filled locally
        for img in ("A", "B"):
            sh(f"{bonsai} push {corpus}/{img}.raw --store {data} -o {work}/wan-{img}.recipe --quiet --no-cache")
        template = data + "-AB"
        shutil.rmtree(template, ignore_errors=True)
        sh(f"cp -a {data} {template}")
        if not args.only_rtt:
            server = start_site(bonsai, data)
            link_section(args, bonsai, corpus, work, link, lines, goals)
            stop(server)
            server = None
        rtt_section(args, bonsai, corpus, work, link, data, template, lines, goals)
        shutil.rmtree(template, ignore_errors=True)
    finally:
        stop(server)
        link.down()


def link_section(args, bonsai, corpus, work, link, lines, goals):
    """Section 5: C to a site with A, B, and Cip to a site with A, B, C, against zstd+copy."""
    rows = []
    for img, holds in (("C", "A, B"), ("Cip", "A, B, C")):
        if img == "Cip":
            sh(f"ip netns exec bz-client {bonsai} push {corpus}/C.raw --store http://10.77.0.2:7412 -o {work}/wan-C2.recipe --quiet --no-cache")
        before = link.tx_bytes()
        t0 = time.time()
        out = sh(f"ip netns exec bz-client {bonsai} push {corpus}/{img}.raw --store http://10.77.0.2:7412 "
                 f"-o {work}/wan-{img}.recipe --json --quiet --no-cache").stdout
        wall = time.time() - t0
        wire = link.tx_bytes() - before
        r = json.loads(out)
        link_time = wire * 8 / (args.rate * 1e6)
        zwall, zbytes = zstd_copy(f"{corpus}/{img}.raw")
        if img == "C":
            goal(goals, "C to a site with A, B over the link, bonsai / link time", wall / link_time, 1.05)
        else:
            goal(goals, "Cip to a site with A, B, C, bonsai / zstd+copy", wall / zwall, 0.1)
        rows.append([f"{img} to a site with {holds}", f"{wall:.1f}", mb(r["sent_bytes"]), mb(wire),
                     f"{link_time:.1f}", f"{wall / link_time:.2f}", f"{zwall:.1f}", mb(zbytes), f"{wall / zwall:.2f}"])
    shape = f"{args.rate} Mbit/s" + (f", {args.delay} ms RTT (netem)" if link.netem else
                                      " (tbf; this kernel has no netem, so no added delay)")
    lines.append(f"\n## 5. Over a shaped link ({shape})\n")
    lines.append(table(["move", "bonsai s", "bonsai sent MiB", "wire MiB (both ways)", "link time for wire bytes s",
                        "bonsai / link time", "zstd -3 -T0 + copy s", "zstd bytes MiB", "bonsai / zstd+copy"], rows))


def zstd_copy(image):
    """zstd -3 -T0 of `image` sent over the link to a counting sink: (seconds, bytes)."""
    sink = subprocess.Popen("ip netns exec bz-site python3 -c \"import socket;s=socket.socket();"
                            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('10.77.0.2',7413));"
                            "s.listen(1);c,_=s.accept();n=0\nwhile True:\n b=c.recv(1<<20)\n if not b: break\n n+=len(b)\n"
                            "print(n)\"", shell=True, stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    t0 = time.time()
    sh(f"zstd -3 -T0 -q -c {image} | ip netns exec bz-client python3 -c \"import socket,sys;"
       f"s=socket.create_connection(('10.77.0.2',7413));\nwhile True:\n b=sys.stdin.buffer.read(1<<20)\n if not b: break\n s.sendall(b)\ns.close()\"")
    zbytes = int(sink.communicate()[0].strip())
    return time.time() - t0, zbytes


def rtt_section(args, bonsai, corpus, work, link, data, template, lines, goals):
    """Section 5b: C to a site with A, B through bench/delay.py at each round-trip time."""
    rows = []
    for rtt in [int(x) for x in args.rtts.split(",") if x]:
        shutil.rmtree(data, ignore_errors=True)
        sh(f"cp -a {template} {data}")
        server, relay = start_site(bonsai, data), None
        try:
            relay = start_delay(rtt)
            before = link.tx_bytes()
            t0 = time.time()
            out = sh(f"ip netns exec bz-client {bonsai} push {corpus}/C.raw --store http://127.0.0.1:7420 "
                     f"-o {work}/wan-rtt.recipe --force --json --quiet --no-cache").stdout
            wall = time.time() - t0
            wire = link.tx_bytes() - before
        finally:
            stop(relay)
            stop(server)
        link_time = wire * 8 / (args.rate * 1e6)
        if rtt == 80:
            goal(goals, "C to a site with A, B over the link with 80 ms RTT, bonsai / link time", wall / link_time, 1.05)
        rows.append([str(rtt), f"{wall:.1f}", mb(json.loads(out)["sent_bytes"]), mb(wire), f"{link_time:.1f}",
                     f"{wall / link_time:.2f}"])
    lines.append(f"\n## 5b. C to a site with A, B over the {args.rate} Mbit/s link, with added round-trip time\n")
    lines.append("The push goes through `bench/delay.py`, a TCP relay in the client's namespace that holds every "
                 "chunk RTT/2 in each direction (this kernel has no netem). Link time: wire bytes at the link's rate.\n")
    lines.append(table(["RTT ms", "bonsai s", "bonsai sent MiB", "wire MiB (both ways)", "link time s",
                        "bonsai / link time"], rows))


# ---- sites: a cache and a sync across the link -------------------------------------

def over_link(link, cmd, out=None):
    """Runs cmd in the client namespace; returns (wall seconds, bytes on the link). `out`
    is removed before and after: a pull onto an existing file would reuse its blocks."""
    def drop():
        if out and os.path.exists(out):
            os.remove(out)
    drop()
    before = link.tx_bytes()
    t0 = time.time()
    sh(f"ip netns exec bz-client {cmd}")
    took, wire = time.time() - t0, link.tx_bytes() - before
    drop()
    return took, wire


def sites(args, bonsai, corpus, work, lines):
    """Section 5c: site 2 (the client namespace) reaches site 1's store over the link."""
    link = Link(args.rate, 0)
    link.down()
    try:
        link.up()
    except Exception as e:
        lines.append(f"\nSite runs skipped: could not build namespaces ({e}).\n")
        return
    far, near, cache_dir = (os.path.join(work, f"sites-{x}") for x in ("far", "near", "cache"))
    for d in (far, near, cache_dir):
        shutil.rmtree(d, ignore_errors=True)
        sh(f"{bonsai} init {d}")
    for img in ("A", "B", "C"):
        sh(f"{bonsai} push {corpus}/{img}.raw --store {far} --name {img} -o {work}/sites-{img}.recipe "
           "--quiet --no-cache --force")
    for img in ("A", "B"):  # site 2's own store already holds A and B
        sh(f"{bonsai} push {corpus}/{img}.raw --store {near} --name {img} -o {work}/sites-near-{img}.recipe "
           "--quiet --no-cache --force")
    out, url = os.path.join(work, "sites-out.raw"), "http://10.77.0.2:7412"
    pull = lambda img, store: (f"{bonsai} pull {work}/sites-{img}.recipe --store {store} -o {out} --quiet --no-cache",
                               out)
    server, cache, rows = start_site(bonsai, far), None, []
    try:
        direct = over_link(link, *pull("C", url))
        rows.append(["C pulled from site 1's store directly", direct])
        cache = subprocess.Popen(f"exec ip netns exec bz-client {bonsai} serve --listen 127.0.0.1:7430 "
                                 f"--data {cache_dir} --upstream {url}", shell=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cache.stdout.readline()
        for img in ("A", "B"):
            rows.append([f"{img} through site 2's cold cache (first use)", over_link(link, *pull(img, "http://127.0.0.1:7430"))])
        rows.append(["B again through the cache", over_link(link, *pull("B", "http://127.0.0.1:7430"))])
        rows.append(["C through the cache (after A, B)", over_link(link, *pull("C", "http://127.0.0.1:7430"))])
        stop(cache)
        cache = None
        rows.append(["`bonsai sync` of C to site 2's store holding A, B",
                     over_link(link, f"{bonsai} sync --from {url} --to {near} C --quiet")])
    finally:
        stop(cache)
        stop(server)
        link.down()
        for d in (far, near, cache_dir):
            shutil.rmtree(d, ignore_errors=True)
        if os.path.exists(out):
            os.remove(out)
    base_wall, base_wire = direct
    table_rows = [[what, f"{w:.1f}", mb(b), f"{w / base_wall:.2f}", f"{b / base_wire:.2f}"] for what, (w, b) in rows]
    lines.append(f"\n## 5c. Sites: a cache and a sync over the {args.rate} Mbit/s link\n")
    lines.append("Site 1's store holds A, B, C; site 2 is the other end of the link. Pulls through site 2's cache "
                 "(`serve --upstream`), against pulling C from site 1 directly; `bonsai sync` of C into a site-2 store "
                 "that holds A and B. WAN: bytes on the link, both ways.\n")
    lines.append(table(["move", "s", "WAN MiB", "time vs direct pull of C", "WAN vs direct pull of C"], table_rows))


# ---- cost per stage ------------------------------------------------------------------

def data_sample(image, dest):
    """The data extents of a sparse raw image, concatenated (what push chunks)."""
    if os.path.exists(dest) and os.path.getmtime(dest) >= os.path.getmtime(image):
        return dest
    with open(image, "rb") as src, open(dest + ".part", "wb") as out:
        fd, end, pos = src.fileno(), os.fstat(src.fileno()).st_size, 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            src.seek(start)
            left = stop - start
            while left:
                b = src.read(min(left, 8 * MIB))
                out.write(b)
                left -= len(b)
            pos = stop
    os.replace(dest + ".part", dest)
    return dest


def stages(corpus, work):
    """Seconds per GiB of each stage, one thread (core/benches/codec.rs), on C's data."""
    sample = data_sample(f"{corpus}/C.raw", os.path.join(os.path.dirname(work.rstrip("/")), "C-data.bin"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sh(f"cargo bench -q -p bonsai-core --bench codec -- {sample} 0 --json", cwd=root).stdout
    return json.loads(out.strip().splitlines()[-1])


def stage_section(st, lines):
    """Section 0: the table of stage costs, and each side's sum."""
    rows, sums = [], {"push": 0.0, "pull": 0.0}
    for s in st["stages"]:
        if s["side"] in sums:
            sums[s["side"]] += s["seconds_per_gib"]
        rows.append([s["stage"], s["side"].replace("-whole", " (whole)"), f"{1024 / s['seconds_per_gib']:.0f}",
                     f"{s['seconds_per_gib']:.2f}"])
    rows += [["sum of push stages", "push", "-", f"{sums['push']:.2f}"],
             ["sum of pull stages", "pull", "-", f"{sums['pull']:.2f}"]]
    lines += ["", "## 0. Cost of each stage on one core (C's data)", "",
              f"`cargo bench -p bonsai-core --bench codec -- C-data.bin 0` on the {st['input_bytes'] / (1 << 30):.2f} GiB "
              "of data in C (its data extents, concatenated): each stage alone over every chunk, then the encoder "
              "and decoder as push and pull run them. CPU seconds per GiB of data.", "",
              table(["stage", "side", "MiB/s", "CPU s per GiB"], rows)]
    return sums


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/var/tmp/bonsai-corpus")
    ap.add_argument("--work", default="/var/tmp/bonsai-bench/peers")
    ap.add_argument("--bonsai", required=True)
    ap.add_argument("--images", default="A,B,C,D")
    ap.add_argument("--tools", default="bonsai,casync,restic,borg")
    ap.add_argument("--out", default=None)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--delay", type=int, default=0, help="netem delay on the link, ms, where the kernel has netem")
    ap.add_argument("--rtts", default="0,40,80,160", help="round-trip times for section 5b, ms (bench/delay.py)")
    ap.add_argument("--no-wan", action="store_true")
    ap.add_argument("--no-stages", action="store_true", help="skip section 0 (cargo bench of each stage)")
    ap.add_argument("--only-sites", action="store_true", help="run section 5c alone")
    ap.add_argument("--only-rtt", action="store_true", help="run section 5b alone")
    args = ap.parse_args()

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    classes = {c.name: c for c in (Bonsai, Casync, Restic, Borg)}
    tools = [classes[t](work, args.bonsai) for t in args.tools.split(",") if t in classes
             and (t == "bonsai" or shutil.which({"borg": "borg"}.get(t, t)))]
    images = [i for i in args.images.split(",") if os.path.exists(f"{args.corpus}/{i}.raw")]
    lines = [
        "# bonsai against its peers",
        "",
        f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB, kernel {platform.release()}.",
        "Versions: " + "; ".join([version(f"{args.bonsai} --version"), version("casync --version"),
                                  version("restic version"), version("borg --version"), version("zstd --version")]),
        "",
        "Each tool with its defaults (casync: 64 KiB chunks, zstd; restic 0.14: repo v2, auto compression; "
        "borg 1.2: lz4, unencrypted; bonsai: FastCDC 64 KiB, zstd-3, AES-256-GCM, embedded store). "
        f"Images from `make-corpus.sh`: {', '.join(images)} (3 GiB sparse raw ext4). "
        "Commands: see bench/run.py (`Tool.push`, `Tool.restore`).",
    ]

    if args.only_rtt:
        wan(args, args.bonsai, args.corpus, work, lines, [])
        emit("\n".join(lines) + "\n", args.out)
        return
    if args.only_sites:
        sites(args, args.bonsai, args.corpus, work, lines)
        emit("\n".join(lines) + "\n", args.out)
        return
    goals = []
    sums = None
    if "C" in images and not args.no_stages:
        sums = stage_section(stages(args.corpus, work), lines)
    # 1. A, B, C, D into one store, interleaved
    repos = {t.name: os.path.join(work, t.name + "-all") for t in tools}
    for t in tools:
        t.init(repos[t.name])
    growth = {t.name: [] for t in tools}
    for k, img in enumerate(images):
        order = tools[k % len(tools):] + tools[:k % len(tools)]
        for t in order:
            before = t.store_bytes(repos[t.name])
            wall, cpu, rss, out = t.push(repos[t.name], f"{args.corpus}/{img}.raw", img)
            growth[t.name].append((img, t.store_bytes(repos[t.name]) - before, wall, cpu, rss, out))
            print(f"{t.name} {img}: {wall:.1f}s", file=sys.stderr)
    rows = []
    for i, img in enumerate(images):
        best = min(growth[t.name][i][1] for t in tools)
        for t in tools:
            _, g, wall, cpu, rss, out = growth[t.name][i]
            extra = ""
            if t.name == "bonsai":
                r = json.loads(out)
                extra = f" (sent {mb(r['sent_bytes'])})"
            rows.append([img, t.name, mb(g) + extra, f"{g / best:.2f}", f"{wall:.1f}", f"{cpu:.1f}", f"{rss:.0f}"])
    lines += ["", "## 1. Store growth, images pushed in order into one store", "",
              table(["image", "tool", "growth MiB", "vs smallest", "wall s", "CPU s", "peak RSS MiB"], rows)]

    # 2. C alone into an empty store
    if "C" in images:
        rows, res = [], []
        for t in tools:
            repo = os.path.join(work, t.name + "-conly")
            t.init(repo)
            wall, cpu, rss, out = t.push(repo, f"{args.corpus}/C.raw", "C")
            res.append((t.name, wall, cpu, rss, t.store_bytes(repo)))
            if t.name == "bonsai":
                c_data = json.loads(out)["data_bytes"] / (1 << 30)
                if sums:
                    goal(goals, "cold push of C, bonsai CPU s per GiB of data / sum of push stages",
                         cpu / c_data / sums["push"], 1.3)
            shutil.rmtree(repo, ignore_errors=True)
        fastest_peer = min((r[1] for r in res if r[0] != "bonsai"), default=None)
        walls = {r[0]: r[1] for r in res}
        if "borg" in walls and "bonsai" in walls:
            goal(goals, "cold push of C, bonsai / borg wall", walls["bonsai"] / walls["borg"], 0.5)
        for name, wall, cpu, rss, size in res:
            ratio = f"{wall / fastest_peer:.2f}" if fastest_peer else "-"
            rows.append([name, f"{wall:.1f}", ratio, f"{cpu:.1f}", f"{rss:.0f}", mb(size)])
        lines += ["", "## 2. Cold push of C into an empty store", "",
                  table(["tool", "wall s", "vs fastest peer", "CPU s", "peak RSS MiB", "stored MiB"], rows)]

        # re-push of C, unchanged, into the A-D store (its key cache warm from section 1)
        if "bonsai" in repos:
            b = next(t for t in tools if t.name == "bonsai")
            wall, cpu, rss, out = b.push(repos["bonsai"], f"{args.corpus}/C.raw", "C-again")
            rate = json.loads(out)["logical_bytes"] / (1 << 30) / wall
            goal(goals, "re-push of an unchanged C, GiB/s of logical size", rate, 2.0, ">=")
            lines += ["", f"Re-push of C, unchanged, into the store holding A-D: {wall:.1f} s "
                      f"({rate:.2f} GiB/s of its 3 GiB), {cpu:.1f} CPU s, {rss:.0f} MiB peak RSS.", ""]

        # 3. restore C from the A-D store
        rows, res = [], []
        for t in tools:
            out = os.path.join(work, f"restore-{t.name}.raw")
            subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, capture_output=True)
            wall, cpu, rss, _ = t.restore(repos[t.name], "C", out)
            same = subprocess.run(f"cmp -s {out} {args.corpus}/C.raw", shell=True).returncode == 0
            res.append((t.name, wall, cpu, rss, same))
            os.remove(out)
        restic = next((r[1] for r in res if r[0] == "restic"), None)
        walls = {r[0]: r[1] for r in res}
        if "borg" in walls and "bonsai" in walls:
            goal(goals, "restore of C, bonsai / borg wall", walls["bonsai"] / walls["borg"], 0.5)
        if sums and "bonsai" in walls:
            cpu = next(r[2] for r in res if r[0] == "bonsai")
            goal(goals, "restore of C, bonsai CPU s per GiB of data / sum of pull stages", cpu / c_data / sums["pull"], 1.3)
        for name, wall, cpu, rss, same in res:
            rows.append([name, f"{wall:.1f}", f"{wall / restic:.2f}" if restic else "-", f"{cpu:.1f}", f"{rss:.0f}",
                         "yes" if same else "NO"])
        lines += ["", "## 3. Restore of C (from the store holding A-D)", "",
                  table(["tool", "wall s", "vs restic", "CPU s", "peak RSS MiB", "identical"], rows)]

        # 4. seeded pull
        if "B" in images and any(t.name == "bonsai" for t in tools):
            out = os.path.join(work, "seeded.raw")
            wall, cpu, rss, js = timed(f"{args.bonsai} pull {repos['bonsai']}.C.recipe --store {repos['bonsai']} "
                                       f"-o {out} --seed {args.corpus}/B.raw --json --quiet --no-cache")
            r = json.loads(js)
            os.remove(out)
            rows = [["bonsai", mb(r["fetched_bytes"]), r["fetched_blocks"], f"{wall:.1f}", f"{rss:.0f}"]]
            if "casync" in repos:
                rows.append(casync_seeded(repos["casync"], args.corpus, work))
            lines += ["", "## 4. Pull of C with `--seed B.raw`: bytes fetched from the store", "",
                      "casync fetches over HTTP from its store served by a counting static file server.", "",
                      table(["tool", "fetched MiB", "chunks", "wall s", "peak RSS MiB"], rows)]

    if not args.no_wan and {"A", "B", "C", "Cip"} <= set(images + ["Cip"]) and os.path.exists(f"{args.corpus}/Cip.raw"):
        wan(args, args.bonsai, args.corpus, work, lines, goals)
    if not args.no_wan and {"A", "B", "C"} <= set(images):
        sites(args, args.bonsai, args.corpus, work, lines)
    if goals:
        lines += ["", "## Goals (ratios measured in this run)", ""] + goals

    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
