//! Removing the qemu reader's private directories when SIGINT or SIGTERM ends bonsai
//! while a reader is starting (once bonsai is connected the directory is already gone,
//! and the daemon dies with bonsai through its parent-death signal).
//!
//! The handler makes only async-signal-safe calls (`unlink`, `rmdir`, `raise`) on paths
//! stored before any signal, then lets the signal's default action end the process, so
//! exit statuses are unchanged (130 after Ctrl-C). It is installed only where the
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

fn install() {
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
    // SAFETY: SA_RESETHAND restored the default action; raising it again ends the process
    // as the signal would have (it is delivered when this handler returns).
    unsafe {
        libc::raise(sig);
    }
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
