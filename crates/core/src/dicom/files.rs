//! Which files a run reads: folders walked in a stable order, headers scanned in parallel, and
//! what was skipped or failed, each with its reason.

use super::header::{SliceHeader, open_header};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A file that was not used, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The result of a header scan over many files.
#[derive(Debug, Default)]
pub struct Scan {
    pub headers: Vec<SliceHeader>,
    pub skipped: Vec<Skipped>,
    /// Files that looked like DICOM but could not be read.
    pub failed: Vec<Error>,
}

/// Every regular file under the given paths (folders recursively), sorted, hidden files skipped.
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        let md = std::fs::metadata(p).map_err(|e| Error::io("cannot read", p, e))?;
        if md.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("cannot list", dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out)?,
            Ok(t) if t.is_file() || t.is_symlink() => {
                if p.is_file() {
                    out.push(p)
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Scan headers of many files in parallel (pixel data is not read).
pub fn scan(files: &[PathBuf]) -> Scan {
    let progress = crate::progress::task("reading headers (files)", files.len() as u64);
    let results: Vec<(PathBuf, Result<Vec<SliceHeader>>)> = files
        .par_iter()
        .map(|p| {
            let r = (p.clone(), open_header(p));
            crate::progress::advance(1);
            r
        })
        .collect();
    drop(progress);
    let mut scan = Scan::default();
    for (p, r) in results {
        match r {
            Ok(h) => scan.headers.extend(h),
            Err(e) => {
                if super::looks_like_dicom(&p) {
                    scan.failed.push(e);
                } else {
                    scan.skipped.push(Skipped { path: p, reason: "not a DICOM file".into() });
                }
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_sorted_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        for p in [dir.path().join("c.dcm"), dir.path().join("a.dcm"), sub.join("x"), dir.path().join(".DS_Store")] {
            std::fs::write(p, b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), b"x").unwrap();
        let files = collect_files(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.dcm", "b/x", "c.dcm"]);
    }

    #[test]
    fn a_missing_input_names_the_path() {
        let e = collect_files(&[PathBuf::from("/nonexistent/ct")]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ct"), "{e}");
    }

    #[test]
    fn the_scan_skips_what_is_not_dicom_and_reports_what_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("notes.txt");
        std::fs::write(&junk, b"not an image").unwrap();
        // A DICM prefix and nothing after it: looks like DICOM, cannot be read.
        let broken = dir.path().join("broken.dcm");
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(b"DICM\x02\x00");
        std::fs::write(&broken, bytes).unwrap();
        let scan = scan(&[junk.clone(), broken.clone()]);
        assert!(scan.headers.is_empty());
        assert_eq!(scan.skipped.len(), 1);
        assert_eq!(scan.skipped[0].path, junk);
        assert_eq!(scan.failed.len(), 1);
        assert!(scan.failed[0].to_string().contains("broken.dcm"), "{}", scan.failed[0]);
    }
}
