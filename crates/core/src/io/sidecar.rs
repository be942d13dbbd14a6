//! The JSON sidecar beside an NPY (or any file output): geometry, metadata, both affines, and
//! the size and CRC-32 of the volume file it belongs to, so a reader can tell a pair written by
//! one run from a mix of two.

use crate::geometry::Geometry;
use crate::volume::Header;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The volume file a sidecar belongs to: its name, size and CRC-32 (of the file's bytes).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataFile {
    pub name: String,
    pub bytes: u64,
    /// Eight lowercase hex digits.
    pub crc32: String,
}

/// A reader or writer that counts and checksums the bytes passing through: a volume file as it
/// is written (for its sidecar) or read (checked against its sidecar).
pub(crate) struct Checksum<T> {
    inner: T,
    bytes: u64,
    crc: crc32fast::Hasher,
}

impl<T> Checksum<T> {
    pub(crate) fn new(inner: T) -> Self {
        Checksum { inner, bytes: 0, crc: crc32fast::Hasher::new() }
    }
    fn count(&mut self, buf: &[u8]) {
        self.crc.update(buf);
        self.bytes += buf.len() as u64;
    }
    /// What passed through, as a sidecar names it.
    pub(crate) fn data_file(&self, name: String) -> DataFile {
        DataFile { name, bytes: self.bytes, crc32: format!("{:08x}", self.crc.clone().finalize()) }
    }
}

impl<W: Write> Write for Checksum<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Checksum<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count(&buf[..n]);
        Ok(n)
    }
}

/// The `data_file` a sidecar names, when it names one (sidecars before 2026-12 do not).
pub fn sidecar_data_file(text: &str) -> Option<DataFile> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    serde_json::from_value(v.get("data_file")?.clone()).ok()
}

/// `scan.nii.gz` -> `scan.json`, `scan.npy` -> `scan.json`.
pub fn sidecar_path(p: &Path) -> PathBuf {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = ["nii.gz", "nii", "npy"].iter().find_map(|ext| name.strip_suffix(&format!(".{ext}"))).unwrap_or(&name).to_string();
    p.with_file_name(format!("{stem}.json"))
}

/// The sidecar: geometry, shape, dtype and metadata, and the affines in both index orders
/// (docs/formats.md): `affine_*_zyx` maps the array's own `[z, y, x]` indices (what numpy's
/// `a[k, j, i]` means), `affine_lps`/`affine_ras` map (x, y, z) = (i, j, k) as NIfTI does.
pub fn sidecar_json(vol: &Header) -> String {
    sidecar_json_with(vol, None)
}

/// [`sidecar_json`] naming the volume file it belongs to (size and CRC-32).
pub fn sidecar_json_with(vol: &Header, data_file: Option<&DataFile>) -> String {
    let zyx = |a: crate::geometry::Mat4| a.map(|r| [r[2], r[1], r[0], r[3]]);
    let v = serde_json::json!({
        "axes": "zyx",
        "shape_zyx": vol.shape,
        "dtype": vol.dtype.name(),
        "geometry": vol.geometry,
        "affine_lps_zyx": zyx(vol.geometry.affine_lps()),
        "affine_ras_zyx": zyx(vol.geometry.affine_ras()),
        "affine_lps": vol.geometry.affine_lps(),
        "affine_ras": vol.geometry.affine_ras(),
        "meta": vol.meta,
    });
    let mut v = v;
    if let (Some(d), Some(obj)) = (data_file, v.as_object_mut()) {
        obj.insert("data_file".into(), serde_json::to_value(d).unwrap_or_default());
    }
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// Parse a sidecar back into geometry + meta.
pub fn parse_sidecar(text: &str) -> std::result::Result<(Geometry, crate::meta::Meta, Option<[usize; 3]>), String> {
    #[derive(serde::Deserialize)]
    struct Side {
        geometry: Geometry,
        #[serde(default)]
        meta: crate::meta::Meta,
        shape_zyx: Option<[usize; 3]>,
    }
    let s: Side = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok((s.geometry, s.meta, s.shape_zyx))
}
