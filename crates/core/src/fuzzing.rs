//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz), here so that the reproducers of what
//! fuzzing found run as ordinary tests (`crates/core/tests/fuzz_regressions.rs`) through the very
//! same code. Each takes untrusted bytes and must return, never panic, hang or allocate without
//! bound; `roundtrip` also asserts what it checks.
#![doc(hidden)]

use crate::dicom::decode::decode_stored;
use crate::dicom::single::{file_volume, pixel_stats};
use crate::dicom::{StackOptions, group_series, inspect, open_full, open_header, stack_series};
use crate::geometry::Geometry;
use crate::io::{ReadOptions, nifti, npy, parse_sidecar, read_volume_bytes, sidecar_json};
use crate::meta::{Kind, Meta, Rescale};
use crate::volume::{DType, Header, Volume, VolumeData};
use ndarray::Array3;
use std::path::Path;

/// Untrusted DICOM bytes (written to `scratch`, since the readers take paths) through every path
/// the tools take: the header scan, each frame's pixel decode (native, RLE, JPEG, JPEG-LS,
/// JPEG 2000, the own lossless JPEG), stacking the file as a one-file series, dcm-inspect's dump
/// and --pixels, and vol-view's single-file volume.
pub fn dicom(data: &[u8], scratch: &Path) {
    std::fs::write(scratch, data).expect("scratch file");
    if let Ok(headers) = open_header(scratch) {
        for h in headers.iter().take(4) {
            let _ = decode_stored(h);
        }
        for s in group_series(headers).iter() {
            let _ = stack_series(s, &StackOptions::default());
        }
    }
    if let Ok(obj) = open_full(scratch) {
        let _ = inspect::dump_lines(&obj, &|_| None);
    }
    let _ = pixel_stats(scratch);
    let _ = file_volume(scratch);
}

/// The own lossless-JPEG decoder: a frame size from the first four bytes, then the stream as a
/// DICOM fragment carries it (small frames keep runs fast; the stream may claim anything).
pub fn ljpeg(data: &[u8]) {
    let _ = ljpeg_decode(data);
}

/// The `ljpeg` target's decode: the frame size from the first four bytes, then the stream.
pub fn ljpeg_decode(data: &[u8]) -> Result<(), String> {
    let [a, b, c, d, stream @ ..] = data else { return Err("no frame size".into()) };
    let rows = 1 + u16::from_le_bytes([*a, *b]) as usize % 256;
    let cols = 1 + u16::from_le_bytes([*c, *d]) as usize % 256;
    crate::dicom::ljpeg::decode(stream, rows, cols, &mut vec![0u16; rows * cols]).map_err(|e| format!("{e:?}"))
}

/// Untrusted volume bytes: NIfTI-1 (plain or gzip, either byte order, extensions) and NPY,
/// recognised by content as the tools do; what reads is written back out.
pub fn volume_bytes(data: &[u8]) {
    if let Ok(loaded) = read_volume_bytes(data, Path::new("fuzz.nii"), &ReadOptions::default()) {
        // Into a sink, as a tool streams into a file: a growing Vec would measure the harness.
        let _ = nifti::write(&loaded.volume, &mut std::io::sink());
    }
}

/// Untrusted `.json` sidecars (geometry, shape, metadata), anonymized and written back out.
pub fn sidecar(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((geometry, meta, shape)) = parse_sidecar(text) {
        let meta = meta.anonymized();
        let header = Header { shape: shape.unwrap_or([1, 1, 1]), dtype: DType::F32, geometry: &geometry, meta: &meta };
        let _ = sidecar_json(&header);
        let _ = geometry.affine_ras();
        let _ = geometry.qform();
    }
}

/// A small volume (type, shape, grid, values and kind) from the fuzzer's bytes.
fn volume_of(b: &[u8]) -> Option<Volume> {
    let (head, rest) = b.split_at_checked(12)?;
    let dtype = [DType::U8, DType::I16, DType::U16, DType::I32, DType::F32, DType::F64][head[0] as usize % 6];
    let shape = (1 + head[1] as usize % 6, 1 + head[2] as usize % 6, 1 + head[3] as usize % 6);
    let spacing = [0.1 + head[4] as f64 / 16.0, 0.1 + head[5] as f64 / 16.0, 0.1 + head[6] as f64 / 8.0];
    let origin = [head[7] as i8 as f64 * 3.7, head[8] as i8 as f64 * -1.3, head[9] as i8 as f64 * 11.0];
    // One of the 48 signed axis permutations: every orientation a scanner array can have.
    let perm = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]][head[10] as usize % 6];
    let mut direction = [[0.0; 3]; 3];
    for a in 0..3 {
        direction[a][perm[a]] = if head[10] >> (3 + a) & 1 == 1 { -1.0 } else { 1.0 };
    }
    let kind = [Kind::Unknown, Kind::Stored, Kind::Hu, Kind::Mask, Kind::Labels, Kind::Normalized][head[11] as usize % 6];
    let n = shape.0 * shape.1 * shape.2;
    let size = dtype.size();
    let mut bytes = rest.to_vec();
    bytes.resize(n * size, 0);
    let vals = |k: usize| &bytes[k * size..(k + 1) * size];
    let data = match dtype {
        DType::U8 => VolumeData::U8(Array3::from_shape_vec(shape, bytes[..n].to_vec()).ok()?),
        DType::I16 => {
            VolumeData::I16(Array3::from_shape_vec(shape, (0..n).map(|k| i16::from_le_bytes(vals(k).try_into().unwrap())).collect()).ok()?)
        }
        DType::U16 => {
            VolumeData::U16(Array3::from_shape_vec(shape, (0..n).map(|k| u16::from_le_bytes(vals(k).try_into().unwrap())).collect()).ok()?)
        }
        DType::I32 => {
            VolumeData::I32(Array3::from_shape_vec(shape, (0..n).map(|k| i32::from_le_bytes(vals(k).try_into().unwrap())).collect()).ok()?)
        }
        DType::F32 => {
            VolumeData::F32(Array3::from_shape_vec(shape, (0..n).map(|k| f32::from_le_bytes(vals(k).try_into().unwrap())).collect()).ok()?)
        }
        DType::F64 => {
            VolumeData::F64(Array3::from_shape_vec(shape, (0..n).map(|k| f64::from_le_bytes(vals(k).try_into().unwrap())).collect()).ok()?)
        }
    };
    // Integer stored values may carry a rescale (dcm-stack's output); floats never do.
    let rescale = (kind == Kind::Stored && dtype.is_integer()).then_some(Rescale { slope: 1.0, intercept: -1024.0 });
    Some(Volume { data, geometry: Geometry { spacing, origin, direction }, meta: Meta { kind, rescale, ..Meta::default() } })
}

/// Any small volume written as NIfTI and as NPY reads back with the same voxels bit for bit, and
/// from NIfTI the same grid (to the float32 precision of the header), kind and rescale.
pub fn roundtrip(data: &[u8]) {
    let Some(vol) = volume_of(data) else { return };
    let name = std::path::Path::new("roundtrip");
    let mut buf = Vec::new();
    nifti::write(&vol, &mut buf).expect("a small volume always encodes");
    let back = read_volume_bytes(&buf, name, &ReadOptions::default()).expect("what we write, we read").volume;
    assert_eq!(nifti::data_bytes(&back), nifti::data_bytes(&vol), "voxels");
    assert_eq!(back.data.dtype(), vol.data.dtype());
    assert_eq!(back.meta.kind, vol.meta.kind);
    assert_eq!(back.meta.rescale, vol.meta.rescale);
    let shape = vol.shape();
    let scale = 1.0 + vol.geometry.origin.iter().map(|v| v.abs()).sum::<f64>() + 50.0;
    let off = back.geometry.max_offset_mm(&vol.geometry, shape);
    assert!(off <= 1e-5 * scale, "grid moved by {off} mm");
    buf.clear();
    npy::write(&vol, &mut buf).expect("npy encodes");
    let back = read_volume_bytes(&buf, name, &ReadOptions::default()).expect("npy reads").volume;
    assert_eq!(nifti::data_bytes(&back), nifti::data_bytes(&vol), "npy voxels");
}
