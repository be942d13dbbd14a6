//! Untrusted DICOM bytes through every path the tools take (ctprep_core::fuzzing::dicom).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The readers take paths: one scratch file per fuzzing process, in memory where possible.
fn scratch() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let d = base.join(format!("ctprep-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch folder");
        d.join("slice.dcm")
    })
}

fuzz_target!(|data: &[u8]| ctprep_core::fuzzing::dicom(data, scratch()));
