//! Outputs appear whole or not at all: every file is written to a temporary beside its target
//! and renamed into place; temporaries are removed on SIGINT/SIGTERM and, when a killed run left
//! them, by the next run. Devices and named pipes are written in place.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Registry of temporary files in flight, so a SIGINT handler can remove them.
pub mod inflight {
    use std::path::PathBuf;
    use std::sync::Mutex;
    static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    pub fn add(p: PathBuf) {
        if let Ok(mut v) = TEMPS.lock() {
            v.push(p);
        }
    }
    pub fn remove(p: &std::path::Path) {
        if let Ok(mut v) = TEMPS.lock() {
            v.retain(|q| q != p);
        }
    }
    /// Delete every temporary still registered (called on interrupt).
    pub fn cleanup() {
        if let Ok(v) = TEMPS.lock() {
            for p in v.iter() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Temporaries left by runs that were killed (SIGKILL, a power cut: nothing could clean up).
/// Each temporary names the process that writes it (`.NAME.ctprepPID-RANDOM.tmp`); a later run
/// writing into the same folder removes those whose process is gone, or is another process that
/// started after the file was last written (the PID was reused). Others' files are never touched.
pub mod stale {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    pub const TAG: &str = "ctprep";
    static SWEPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Sweep `dir` once per process.
    pub fn sweep(dir: &Path) {
        if let Ok(mut done) = SWEPT.lock() {
            if done.iter().any(|d| d == dir) {
                return;
            }
            done.push(dir.to_path_buf());
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = writer_pid(&name) {
                let written = e.metadata().and_then(|m| m.modified()).ok();
                if written.is_some_and(|w| !alive_since(pid, w)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// The PID in a ctprep temporary's name (`.NAME.ctprepPID-RANDOM.tmp`).
    pub fn writer_pid(name: &str) -> Option<u32> {
        if !name.starts_with('.') || !name.ends_with(".tmp") {
            return None;
        }
        let at = name.rfind(&format!(".{TAG}"))? + 1 + TAG.len();
        let digits: String = name[at..].chars().take_while(char::is_ascii_digit).collect();
        name[at + digits.len()..].starts_with('-').then(|| digits.parse().ok()).flatten()
    }

    /// Whether process `pid` exists and was already running at `written`.
    #[cfg(target_os = "linux")]
    fn alive_since(pid: u32, written: std::time::SystemTime) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // Field 22 (after the parenthesised name): start time in clock ticks after boot.
        let Some(start_ticks) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse::<u64>().ok()) else {
            return true;
        };
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("btime "))?.split_whitespace().nth(1)?.parse::<u64>().ok());
        // SAFETY: sysconf reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let Some(boot) = boot else { return true };
        let started = std::time::UNIX_EPOCH + std::time::Duration::from_millis(boot * 1000 + start_ticks * 1000 / hz);
        // A second of slack: btime and the tick count are coarse.
        started <= written + std::time::Duration::from_secs(1)
    }

    #[cfg(not(target_os = "linux"))]
    fn alive_since(_pid: u32, _written: std::time::SystemTime) -> bool {
        true
    }
}

/// Write to a temporary file beside `target`.
pub fn write_temp(target: &Path, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<tempfile::TempPath> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    stale::sweep(&dir);
    let prefix = format!(".{name}.{}{}-", stale::TAG, std::process::id());
    let tmp = tempfile::Builder::new().prefix(&prefix).suffix(".tmp").tempfile_in(&dir).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            "create the folder first, or write elsewhere with -o"
        } else {
            "check the folder's permissions and free space, or write elsewhere with -o"
        };
        Error::io("cannot create output", target, e).with_hint(hint)
    })?;
    let (file, path) = tmp.into_parts();
    inflight::add(path.to_path_buf());
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let res = f(&mut w).and_then(|_| w.flush().map_err(|e| Error::io("cannot write", target, e)));
    if let Err(e) = res {
        inflight::remove(&path);
        drop(path); // deletes the temporary
        return Err(e.with_path(target));
    }
    Ok(path)
}

/// Write any file atomically: a temporary beside `target`, renamed into place when complete.
pub fn write_file_atomic(target: &Path, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    if is_special_file(target) {
        return write_in_place(target, |w| f(w).map_err(|e| Error::io("cannot write", target, e)));
    }
    let t = write_temp(target, |w| f(w).map_err(|e| Error::io("cannot write", target, e)))?;
    persist(t, target)
}

/// A device or a named pipe (`-o /dev/null`, `-o /dev/stdout`, a FIFO): written in place, since
/// renaming a temporary over it would replace the device itself with a regular file (a replaced
/// /dev/null then hands everything written to it to every later reader).
pub fn is_special_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

pub(crate) fn write_in_place(p: &Path, encode: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let f = open_in_place(p)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    encode(&mut w).map_err(|e| e.with_path(p))?;
    w.flush().map_err(|e| Error::io("cannot write", p, e))
}

/// Linux's "no such device or address": a named pipe opened for writing with no reader.
const ENXIO: i32 = 6;

/// A device or named pipe for writing; a pipe nobody reads is said so at once.
fn open_in_place(p: &Path) -> Result<File> {
    open_waitless(p, std::fs::OpenOptions::new().write(true)).map_err(|e| {
        if cfg!(target_os = "linux") && e.raw_os_error() == Some(ENXIO) {
            Error::io("no process is reading the named pipe", p, e)
                .with_hint("start the reader first (`cat FIFO > out &`), or write to a file")
        } else {
            Error::io("cannot open for writing", p, e)
        }
    })
}

/// Rename a finished temporary into place with the usual permissions of a new file.
pub fn persist(tmp: tempfile::TempPath, target: &Path) -> Result<()> {
    let p = tmp.to_path_buf();
    // Keep the usual permissions of a new file (tempfile creates 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644));
    }
    let res = match exchange_with_existing(&p, target) {
        // The old file now has the temporary's name: delete it (dropping the TempPath does).
        Ok(true) => {
            drop(tmp);
            Ok(())
        }
        _ => tmp.persist(target).map(drop).map_err(|e| Error::io("cannot rename into place", target, e.error)),
    };
    inflight::remove(&p);
    res
}

/// Swap a finished temporary with an existing regular file at `target` in one atomic step
/// (renameat2 RENAME_EXCHANGE). Why not a plain rename: ext4 (auto_da_alloc) starts writing the
/// whole new file back to disk inside a rename that replaces a file, which cost 0.09-0.35 s per
/// 160 MB output when a Makefile re-runs a step; an exchange replaces just as atomically and lets
/// write-back happen later, as for a new file. Ok(false): nothing to swap with, or the
/// filesystem cannot exchange; the caller renames.
#[cfg(target_os = "linux")]
fn exchange_with_existing(tmp: &Path, target: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    if !std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_file()) {
        return Ok(false);
    }
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (from, to) = (c(tmp)?, c(target)?);
    // SAFETY: two valid NUL-terminated paths; the syscall reads them and nothing else.
    let rc =
        unsafe { libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 { Ok(true) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn exchange_with_existing(_tmp: &Path, _target: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Open `p`; a named pipe without waiting for the other end (O_NONBLOCK for the open only: the
/// reads and writes after it block as usual). Opening a pipe for writing with no reader then
/// fails at once with ENXIO instead of hanging.
pub(crate) fn open_waitless(p: &Path, opts: &mut std::fs::OpenOptions) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    if std::fs::metadata(p).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type())) {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let f = opts.custom_flags(libc::O_NONBLOCK).open(p)?;
        // SAFETY: fcntl on a descriptor we own; a failure leaves it non-blocking, and a read or
        // write then reports EAGAIN, which the callers name.
        unsafe {
            let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
        return Ok(f);
    }
    opts.open(p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A folder's file names, sorted (shared with the io tests).
    pub(crate) fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn replacing_a_file_swaps_in_the_new_content_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        write_file_atomic(&target, |w| w.write_all(b"old, longer content")).unwrap();
        write_file_atomic(&target, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["out.txt"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_target_is_replaced_like_rename_does_and_its_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (real, link) = (dir.path().join("real.txt"), dir.path().join("link.txt"));
        std::fs::write(&real, b"keep me").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file_atomic(&link, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"keep me");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_file());
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["link.txt", "real.txt"]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exchange_swaps_the_two_files_where_the_filesystem_can() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"A").unwrap();
        assert!(!exchange_with_existing(&a, &b).unwrap(), "no target: nothing to swap");
        std::fs::write(&b, b"B").unwrap();
        match exchange_with_existing(&a, &b) {
            Ok(swapped) => {
                assert!(swapped);
                assert_eq!((std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()), (b"B".to_vec(), b"A".to_vec()));
            }
            // e.g. an old kernel or a filesystem without RENAME_EXCHANGE: persist falls back to rename
            Err(e) => assert!(matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)), "{e}"),
        }
    }
}
