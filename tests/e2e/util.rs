//! Helpers: run `bonsai`, start and stop a store, make images.

use std::collections::HashSet;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bonsai")
}

/// The key cache of the calling test, never the user's own: one directory per test (named
/// after the test's thread), emptied the first time this process uses it, under cargo's
/// temporary directory for integration tests.
pub(crate) fn cache_dir() -> PathBuf {
    static SEEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let name = std::thread::current()
        .name()
        .map(|n| n.replace("::", "-"))
        .unwrap_or_else(|| format!("thread-{:?}", std::thread::current().id()));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e-cache")
        .join(name);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.get_or_insert_with(HashSet::new).insert(dir.clone()) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    dir
}

/// Runs bonsai with `args`; returns the output whatever the exit status.
pub(crate) fn bonsai(args: &[&str]) -> Output {
    bonsai_env(args, &[])
}

/// `bonsai` as every test runs it: no token, store, CA or config file from the
/// environment (the config file would be under the test's own HOME), errors only in logs,
/// the test's own key cache (`BONSAI_CACHE_DIR`, and `XDG_CACHE_HOME`/`HOME` beside it
/// so no path can lead to `~/.cache/bonsai`). `env` is applied last and may override.
pub(crate) fn command(env: &[(&str, &str)]) -> Command {
    command_of(bin(), env)
}

/// `program` (which runs bonsai, e.g. `script`) with the environment of [`command`].
pub(crate) fn command_of(program: &str, env: &[(&str, &str)]) -> Command {
    let cache = cache_dir();
    let mut cmd = Command::new(program);
    cmd.env_remove("BONSAI_TOKEN")
        .env_remove("BONSAI_TOKEN_FILE")
        .env_remove("BONSAI_STORE")
        .env_remove("BONSAI_CA_FILE")
        .env_remove("BONSAI_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("NO_COLOR")
        .env("BONSAI_LOG", "error")
        .env("BONSAI_CACHE_DIR", &cache)
        .env("XDG_CACHE_HOME", cache.join("xdg"))
        .env("HOME", cache.join("home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub(crate) fn bonsai_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(env).args(args).output().expect("run bonsai")
}

/// Runs bonsai, asserts success, returns parsed `--json` stdout.
pub(crate) fn bonsai_json(args: &[&str]) -> serde_json::Value {
    let out = bonsai(args);
    assert!(
        out.status.success(),
        "bonsai {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad json from {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Asserts failure with exactly one line on stderr containing `needle`; returns it.
#[track_caller]
fn fails_with(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "error {err:?} does not mention {needle:?}"
    );
    err
}

/// One HTTP/1.1 request by hand, for what the client never sends (an empty manifest, a
/// forged sealed recipe): `(status, body)`.
pub(crate) fn http(method: &str, url: &str, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("plain http url");
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} /{path} HTTP/1.1\r\nhost: {host}\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let status = std::str::from_utf8(&reply[9..12]).unwrap().parse().unwrap();
    let at = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, reply[at..].to_vec())
}

/// Asserts failure with one line holding `needle` (see `fails_with`) and the exit code
/// `code`, from README's table.
#[track_caller]
pub(crate) fn fails_as(out: &Output, needle: &str, code: i32) -> String {
    let err = fails_with(out, needle);
    assert_eq!(out.status.code(), Some(code), "exit code for {needle:?}");
    err
}

pub(crate) struct Server {
    serving: crate::serving::Serving,
    pub(crate) url: String,
    data: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// `bonsai serve` on 127.0.0.1:0, ready once it printed its address.
    pub(crate) fn start(data: &Path, extra: &[&str]) -> Server {
        if !data.to_string_lossy().starts_with("s3://") {
            std::fs::create_dir_all(data).unwrap(); // as `bonsai init` would
        }
        let mut cmd = command(&[]);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("BONSAI_LOG", "warn")
            .stderr(Stdio::null());
        let serving = crate::serving::Serving::spawn(cmd);
        Server {
            url: serving.url.clone(),
            serving,
            data: data.to_path_buf(),
            args: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Pins every thread of the server (and those it starts later) to CPU 0: races show
    /// more often when the server cannot run two things at once.
    pub(crate) fn pin_to_one_core(&self) {
        let pid = self.serving.child.id();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let tid: libc::pid_t = task.unwrap().file_name().to_str().unwrap().parse().unwrap();
            // SAFETY: a zeroed cpu_set_t with one bit set, passed by pointer with its size.
            let rc = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
            };
            assert_eq!(rc, 0, "sched_setaffinity({tid})");
        }
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        self.serving.kill();
    }

    /// Starts again on the same directory, on a new port (never a released one).
    pub(crate) fn restart(mut self) -> Server {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(|s| s.as_str()).collect();
        Server::start(&self.data.clone(), &args)
    }
}

/// A "store" that accepts every connection and hangs up at once: a server that is down,
/// on a port this test holds for its whole life (never a released port someone may take).
pub(crate) struct HangUp {
    addr: std::net::SocketAddr,
}

impl HangUp {
    pub(crate) fn start() -> HangUp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
        HangUp { addr }
    }
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Runs `program` (a tool the tests drive, e.g. qemu-img or qemu-io) and asserts it
/// succeeded; a missing tool fails naming its package.
pub(crate) fn run_tool(program: &str, args: &[&str]) {
    crate::tools::run_ok(program, args)
}

/// [`run_tool`] for qemu-img.
pub(crate) fn qemu_img(args: &[&str]) {
    run_tool("qemu-img", args)
}

/// Exit codes as README's "Exit status" table documents them.
pub(crate) const EXIT_USAGE: i32 = 2;
pub(crate) const EXIT_AUTH: i32 = 3;
pub(crate) const EXIT_NOT_FOUND: i32 = 4;
pub(crate) const EXIT_VERIFY: i32 = 5;
pub(crate) const EXIT_NETWORK: i32 = 6;
pub(crate) const EXIT_LOCAL_IO: i32 = 7;

/// Deterministic pseudo-random bytes.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Compressible, text-like bytes.
pub(crate) fn text(len: usize, seed: u64) -> Vec<u8> {
    noise(len, seed)
        .iter()
        .map(|b| b"etaoin shrdlu\n"[(*b % 14) as usize])
        .collect()
}

/// A sparse file of `size` with `parts` written at their offsets.
pub(crate) fn image(path: &Path, size: u64, parts: &[(u64, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (off, data) in parts {
        f.write_all_at(data, *off).unwrap();
    }
}

pub(crate) fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// Paths in a test directory, as strings for argument lists.
pub(crate) struct Dir(pub tempfile::TempDir);

impl Dir {
    pub(crate) fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    pub(crate) fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    /// An embedded store directory made with `bonsai init` (idempotent), as a `--store`.
    pub(crate) fn store(&self, name: &str) -> String {
        let out = bonsai(&["init", &self.s(name)]);
        assert!(
            out.status.success(),
            "bonsai init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.s(name)
    }
}

/// Files in a directory (to prove a failed pull left nothing that looks complete).
pub(crate) fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
