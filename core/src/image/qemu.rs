//! Images read through qemu's block layer: `qemu-storage-daemon` exports the chain
//! read-only over NBD on a unix socket in a private directory; [`QemuDisk`] maps it with
//! NBD block status, or the format's own tables where bonsai reads them
//! ([`super::allocation`]), so holes are never read; data is read with NBD reads.
//!
//! Why qemu: it is the reference reader of every format hypervisors write (vmdk, vhdx,
//! vhd, vdi, qed, parallels, LUKS, every qcow2 feature), the one every migration tool
//! uses. The daemon is given the exact node tree bonsai resolved ([`super::chain`]):
//! each layer's driver named explicitly (qemu never probes), `backing: null` below the
//! last layer. After start, bonsai asks it (QMP `query-named-block-nodes`) which files it
//! opened and refuses if any is not one it expected.
//!
//! The daemon is killed and its directory removed when the disk is dropped, on every
//! path. qemu reads zeros past the end of a truncated file: [`super::header`] checks the
//! tables of qcow2 and qed before the daemon starts, and [`super::truncated`] every
//! mapped extent before the first read.

use super::chain::Layer;
use super::disk::{Disk, DiskExtent};
use super::nbd::{NbdClient, MAX_READ};
use super::{ImageError, ImageFormat};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The program started (from PATH).
pub const DAEMON: &str = "qemu-storage-daemon";
/// How long the daemon may take to open the image.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private 0700 directory removed on drop, or by SIGINT/SIGTERM ([`super::on_signal`]).
struct PrivateDir {
    path: PathBuf,
    _signal: super::on_signal::Registered,
}

impl PrivateDir {
    fn new() -> io::Result<PrivateDir> {
        let base = std::env::temp_dir();
        for i in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = base.join(format!("bonsai-qsd-{}-{nanos:x}-{i}", std::process::id()));
            // registered before it exists: a signal between creating and registering
            // would otherwise leave it behind (the handler ignores a missing directory;
            // the name holds our pid, so it is never another process's)
            let signal = super::on_signal::register(&p);
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => {
                    return Ok(PrivateDir {
                        path: p,
                        _signal: signal,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(
            "cannot create a private temporary directory",
        ))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The daemon process, killed on drop, and by the kernel when bonsai dies
/// ([`spawn_tied`]): it must never outlive the push holding the image open.
struct Daemon(Child);

/// Starts `cmd` with SIGKILL as its parent-death signal. The kernel sends it when the
/// *thread* that forked exits, so every daemon is forked by one thread that lives as long
/// as the process; a bonsai killed by any signal takes its daemons with it.
fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc::{channel, Sender};
    type Job = (Command, Sender<io::Result<Child>>);
    static SPAWNER: Mutex<Option<Sender<Job>>> = Mutex::new(None);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of ours.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::other("bonsai ended while starting the reader"));
            }
            Ok(())
        });
    }
    let mut spawner = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    let jobs = spawner.get_or_insert_with(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("bonsai-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("a thread to start readers from");
        tx
    });
    let (tx, rx) = channel();
    jobs.send((cmd, tx))
        .map_err(|_| io::Error::other("reader spawner gone"))?;
    drop(spawner);
    rx.recv()
        .map_err(|_| io::Error::other("reader spawner gone"))?
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A guest disk served by qemu-storage-daemon. Field order matters: the connection
/// closes, then the daemon dies, then its directory goes.
pub struct QemuDisk {
    path: PathBuf,
    nbd: Mutex<NbdClient>,
    size: u64,
    /// The format's own map where bonsai reads it ([`super::allocation`]).
    map: Option<super::allocation::AllocationMap>,
    files: Vec<PathBuf>,
    log: File,
    _daemon: Daemon,
    _dir: PrivateDir,
}

impl QemuDisk {
    /// Starts the daemon on `layers` (top first) and connects. `expected` lists every file
    /// the daemon may open; `secret_file` unlocks encrypted layers.
    pub fn open(
        layers: &[Layer],
        expected: &[PathBuf],
        secret_file: Option<&Path>,
    ) -> Result<QemuDisk, ImageError> {
        let top = &layers[0].path;
        let fail = |message: String| ImageError::Reader {
            path: top.clone(),
            message,
        };
        let dir = PrivateDir::new().map_err(|e| ImageError::io(top, e))?;
        let [nbd_sock, qmp_sock, log] = super::on_signal::FILES.map(|f| dir.path.join(f));
        let secret = secret_file.map(secret_object).transpose()?;
        let tree = node(layers, secret.is_some());
        let mut cmd = daemon_command(&tree, secret.as_ref(), &nbd_sock, &qmp_sock);
        let log_file = File::create(&log).map_err(|e| ImageError::io(&log, e))?;
        let log = File::open(&log).map_err(|e| ImageError::io(&log, e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = spawn_tied(cmd)
            .map_err(|e| fail(format!("cannot start {DAEMON} ({e}); install qemu-utils (it reads vmdk, vhdx, vhd, vdi, qed, parallels, luks)")))?;
        let mut daemon = Daemon(child);
        let monitor = wait_ready(&mut daemon, &qmp_sock, &log).map_err(|e| {
            super::truncated::refused(top, &last_message(&log)).unwrap_or_else(|| fail(e))
        })?;
        let files = opened_files(monitor)
            .map_err(|e| fail(format!("cannot ask {DAEMON} what it opened: {e}")))?;
        if let Some(f) = unexpected(&files, expected) {
            return Err(fail(format!(
                "the reader opened {}, which bonsai did not resolve; refusing",
                f.display()
            )));
        }
        let nbd = NbdClient::connect(&nbd_sock, "disk")
            .map_err(|e| fail(format!("cannot read the export: {e}")))?;
        // connected: the sockets and the log's name are no longer needed, so nothing is
        // left in the temporary directory however bonsai ends from here on
        let _ = std::fs::remove_dir_all(&dir.path);
        let map = super::allocation::read(layers)?;
        if map.as_ref().is_none_or(|m| m.covered() < nbd.size()) {
            super::truncated::check(layers, &tree, secret.as_ref())?;
        }
        Ok(QemuDisk {
            path: top.clone(),
            size: nbd.size(),
            map,
            nbd: Mutex::new(nbd),
            files,
            log,
            _daemon: daemon,
            _dir: dir,
        })
    }

    /// An NBD failure with what the daemon logged about it (it drops the connection after
    /// an I/O error, so the socket alone only says "closed"). A failure the reader reports
    /// (EIO, or a logged complaint) is the image's: a cluster that does not decompress,
    /// a table entry qemu rejects. It is refused as damage, not a local I/O fault.
    fn explain(&self, what: String, e: io::Error) -> io::Error {
        let said = last_message(&self.log);
        if said.is_empty() && e.kind() != io::ErrorKind::InvalidData {
            return io::Error::new(e.kind(), format!("{what}: {e}"));
        }
        let why = if said.is_empty() {
            e.to_string()
        } else {
            format!("the reader says: {said}")
        };
        ImageError::damaged(&self.path, format!("{what}: {why}")).into()
    }

    /// The daemon's process id and private directory (for diagnostics and tests).
    pub fn helper(&self) -> (u32, &Path) {
        (self._daemon.0.id(), &self._dir.path)
    }

    /// Files the daemon opened, as it reports them (canonical paths).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// The QOM secret object reading the passphrase in `file` (its exact bytes).
fn secret_object(file: &Path) -> Result<Value, ImageError> {
    let file = std::fs::canonicalize(file).map_err(|e| ImageError::io(file, e))?;
    Ok(json!({"qom-type": "secret", "id": "sec0", "file": file, "format": "raw"}))
}

/// The first of `files` (canonical) that is not one of `expected`.
fn unexpected<'a>(files: &'a [PathBuf], expected: &[PathBuf]) -> Option<&'a PathBuf> {
    let expected: Vec<PathBuf> = expected
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    files.iter().find(|f| !expected.contains(f))
}

/// The daemon's command line: `tree` exported read-only over NBD on `nbd`, its monitor
/// on `qmp`, `secret` (a QOM secret object) for encrypted layers.
fn daemon_command(tree: &Value, secret: Option<&Value>, nbd: &Path, qmp: &Path) -> Command {
    let mut cmd = Command::new(DAEMON);
    if let Some(s) = secret {
        cmd.arg("--object").arg(s.to_string());
    }
    let mut root = tree.clone();
    root["node-name"] = json!("disk");
    cmd.arg("--blockdev").arg(root.to_string());
    cmd.arg("--nbd-server")
        .arg(json!({"addr": {"type": "unix", "path": nbd}}).to_string())
        .arg("--export")
        .arg(json!({"type": "nbd", "id": "exp", "node-name": "disk", "name": "disk", "writable": false}).to_string())
        .arg("--chardev")
        .arg(format!(
            "socket,id=qmp,path={},server=on,wait=off",
            qmp.display().to_string().replace(',', ",,") // keyval escaping
        ))
        .arg("--monitor")
        .arg("chardev=qmp");
    cmd
}

/// The blockdev tree of `layers`: explicit drivers, `backing: null` at the bottom.
fn node(layers: &[Layer], secret: bool) -> Value {
    let l = &layers[0];
    let proto = if l.block_device {
        "host_device"
    } else {
        "file"
    };
    let file = json!({"driver": proto, "filename": l.path, "read-only": true});
    let mut n = json!({"driver": l.format.name(), "file": file, "read-only": true});
    if matches!(
        l.format,
        ImageFormat::Qcow2 | ImageFormat::Qed | ImageFormat::Vmdk
    ) {
        n["backing"] = layers
            .get(1)
            .map(|_| node(&layers[1..], secret))
            .unwrap_or(Value::Null);
    }
    for r in &l.header.references {
        if r.kind == "external data file" {
            let p = super::chain::resolve(&l.path, &r.name);
            n["data-file"] = json!({"driver": "file", "filename": p, "read-only": true});
        }
    }
    match (l.header.encryption, secret) {
        (Some("luks"), true) => n["key-secret"] = json!("sec0"),
        (Some(scheme), true) => {
            let format = if scheme.ends_with("aes") {
                "aes"
            } else {
                "luks"
            };
            n["encrypt"] = json!({"format": format, "key-secret": "sec0"});
        }
        _ => {}
    }
    n
}

/// Waits until the QMP socket answers (it is created after the export), or the daemon dies.
/// Returns that connection: the monitor serves one client at a time, so a second connect
/// right after dropping the first can meet the old one's teardown.
fn wait_ready(daemon: &mut Daemon, qmp: &Path, log: &File) -> Result<UnixStream, String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            let line = last_message(log);
            return Err(format!(
                "the reader ({DAEMON}) refused the image ({status}): {line}"
            ));
        }
        if qmp.exists() {
            if let Ok(sock) = UnixStream::connect(qmp) {
                return Ok(sock);
            }
        }
        if start.elapsed() > START_TIMEOUT {
            return Err(format!(
                "the reader ({DAEMON}) did not start within {}s",
                START_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The daemon's last log line, without its program name and the option it quotes.
fn last_message(log: &File) -> String {
    let mut text = String::new();
    let _ = log.try_clone().and_then(|mut f| {
        f.seek(io::SeekFrom::Start(0))
            .and_then(|_| f.read_to_string(&mut text))
    });
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let line = line.trim_start_matches(&format!("{DAEMON}: "));
    let line = match line.strip_prefix("--") {
        Some(rest) => rest.rsplit_once("}: ").map(|(_, m)| m).unwrap_or(rest),
        None => line,
    };
    let line = line.trim_start_matches("Disconnect client, due to: ");
    let line = line.trim_start_matches("Failed to send reply: ");
    line.to_lowercase().trim().to_string()
}

/// The files behind every `file`/`host_device` node, via QMP on connection `sock`.
fn opened_files(sock: UnixStream) -> io::Result<Vec<PathBuf>> {
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(sock.try_clone()?);
    let mut writer = sock;
    let mut line = String::new();
    // The monitor takes commands as soon as the connection is open; its greeting is one
    // more line without "return", skipped below, not waited for first (under load it was
    // seen not to come within the timeout).
    let mut call = |cmd: Value| -> io::Result<Value> {
        writeln!(writer, "{cmd}")?;
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(no_answer)? == 0 {
                return Err(io::Error::other("monitor closed"));
            }
            let v: Value = serde_json::from_str(&line).map_err(io::Error::other)?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(io::Error::other(e.to_string()));
            }
        }
    };
    call(json!({"execute": "qmp_capabilities"}))?;
    let nodes = call(json!({"execute": "query-named-block-nodes", "arguments": {"flat": true}}))?;
    let mut files = Vec::new();
    for n in nodes.as_array().into_iter().flatten() {
        if matches!(n["drv"].as_str(), Some("file" | "host_device")) {
            if let Some(f) = n["file"].as_str() {
                let p = std::fs::canonicalize(f).unwrap_or_else(|_| PathBuf::from(f));
                if !files.contains(&p) {
                    files.push(p);
                }
            }
        }
    }
    Ok(files)
}

/// A read timeout reads as "Resource temporarily unavailable"; say what it means.
fn no_answer(e: io::Error) -> io::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "its monitor did not answer within 30 s",
        )
    } else {
        e
    }
}

impl Disk for QemuDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn extent_at(&self, pos: u64) -> io::Result<DiskExtent> {
        if let Some(run) = self.map.as_ref().and_then(|m| m.extent_at(pos, self.size)) {
            return Ok(run);
        }
        let mut nbd = self
            .nbd
            .lock()
            .map_err(|_| io::Error::other("reader lock poisoned"))?;
        let (len, zero) = nbd
            .block_status(pos, self.size - pos)
            .map_err(|e| self.explain(format!("mapping guest byte {pos}"), e))?;
        Ok(DiskExtent {
            len: len.min(self.size - pos),
            zero,
        })
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut nbd = self
            .nbd
            .lock()
            .map_err(|_| io::Error::other("reader lock poisoned"))?;
        for (i, part) in buf.chunks_mut(MAX_READ).enumerate() {
            let at = pos + (i * MAX_READ) as u64;
            nbd.read(part, at).map_err(|e| {
                self.explain(
                    format!("reading guest bytes {at}..{}", at + part.len() as u64),
                    e,
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{open_disk, OpenOptions};
    use std::io::Read;

    /// The tests here count this process's daemon directories: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn helper_dirs() -> usize {
        let prefix = format!("bonsai-qsd-{}-", std::process::id());
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count()
    }

    fn qemu_img(args: &[&str]) {
        crate::test_tools::run_ok("qemu-img", args)
    }

    #[test]
    fn the_daemon_serves_the_disk_and_is_gone_after_drop_or_failure() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("d.raw");
        let mut data = vec![0u8; 8 << 20];
        data[3 << 20..(3 << 20) + 5].copy_from_slice(b"hello");
        data[(8 << 20) - 3..].copy_from_slice(b"end");
        std::fs::write(&raw, &data).unwrap();
        let vmdk = dir.path().join("d.vmdk");
        qemu_img(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            raw.to_str().unwrap(),
            vmdk.to_str().unwrap(),
        ]);
        let before = helper_dirs();
        let opened = open_disk(&vmdk, &OpenOptions::default()).unwrap();
        let disk = opened.disk;
        assert_eq!(disk.size(), 8 << 20);
        assert_eq!(helper_dirs(), before, "directory kept once connected");
        // the map: a hole first, never read
        let first = disk.extent_at(0).unwrap();
        assert!(first.zero && first.len >= 1 << 20, "{first:?}");
        let mut all = Vec::new();
        crate::image::DiskStream::new(disk)
            .read_to_end(&mut all)
            .unwrap();
        assert!(all == data, "vmdk read differs from its raw disk");
        assert_eq!(helper_dirs(), before, "private directory left behind");

        // a failed start (wrong passphrase) leaves nothing either
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "right").unwrap();
        let luks = dir.path().join("d.luks");
        let secret = format!("secret,id=s0,file={}", pass.display());
        qemu_img(&[
            "convert",
            "--object",
            &secret,
            "-f",
            "raw",
            "-O",
            "luks",
            "-o",
            "key-secret=s0,iter-time=10",
            raw.to_str().unwrap(),
            luks.to_str().unwrap(),
        ]);
        std::fs::write(&pass, "wrong").unwrap();
        let opts = OpenOptions {
            secret_file: Some(pass.clone()),
            ..OpenOptions::default()
        };
        let err = open_disk(&luks, &opts).err().unwrap();
        assert!(err.to_string().contains("invalid password"), "{err}");
        assert_eq!(helper_dirs(), before);
    }

    #[test]
    fn the_process_is_reaped_on_drop() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let qed = dir.path().join("d.qed");
        qemu_img(&["create", "-q", "-f", "qed", qed.to_str().unwrap(), "4M"]);
        let layers = crate::image::chain::resolve_chain(&qed, &OpenOptions::default()).unwrap();
        let disk = QemuDisk::open(&layers, std::slice::from_ref(&qed), None).unwrap();
        let (pid, socket_dir) = (disk.helper().0, disk.helper().1.to_path_buf());
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(disk.files(), [std::fs::canonicalize(&qed).unwrap()]);
        drop(disk);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "daemon still running"
        );
        assert!(!socket_dir.exists(), "socket directory left behind");
    }
}
