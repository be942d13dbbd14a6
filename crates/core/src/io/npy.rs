//! NPY volumes: `[z, y, x]` C order (what training code loads), geometry and metadata in a
//! `.json` sidecar. Without a sidecar, a warning and either `--npy-spacing` or identity geometry.

use super::{Format, Loaded, ReadOptions, check_claim, parse_sidecar, read_converted, read_vec, sidecar_path};
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::meta::Meta;
use crate::volume::{DType, Volume, VolumeData};
use ndarray::{Array3, ShapeBuilder};
use std::io::{BufRead, Read, Write};
use std::path::Path;

/// The longest NPY header we read: numpy itself refuses more than 10,000 bytes by default
/// (`max_header_size`); a 3-D array's header is under 128.
const MAX_HEADER_LEN: usize = 10_000;

/// Read an NPY stream (starting at the magic).
pub fn read<R: BufRead>(mut r: R, name: &Path, file_len: Option<u64>, _opts: &ReadOptions) -> Result<Loaded> {
    let invalid = |e: &dyn std::fmt::Display| {
        Error::bad_input(format!("invalid NPY header: {e}")).with_path(name).with_hint("re-save the array with numpy.save")
    };
    // The header's length is checked before ndarray-npy allocates it: versions 2 and 3 store it
    // in four bytes, and a 20-byte file once claimed a 730 MB header (found by fuzzing).
    let mut prefix = vec![0u8; 8];
    r.read_exact(&mut prefix).map_err(|e| invalid(&e))?;
    let len_bytes = if prefix[6] == 1 { 2 } else { 4 };
    prefix.resize(8 + len_bytes, 0);
    r.read_exact(&mut prefix[8..]).map_err(|e| invalid(&e))?;
    let header_len = prefix[8..].iter().rev().fold(0usize, |a, &b| a << 8 | b as usize);
    if header_len > MAX_HEADER_LEN {
        return Err(invalid(&format!("it claims {header_len} bytes; numpy writes a few hundred (at most {MAX_HEADER_LEN})")));
    }
    let header = ndarray_npy::npy::header::Header::from_reader(&mut std::io::Cursor::new(prefix).chain(&mut r)).map_err(|e| invalid(&e))?;
    let descr = header.type_descriptor.to_string();
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let (order, code) = descr.split_at(1.min(descr.len()));
    let be = order == ">";
    if !matches!(code, "u1" | "b1" | "i1" | "i2" | "u2" | "i4" | "f2" | "f4" | "f8") {
        return Err(Error::unsupported(format!("NPY dtype '{descr}' is not supported")).with_path(name).with_hint(
            "supported: uint8, bool, int8, int16, uint16, int32, float16, float32, float64; convert with arr.astype(np.float32)",
        ));
    }
    let shape: Vec<usize> = match header.shape.len() {
        3 => header.shape.clone(),
        2 => vec![1, header.shape[0], header.shape[1]],
        n => {
            return Err(Error::unsupported(format!("NPY array has {n} dimensions; a volume has 3 (z, y, x)"))
                .with_path(name)
                .with_hint("save one 3-D volume per file, axes ordered z, y, x"));
        }
    };
    if shape.contains(&0) {
        return Err(Error::bad_input(format!("the NPY array is empty (shape {shape:?})"))
            .with_path(name)
            .with_hint("a volume needs at least one voxel along each axis: check the code that saved it"));
    }
    // Bytes per element in the file, and in memory (int8 widens to int16, float16 to float32).
    let (elem, in_memory) = match code {
        "u1" | "b1" => (1, 1),
        "i1" => (1, 2),
        "i2" | "u2" => (2, 2),
        "f2" => (2, 4),
        "i4" | "f4" => (4, 4),
        _ => (8, 8),
    };
    let fortran = header.layout.is_fortran();
    // Checked: a header may claim any shape, and a wrapped product would pass every check.
    let n = shape.iter().try_fold(1u64, |a, &s| a.checked_mul(s as u64)).unwrap_or(u64::MAX);
    check_claim(name, "the NPY header", n.saturating_mul(elem), file_len)?;
    // What memory holds at the peak: the array, and its C-order copy for Fortran order.
    check_claim(name, "the NPY header", n.saturating_mul(in_memory).saturating_mul(1 + fortran as u64), None)?;
    let n = n as usize;
    let sh = (shape[0], shape[1], shape[2]);
    // The voxels straight into their typed buffer (only int8 and float16 are converted), then
    // an array in C order.
    macro_rules! array {
        ($voxels:expr) => {
            to_array($voxels?, sh, fortran, name)?
        };
    }
    let f16 = |mut b: [u8; 2]| {
        if be {
            b.reverse();
        }
        half::f16::from_le_bytes(b).to_f32()
    };
    let data = match code {
        "u1" | "b1" => VolumeData::U8(array!(read_vec(&mut r, n, be, name, false))),
        "i1" => VolumeData::I16(array!(read_converted(&mut r, n, name, false, |[b]: [u8; 1]| b as i8 as i16))),
        "i2" => VolumeData::I16(array!(read_vec(&mut r, n, be, name, false))),
        "u2" => VolumeData::U16(array!(read_vec(&mut r, n, be, name, false))),
        "i4" => VolumeData::I32(array!(read_vec(&mut r, n, be, name, false))),
        "f2" => VolumeData::F32(array!(read_converted(&mut r, n, name, false, f16))),
        "f4" => VolumeData::F32(array!(read_vec(&mut r, n, be, name, false))),
        _ => VolumeData::F64(array!(read_vec(&mut r, n, be, name, false))),
    };
    let warnings = vec![format!("{}: NPY without sidecar: assuming 1 mm identity geometry (pass --npy-spacing X,Y,Z)", name.display())];
    Ok(Loaded {
        volume: Volume { data, geometry: Geometry::default(), meta: Meta::default() },
        format: Format::Npy,
        warnings,
        geometry_known: false,
    })
}

/// `v` in the NPY's element order as a C-order `[z, y, x]` array (a Fortran-order file is copied).
fn to_array<T: Clone>(v: Vec<T>, sh: (usize, usize, usize), fortran: bool, name: &Path) -> Result<Array3<T>> {
    let a = if fortran { Array3::from_shape_vec(sh.f(), v) } else { Array3::from_shape_vec(sh, v) };
    let a = a.map_err(|e| Error::bad_input(e.to_string()).with_path(name))?;
    Ok(if fortran { a.as_standard_layout().into_owned() } else { a })
}

/// Replace the assumed geometry with the sidecar's (or the user's spacing).
pub fn apply_sidecar(loaded: &mut Loaded, path: &Path, opts: &ReadOptions, read: Option<&super::DataFile>) -> Result<()> {
    let side = sidecar_path(path);
    // A sidecar is a small regular file: a pipe or device in its place would block or never end.
    if let Ok(m) = std::fs::metadata(&side) {
        if !m.is_file() || m.len() > 64 << 20 {
            return Err(Error::bad_input("the sidecar is not a regular JSON file (a pipe, a device, or over 64 MiB)")
                .with_path(&side)
                .with_hint("replace it with the .json the NPY was written with, or remove it"));
        }
    }
    match std::fs::read_to_string(&side) {
        Ok(text) => {
            let (g, m, shape) = parse_sidecar(&text).map_err(|e| {
                Error::bad_input(format!("unreadable sidecar: {e}")).with_path(&side).with_hint("delete or fix the .json next to the .npy")
            })?;
            if let (Some(want), Some(got)) = (super::sidecar_data_file(&text), read) {
                if (want.bytes, &want.crc32) != (got.bytes, &got.crc32) {
                    return Err(Error::bad_input(format!(
                        "the sidecar belongs to another version of the file: it names {} bytes with CRC-32 {}, the file has {} bytes with {}",
                        want.bytes, want.crc32, got.bytes, got.crc32
                    ))
                    .with_path(&side)
                    .with_hint("the volume and its .json were written by different runs (an interrupted or concurrent write): write the volume again"));
                }
            }
            if let Some(why) = g.invalid() {
                return Err(Error::bad_input(format!("the sidecar's geometry is unusable: {why}"))
                    .with_path(&side)
                    .with_hint("fix or delete the .json next to the .npy (without it, --npy-spacing sets the voxel size)"));
            }
            if let Some(s) = shape {
                if s != loaded.volume.shape() {
                    return Err(Error::bad_input(format!("sidecar says shape {:?}, the array is {:?}", s, loaded.volume.shape()))
                        .with_path(&side)
                        .with_hint("the .json belongs to another array: regenerate both together"));
                }
            }
            loaded.volume.geometry = g;
            loaded.volume.meta = m;
            loaded.warnings.clear();
            loaded.geometry_known = true;
        }
        Err(_) => {
            if let Some(sp) = opts.npy_spacing {
                loaded.volume.geometry = Geometry::identity(sp);
                loaded.warnings = vec![format!("{}: NPY without sidecar: using --npy-spacing {:?} at the origin", path.display(), sp)];
            }
        }
    }
    Ok(())
}

/// NPY header (format 1.0) for a C-order `[z, y, x]` array of `descr`.
pub fn write_header(w: &mut dyn Write, descr: &str, [z, y, x]: [usize; 3]) -> std::io::Result<()> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({z}, {y}, {x}), }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(h.len() as u16).to_le_bytes())?;
    w.write_all(h.as_bytes())
}

/// NPY's type descriptor of a little-endian element type.
pub fn descr(dtype: DType) -> &'static str {
    match dtype {
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I32 => "<i4",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    }
}

/// Write the array as NPY, bytes straight from memory (the sidecar is written by the caller).
pub fn write(vol: &Volume, w: &mut dyn Write) -> Result<()> {
    let io = |e| Error::io("cannot write", Path::new(""), e);
    write_header(w, descr(vol.data.dtype()), vol.shape()).map_err(io)?;
    w.write_all(&super::nifti::data_bytes(vol)).map_err(io)
}

/// Write float data as a float16 NPY (halves the size of training inputs).
pub fn write_f16(vol: &Volume, w: &mut dyn Write) -> Result<()> {
    let io = |e| Error::io("cannot write", Path::new(""), e);
    write_header(w, "<f2", vol.shape()).map_err(io)?;
    let f = vol.data.to_f32(None);
    let mut buf = Vec::with_capacity(f.len() * 2);
    for v in f.iter() {
        buf.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
    }
    w.write_all(&buf).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Sink, Source, WriteOptions, read_volume, write_volume};

    #[test]
    fn npy_round_trip_with_sidecar_and_without() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z * 12 + y * 4 + x) as i16 - 7);
        let g = Geometry { spacing: [0.5, 0.6, 2.0], origin: [1.0, 2.0, 3.0], ..Geometry::default() };
        let v = Volume { data: VolumeData::I16(a), geometry: g.clone(), meta: Meta::default() };
        let p = dir.path().join("v.npy");
        write_volume(&v, &Sink::Path(p.clone()), &WriteOptions::default()).unwrap();
        let back = read_volume(&Source::Path(p.clone()), &ReadOptions::default()).unwrap();
        assert_eq!(back.volume.data, v.data);
        assert_eq!(back.volume.geometry, g);
        assert!(back.warnings.is_empty());
        std::fs::remove_file(dir.path().join("v.json")).unwrap();
        let back = read_volume(&Source::Path(p.clone()), &ReadOptions { npy_spacing: Some([1.0, 1.0, 2.5]) }).unwrap();
        assert_eq!(back.volume.geometry.spacing, [1.0, 1.0, 2.5]);
        assert_eq!(back.warnings.len(), 1);
    }

    #[test]
    fn float16_npy_reads_back_as_float32() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z * 12 + y * 4 + x) as f32 * 0.25 - 1.0);
        let v = Volume { data: VolumeData::F32(a.clone()), geometry: Geometry::default(), meta: Meta::default() };
        let p = dir.path().join("h.npy");
        write_volume(&v, &Sink::Path(p.clone()), &WriteOptions { npy_f16: true, ..WriteOptions::default() }).unwrap();
        let back = read_volume(&Source::Path(p), &ReadOptions::default()).unwrap().volume;
        assert_eq!(back.data, VolumeData::F32(a));
        let nii = dir.path().join("h.nii");
        assert!(write_volume(&v, &Sink::Path(nii), &WriteOptions { npy_f16: true, ..WriteOptions::default() }).is_err());
    }

    #[test]
    fn converted_dtypes_are_read_right_across_chunks() {
        // More voxels than one read chunk (65,536), so the conversion's chunk seams are crossed.
        let n = 3 * 65_536 + 5;
        let header = format!("{{'descr': '|i1', 'fortran_order': False, 'shape': (1, 1, {n}), }}\n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend((0..n).map(|k| (k % 251) as u8));
        let l = read(&bytes[..], Path::new("t.npy"), None, &ReadOptions::default()).unwrap();
        let VolumeData::I16(a) = l.volume.data else { panic!("int8 reads as int16") };
        assert!(a.iter().enumerate().all(|(k, &v)| v == (k % 251) as u8 as i8 as i16));
    }

    #[test]
    fn header_versions_2_and_3_are_read_and_their_length_is_checked_first() {
        let header = "{'descr': '|i1', 'fortran_order': False, 'shape': (1, 1, 3), }\n";
        for version in [2u8, 3] {
            let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
            bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&[0xff, 0, 7]);
            let l = read(&bytes[..], Path::new("t.npy"), None, &ReadOptions::default()).unwrap();
            let VolumeData::I16(a) = l.volume.data else { panic!("int8 reads as int16") };
            assert_eq!(a.iter().copied().collect::<Vec<_>>(), [-1, 0, 7]);
            // The same prefix claiming a 730 MB header is refused before anything is allocated.
            bytes[8..12].copy_from_slice(&730_000_000u32.to_le_bytes());
            let e = read(&bytes[..], Path::new("t.npy"), None, &ReadOptions::default()).unwrap_err().to_string();
            assert!(e.contains("claims 730000000 bytes"), "{e}");
        }
    }

    #[test]
    fn fortran_order_and_big_endian_are_read_correctly() {
        // Hand-made NPY: shape (1, 2, 3), '>i2', fortran_order True.
        let header = "{'descr': '>i2', 'fortran_order': True, 'shape': (1, 2, 3), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        // Fortran order: first index fastest. Values v[z,y,x] = 10*y + x.
        for x in 0..3i16 {
            for y in 0..2i16 {
                bytes.extend_from_slice(&(10 * y + x).to_be_bytes());
            }
        }
        let l = read(&bytes[..], Path::new("t.npy"), None, &ReadOptions::default()).unwrap();
        let VolumeData::I16(a) = l.volume.data else { panic!() };
        assert_eq!(a[[0, 1, 2]], 12);
        assert_eq!(a[[0, 0, 1]], 1);
    }
}
