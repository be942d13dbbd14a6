//! DICOM: header scans, series grouping and ordering, pixel decoding into volumes.

pub mod codestream;
pub mod decode;
pub mod files;
pub mod header;
pub mod inspect;
pub mod ljpeg;
pub mod preflight;
mod regrid;
pub mod series;
pub mod single;
pub mod stack;

pub use header::{SliceHeader, open_header, transfer_syntax_name};
pub use series::{Selection, Series, SeriesReport, SeriesSelect, group_series, select_series};
pub use stack::{GapPolicy, StackOptions, Stacked, TiltPolicy, stack_series};

use dicom_object::{DefaultDicomObject, OpenFileOptions};
use std::path::Path;

/// Header scans stop before PixelData.
pub use dicom_dictionary_std::tags::PIXEL_DATA;

/// True when the first bytes look like DICOM Part 10 ("DICM" after the 128-byte preamble).
pub fn looks_like_dicom(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 132];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => &b[128..132] == b"DICM",
        Err(_) => false,
    }
}

/// Open a DICOM file, stopping before the pixel data (fast header scan).
pub fn open_until_pixels(path: &Path) -> crate::Result<DefaultDicomObject> {
    preflight::check(path, false)?;
    OpenFileOptions::new().read_until(PIXEL_DATA).open_file(path).map_err(|e| read_error(path, e))
}

/// Open a whole DICOM file, pixel data included.
pub fn open_full(path: &Path) -> crate::Result<DefaultDicomObject> {
    preflight::check(path, true)?;
    OpenFileOptions::new().open_file(path).map_err(|e| read_error(path, e))
}

pub(crate) fn read_error(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> crate::Error {
    let msg = error_chain(&e);
    let hint = if msg.contains("preamble") || msg.contains("magic") || msg.contains("DICM") {
        "this is not a DICOM Part 10 file (no DICM prefix); skip it or re-export from the PACS"
    } else {
        "the file is damaged or truncated: re-copy or re-export it"
    };
    crate::Error::bad_input(format!("not readable as DICOM: {msg}")).with_path(path).with_hint(hint)
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
