//! How much a run may allocate: claims read from headers are checked against this before any
//! allocation, so a tool refuses with a message where an allocation would abort.

use crate::error::{Error, Result};
use std::path::Path;

/// Largest voxel payload we agree to allocate: the smallest of `CTPREP_MAX_BYTES` (default
/// 16 GiB), the memory the OS says is available, what the process's cgroup still allows
/// (containers, Slurm jobs) and what its address-space limit (`ulimit -v`) still allows. Claims
/// beyond it are refused with a message before allocating, where an allocation would abort.
pub fn max_bytes() -> u64 {
    let configured = std::env::var("CTPREP_MAX_BYTES").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(16 << 30);
    let kb_field = |file: &str, key: &str| -> Option<u64> {
        let s = std::fs::read_to_string(file).ok()?;
        let l = s.lines().find(|l| l.starts_with(key))?;
        Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    let available = kb_field("/proc/meminfo", "MemAvailable:").unwrap_or(u64::MAX);
    configured.min(available).min(cgroup_headroom().unwrap_or(u64::MAX)).min(address_space_headroom().unwrap_or(u64::MAX))
}

/// cgroup v2 `memory.max - memory.current` of this process's group (v1: limit - usage).
fn cgroup_headroom() -> Option<u64> {
    let read_u64 = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok();
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.is_empty() {
            let base = format!("/sys/fs/cgroup{path}");
            if let (Some(max), Some(cur)) = (read_u64(&format!("{base}/memory.max")), read_u64(&format!("{base}/memory.current"))) {
                return Some(max.saturating_sub(cur));
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let base = format!("/sys/fs/cgroup/memory{path}");
            if let (Some(max), Some(cur)) =
                (read_u64(&format!("{base}/memory.limit_in_bytes")), read_u64(&format!("{base}/memory.usage_in_bytes")))
            {
                return Some(max.saturating_sub(cur));
            }
        }
    }
    None
}

/// RLIMIT_AS minus the address space already mapped (`VmSize`).
#[cfg(target_os = "linux")]
fn address_space_headroom() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let vm = status.lines().find(|l| l.starts_with("VmSize:"))?.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024;
    Some(lim.rlim_cur.saturating_sub(vm))
}

#[cfg(not(target_os = "linux"))]
fn address_space_headroom() -> Option<u64> {
    None
}

/// Check a claimed payload against the limit and, for a plain file, its real size.
pub fn check_claim(name: &Path, what: &str, claimed: u64, available_in_file: Option<u64>) -> Result<()> {
    let limit = max_bytes();
    if claimed > limit {
        return Err(Error::too_large(format!("{what} claims {claimed} bytes of voxels, more than the {limit} bytes allowed"))
            .with_path(name)
            .with_hint("the header is corrupt, or the volume is too big for this machine (raise CTPREP_MAX_BYTES if memory allows)"));
    }
    if let Some(have) = available_in_file {
        if claimed > have {
            return Err(Error::bad_input(format!("truncated: {what} needs {claimed} bytes of voxels, the file can hold at most {have}"))
                .with_path(name)
                .with_hint("the file was cut short: re-copy or re-export it"));
        }
    }
    Ok(())
}
