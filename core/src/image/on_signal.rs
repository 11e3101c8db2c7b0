//! What SIGINT (Ctrl-C) or SIGTERM does before it ends bonsai: remove the qemu reader's
//! private directories if a reader is starting (once bonsai is connected the directory is
//! already gone, and the daemon dies with bonsai through its parent-death signal), and
//! say in one line on stderr what the interrupted work left behind ([`note`]: a partial
//! file a re-run resumes, blocks a re-push skips).
//!
//! The handler makes only async-signal-safe calls (`unlink`, `rmdir`, `write`, `raise`) on
//! bytes stored before any signal, then lets the signal's default action end the process,
//! so exit statuses are unchanged (130 after Ctrl-C). It is installed only where the
//! disposition is still the default, so a program with its own handlers keeps them.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// The files a private directory may hold (the reader's sockets and its log).
pub const FILES: [&str; 3] = ["nbd.sock", "qmp.sock", "log"];
/// Directories registered at once, at most (readers open at the same time).
const SLOTS: usize = 32;
static DIRS: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];
/// The line written on a signal: what the work under way leaves behind.
static NOTE: AtomicPtr<libc::c_char> = AtomicPtr::new(ptr::null_mut());
/// The line written when no work has said what it leaves.
const PLAIN: &CStr = c"bonsai: interrupted\n";

/// A line said on SIGINT or SIGTERM while this lives (the newest one wins).
pub struct Note(*mut libc::c_char);

// SAFETY: the pointer is only compared and swapped atomically, never dereferenced here.
unsafe impl Send for Note {}

/// Says `text` (one clause: what is left and what a re-run does) if a signal ends the
/// process while the returned guard lives: `bonsai: interrupted; TEXT`.
pub fn note(text: &str) -> Note {
    install();
    let line = format!("bonsai: interrupted; {}\n", text.replace(['\n', '\0'], " "));
    let Ok(line) = CString::new(line) else {
        return Note(ptr::null_mut());
    };
    let line = line.into_raw();
    NOTE.store(line, Ordering::SeqCst);
    Note(line)
}

impl Drop for Note {
    fn drop(&mut self) {
        // Not freed, as for directories: a handler may be writing it.
        let _ = NOTE.compare_exchange(self.0, ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// A directory removed if SIGINT or SIGTERM arrives while this lives.
pub struct Registered(Option<usize>);

/// Registers `dir` (a directory holding only [`FILES`]).
pub fn register(dir: &Path) -> Registered {
    install();
    let Ok(name) = CString::new(dir.as_os_str().as_bytes()) else {
        return Registered(None);
    };
    let name = name.into_raw();
    for (i, slot) in DIRS.iter().enumerate() {
        let free = ptr::null_mut();
        if slot
            .compare_exchange(free, name, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Registered(Some(i));
        }
    }
    // SAFETY: `name` came from `into_raw` above and was published nowhere.
    drop(unsafe { CString::from_raw(name) });
    Registered(None)
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // The name is not freed: a handler running on another thread may be reading
            // it. A few dozen bytes per reader started.
            DIRS[i].store(ptr::null_mut(), Ordering::SeqCst);
        }
    }
}

/// Installs the handler (once; only where SIGINT and SIGTERM still do their default), so
/// even work that registers nothing ends with one line.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: sigaction with valid pointers to zeroed (valid) structs; the handler
            // is an extern "C" fn that lives for the whole process.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = handler as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut new.sa_mask);
                new.sa_flags = libc::SA_RESETHAND;
                libc::sigaction(sig, &new, ptr::null_mut());
            }
        }
    });
}

extern "C" fn handler(sig: libc::c_int) {
    remove_registered();
    say_note();
    // SAFETY: SA_RESETHAND restored the default action; raising it again ends the process
    // as the signal would have (it is delivered when this handler returns).
    unsafe {
        libc::raise(sig);
    }
}

/// Writes the current note (or the plain line) to stderr, allocating nothing.
fn say_note() {
    let note = NOTE.load(Ordering::SeqCst);
    // SAFETY: notes are NUL-terminated and never freed; PLAIN is static.
    let line = if note.is_null() {
        PLAIN
    } else {
        unsafe { CStr::from_ptr(note) }
    };
    let bytes = line.to_bytes();
    // SAFETY: write(2) of a valid buffer; a short or failed write is not retried.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Removes every registered directory and its [`FILES`], allocating nothing.
fn remove_registered() {
    for i in 0..SLOTS {
        remove_slot(i);
    }
}

/// Removes the directory registered in slot `i`, if any.
fn remove_slot(i: usize) {
    let dir = DIRS[i].load(Ordering::SeqCst);
    if dir.is_null() {
        return;
    }
    // SAFETY: registered names are NUL-terminated and never freed.
    let bytes = unsafe { CStr::from_ptr(dir) }.to_bytes();
    let mut buf = [0u8; 4200];
    for name in FILES {
        let end = bytes.len() + 1 + name.len();
        if end >= buf.len() {
            continue;
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        buf[bytes.len()] = b'/';
        buf[bytes.len() + 1..end].copy_from_slice(name.as_bytes());
        buf[end] = 0;
        // SAFETY: `buf` holds a NUL-terminated path.
        unsafe { libc::unlink(buf.as_ptr().cast()) };
    }
    // SAFETY: `dir` is NUL-terminated.
    unsafe { libc::rmdir(dir) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_directories_go_and_unregistered_ones_stay() {
        let base = tempfile::tempdir().unwrap();
        let (a, b) = (base.path().join("a"), base.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
            for f in FILES {
                std::fs::write(d.join(f), b"x").unwrap();
            }
        }
        // only this test's slots: other tests' readers may be starting meanwhile
        let (kept, gone) = (register(&a), register(&b));
        let slot_b = gone.0.unwrap();
        let name_b = DIRS[slot_b].load(Ordering::SeqCst);
        drop(gone);
        assert_ne!(
            DIRS[slot_b].load(Ordering::SeqCst),
            name_b,
            "still registered"
        );
        remove_slot(kept.0.unwrap());
        assert!(!a.exists(), "a registered directory was left");
        assert!(
            b.join("log").exists(),
            "an unregistered directory was touched"
        );
    }
}
