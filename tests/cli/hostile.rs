//! Hostile and impossible inputs (issues 22 and 26): each gets a clear error naming the file, a
//! documented exit code, no panic, no abort, no unbounded allocation, and never blocks.

use crate::util::*;
use ctprep_core::io::{Sink, WriteOptions, sidecar_path, write_volume};
use ctprep_core::meta::{Kind, Meta};
use ctprep_core::volume::{Volume, VolumeData};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use ndarray::Array3;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// One element in explicit VR little endian (value padded to even length).
fn el(g: u16, e: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
    }
    let mut b = Vec::new();
    b.extend_from_slice(&g.to_le_bytes());
    b.extend_from_slice(&e.to_le_bytes());
    b.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(v.len() as u32).to_le_bytes());
    } else {
        b.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    b.extend_from_slice(&v);
    b
}

/// A Part 10 file: preamble, meta group, then `body` (already encoded, in tag order).
fn part10(body: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.extend(el(0x0002, 0x0001, b"OB", &[0, 1]));
    meta.extend(el(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.2"));
    meta.extend(el(0x0002, 0x0003, b"UI", b"1.2.3.4.5"));
    meta.extend(el(0x0002, 0x0010, b"UI", EXPLICIT_LE.as_bytes()));
    let mut f = vec![0u8; 128];
    f.extend_from_slice(b"DICM");
    f.extend(el(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes()));
    f.extend(meta);
    f.extend_from_slice(body);
    f
}

/// A small CT image header; `pixels` = the pixel data element's bytes.
fn ct(rows: u16, cols: u16, extra: &[Vec<u8>], pixels: &[u8]) -> Vec<u8> {
    let mut els: Vec<Vec<u8>> = vec![
        el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2"),
        el(0x0008, 0x0018, b"UI", b"1.2.3.4.5"),
        el(0x0008, 0x0060, b"CS", b"CT"),
        el(0x0020, 0x000D, b"UI", b"1.2.3"),
        el(0x0020, 0x000E, b"UI", b"1.2.3.4"),
        el(0x0020, 0x0032, b"DS", b"0\\0\\0"),
        el(0x0020, 0x0037, b"DS", b"1\\0\\0\\0\\1\\0"),
        el(0x0028, 0x0002, b"US", &1u16.to_le_bytes()),
        el(0x0028, 0x0004, b"CS", b"MONOCHROME2"),
        el(0x0028, 0x0010, b"US", &rows.to_le_bytes()),
        el(0x0028, 0x0011, b"US", &cols.to_le_bytes()),
        el(0x0028, 0x0030, b"DS", b"0.7\\0.7"),
        el(0x0028, 0x0100, b"US", &16u16.to_le_bytes()),
        el(0x0028, 0x0101, b"US", &16u16.to_le_bytes()),
        el(0x0028, 0x0102, b"US", &15u16.to_le_bytes()),
        el(0x0028, 0x0103, b"US", &1u16.to_le_bytes()),
    ];
    // An extra element replaces the default of the same tag.
    els.retain(|e| !extra.iter().any(|x| x[..4] == e[..4]));
    els.extend(extra.iter().cloned());
    // Elements must be in tag order: sort by (group, element) from their first four bytes.
    els.sort_by_key(|e| (u16::from_le_bytes([e[0], e[1]]), u16::from_le_bytes([e[2], e[3]])));
    let mut body: Vec<u8> = els.concat();
    body.extend(el(0x7FE0, 0x0010, b"OW", pixels));
    part10(&body)
}

/// Sequences nested `depth` deep (undefined lengths), as a CT header's extra element.
fn nested(depth: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..depth {
        b.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
    for _ in 0..depth {
        b.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    }
    b
}

fn run(t: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let o = tool(t).args(args).timeout(Duration::from_secs(60)).output().unwrap();
    no_panic(&o);
    assert!(o.status.code().is_some(), "{t} was killed by a signal (abort, stack overflow?): {}", stderr(&o));
    o
}

fn fails_with(t: &str, args: &[&std::ffi::OsStr], code: i32, says: &[&str]) {
    let o = run(t, args);
    assert_eq!(o.status.code(), Some(code), "{t} {args:?}: {}", stderr(&o));
    for s in says {
        assert!(stderr(&o).contains(s), "{t} {args:?} does not say {s:?}: {}", stderr(&o));
    }
}

fn os<P: AsRef<std::ffi::OsStr> + ?Sized>(p: &P) -> &std::ffi::OsStr {
    p.as_ref()
}

#[test]
fn sequences_nested_thousands_deep_are_refused_and_the_folder_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let folder = d.path().join("scan");
    phantom(&folder, &small());
    let bad = folder.join("nested.dcm");
    std::fs::write(&bad, ct(4, 4, &[nested(3000)], &[0; 32])).unwrap();
    let out = d.path().join("ct.nii");
    let o = run("dcm-stack", &[os(&folder), os("-o"), os(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("nested.dcm") && stderr(&o).contains("nested more than 64 deep"), "{}", stderr(&o));
    assert_eq!(read(&out).shape()[0], small().slices);
    let deeper = d.path().join("deeper.dcm");
    std::fs::write(&deeper, ct(4, 4, &[nested(10_000)], &[0; 32])).unwrap();
    fails_with("dcm-inspect", &[os(&deeper)], 1, &["deeper.dcm", "nested more than 64 deep", "hint:"]);
}

#[test]
fn size_claims_are_checked_before_anything_is_allocated() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    // 2^31 - 1 frames of 512 x 512 in a file of a few hundred bytes.
    std::fs::write(p("frames.dcm"), ct(512, 512, &[el(0x0028, 0x0008, b"IS", b"2147483647")], &[0; 8])).unwrap();
    fails_with("dcm-inspect", &[os(&p("frames.dcm")), os("--pixels")], 1, &["frames.dcm", "NumberOfFrames 2147483647"]);
    fails_with("vol-view", &[os(&p("frames.dcm")), os("-o"), os(&p("f.png"))], 1, &["NumberOfFrames"]);
    // Rows x Columns far beyond the pixel data of an uncompressed file (three such headers).
    let many = p("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..3 {
        let pos = format!("0\\0\\{i}");
        std::fs::write(many.join(format!("{i}.dcm")), ct(4000, 4000, &[el(0x0020, 0x0032, b"DS", pos.as_bytes())], &[0; 64])).unwrap();
    }
    let o = run("dcm-stack", &[os(&many), os("-o"), os(&p("m.nii"))]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("truncated: the image needs 32000000 bytes"), "{}", stderr(&o));
    fails_with("vol-view", &[os(&many.join("0.dcm")), os("-o"), os(&p("v.png"))], 1, &["truncated"]);
    // An element claiming 4 GB in a small file.
    let mut huge = ct(4, 4, &[], &[0; 32]);
    huge.truncate(huge.len() - (12 + 32)); // the pixel data element, replaced by:
    huge.extend_from_slice(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0, 0xFE, 0xFF, 0xFF, 0xFF]);
    std::fs::write(p("long.dcm"), &huge).unwrap();
    fails_with("dcm-inspect", &[os(&p("long.dcm"))], 1, &["long.dcm", "claims a length of 4294967294 bytes"]);
    // Rows written as a 32-bit value of 2^31.
    let mut r = ct(4, 4, &[], &[0; 32]);
    let needle = [0x28u8, 0x00, 0x10, 0x00, b'U', b'S', 2, 0, 4, 0];
    let i = r.windows(needle.len()).position(|w| w == needle).unwrap();
    r.splice(i..i + needle.len(), [0x28, 0x00, 0x10, 0x00, b'U', b'L', 4, 0, 0, 0, 0, 0x80]);
    std::fs::write(p("rows.dcm"), &r).unwrap();
    fails_with("vol-view", &[os(&p("rows.dcm")), os("-o"), os(&p("r.png"))], 1, &["Rows 2147483648"]);
}

/// Rewrite a phantom slice with one element changed.
fn patched(src: &Path, dst: &Path, tag: dicom_core::Tag, vr: VR, value: PrimitiveValue) {
    let mut obj = dicom_object::open_file(src).unwrap();
    obj.put(DataElement::new(tag, vr, value));
    obj.write_to_file(dst).unwrap();
}

#[test]
fn impossible_header_values_are_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let w = phantom(&d.path().join("scan"), &small());
    let src = &w.files[3];
    let cases: Vec<(&str, dicom_core::Tag, VR, PrimitiveValue, &str)> = vec![
        ("slope_nan", tags::RESCALE_SLOPE, VR::DS, "NaN".into(), "RescaleSlope 'NaN'"),
        ("slope_zero", tags::RESCALE_SLOPE, VR::DS, "0".into(), "not a usable linear rescale"),
        ("slope_huge", tags::RESCALE_SLOPE, VR::DS, "1e308".into(), "not a usable linear rescale"),
        ("spacing_zero", tags::PIXEL_SPACING, VR::DS, "0\\0.7".into(), "PixelSpacing"),
        ("spacing_negative", tags::PIXEL_SPACING, VR::DS, "-0.7\\0.7".into(), "PixelSpacing"),
        ("spacing_huge", tags::PIXEL_SPACING, VR::DS, "1e308\\0.7".into(), "PixelSpacing"),
        ("spacing_inf", tags::PIXEL_SPACING, VR::DS, "inf\\0.7".into(), "PixelSpacing 'inf"),
        ("position_far", tags::IMAGE_POSITION_PATIENT, VR::DS, "0\\0\\1e308".into(), "ImagePositionPatient"),
        ("orientation_zero", tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "0\\0\\0\\0\\1\\0".into(), "ImageOrientationPatient"),
        ("orientation_skew", tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0.5\\0.866\\0".into(), "orthogonal"),
        ("bits_1", tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(1u16), "impossible pixel format"),
        ("bits_12", tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(12u16), "impossible pixel format"),
        ("bits_64", tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(64u16), "the image needs 32768 bytes"),
    ];
    for (name, tag, vr, value, says) in cases {
        let f = d.path().join(format!("{name}.dcm"));
        patched(src, &f, tag, vr, value);
        fails_with("vol-view", &[os(&f), os("-o"), os(&d.path().join(format!("{name}.png")))], 1, &[&format!("{name}.dcm"), says]);
    }
    // Three samples per pixel (colour) where CT has one, with the pixel data to match.
    let rgb = d.path().join("rgb.dcm");
    std::fs::write(&rgb, ct(4, 4, &[el(0x0028, 0x0002, b"US", &3u16.to_le_bytes())], &[0; 96])).unwrap();
    fails_with("vol-view", &[os(&rgb), os("-o"), os(&d.path().join("rgb.png"))], 1, &["rgb.dcm", "not a grayscale image"]);
    // In a folder, the bad slice is named and left out; the series is still made.
    let scan = d.path().join("scan");
    patched(&w.files[0], &w.files[0], tags::RESCALE_SLOPE, VR::DS, "NaN".into());
    let o = run("dcm-stack", &[os(&scan), os("-o"), os(&d.path().join("ct.nii"))]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("RescaleSlope 'NaN'") && stderr(&o).contains("file left out"), "{}", stderr(&o));
    // One slice placed a kilometre off: filling the "gap" would take 131 GB; refused, named.
    let far = d.path().join("far");
    let w = phantom(&far, &small());
    patched(&w.files[5], &w.files[5], tags::IMAGE_POSITION_PATIENT, VR::DS, "-180\\-180\\1000000".into());
    fails_with("dcm-stack", &[os(&far), os("-o"), os(&d.path().join("far.nii"))], 1, &["filling the gaps would make", "--on-gap keep"]);
}

#[test]
fn a_compressed_stream_that_claims_another_size_is_refused_before_decoding() {
    let d = tempfile::tempdir().unwrap();
    let o = ctprep_phantom::PhantomOptions { syntax: ctprep_phantom::Syntax::JpegLossless, ..small() };
    let w = phantom(&d.path().join("scan"), &o);
    let mut bytes = std::fs::read(&w.files[0]).unwrap();
    // The lossless JPEG frame header (SOF3): FF C3, length, precision, then height and width.
    let i = bytes.windows(2).position(|b| b == [0xFF, 0xC3]).unwrap();
    bytes[i + 5..i + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let f = d.path().join("claims.dcm");
    std::fs::write(&f, &bytes).unwrap();
    fails_with(
        "vol-view",
        &[os(&f), os("-o"), os(&d.path().join("c.png"))],
        1,
        &["claims.dcm", "the compressed stream says 65535 x 65535"],
    );
}

fn write(v: &Volume, p: &Path) {
    write_volume(v, &Sink::Path(p.to_path_buf()), &WriteOptions::default()).unwrap();
}

/// [`small_hu`] written to `dir/name`.
fn small_hu_at(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    write(&small_hu(), &p);
    p
}

fn small_hu() -> Volume {
    Volume {
        data: VolumeData::I16(Array3::from_shape_fn((6, 8, 10), |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 500)),
        geometry: ctprep_core::Geometry::identity([0.7, 0.7, 2.0]),
        meta: Meta { kind: Kind::Hu, ..Meta::default() },
    }
}

/// An NPY (version 1.0) header for `descr`, `fortran` order and `shape` (Python syntax).
fn npy_header(descr: &str, fortran: bool, shape: &str) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}", if fortran { "True" } else { "False" });
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b
}

#[test]
fn the_memory_check_counts_what_the_reader_holds_not_what_the_file_holds() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let voxels = 100 * 100 * 100;
    // int8 NIfTI (1 MB) read as int16 (2 MB); float32 with scl_slope 2 (4 MB) plus its scaled copy.
    let zeros = |data| Volume { data, geometry: ctprep_core::Geometry::identity([1.0; 3]), meta: Meta::default() };
    write(&zeros(VolumeData::U8(Array3::zeros((100, 100, 100)))), &p("int8.nii"));
    let mut b = std::fs::read(p("int8.nii")).unwrap();
    b[70..72].copy_from_slice(&256i16.to_le_bytes());
    std::fs::write(p("int8.nii"), b).unwrap();
    write(&zeros(VolumeData::F32(Array3::zeros((100, 100, 100)))), &p("scaled.nii"));
    let mut b = std::fs::read(p("scaled.nii")).unwrap();
    b[112..116].copy_from_slice(&2f32.to_le_bytes());
    std::fs::write(p("scaled.nii"), b).unwrap();
    // float16 NPY (2 MB) read as float32 (4 MB); a Fortran-order float32 NPY (4 MB) and its C-order copy.
    for (name, descr, fortran, bytes) in [("f16.npy", "<f2", false, 2), ("fortran.npy", "<f4", true, 4)] {
        let mut b = npy_header(descr, fortran, "(100, 100, 100)");
        b.resize(b.len() + voxels * bytes, 0);
        std::fs::write(p(name), b).unwrap();
    }
    for (name, file_bytes, memory_bytes) in [
        ("int8.nii", voxels, 2 * voxels),
        ("scaled.nii", 4 * voxels, 8 * voxels),
        ("f16.npy", 2 * voxels, 4 * voxels),
        ("fortran.npy", 4 * voxels, 8 * voxels),
    ] {
        let view = |limit: usize| {
            tool("vol-view").arg(p(name)).arg("-o").arg(p("v.png")).env("CTPREP_MAX_BYTES", limit.to_string()).output().unwrap()
        };
        // The file fits under the limit, what reading it holds does not.
        let o = view((file_bytes + memory_bytes) / 2);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("claims {memory_bytes} bytes")), "{name}: {}", stderr(&o));
        let o = view(memory_bytes);
        assert_eq!(o.status.code(), Some(0), "{name} within the limit: {}", stderr(&o));
    }
}

#[test]
fn hostile_volume_files_are_refused_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let out = p("out.nii");
    // An empty array: refused, never a 0-slice volume with exit 0.
    std::fs::write(p("empty.npy"), npy_header("<i2", false, "(0, 64, 64)")).unwrap();
    fails_with("vol-view", &[os(&p("empty.npy")), os("-o"), os(&p("e.png"))], 1, &["empty.npy", "empty"]);
    fails_with("hu-convert", &[os(&p("empty.npy")), os("-o"), os(&out)], 1, &["empty"]);
    assert!(!out.exists());
    // A shape whose product wraps 64 bits.
    std::fs::write(p("wrap.npy"), npy_header("<i2", false, "(4294967296, 4294967296, 2)")).unwrap();
    fails_with("hu-convert", &[os(&p("wrap.npy")), os("-o"), os(&out)], 1, &["wrap.npy"]);
    // Object arrays are refused; Fortran order and big-endian are read right.
    let mut obj = npy_header("|O", false, "(1, 1, 1)");
    obj.extend_from_slice(&[0; 8]);
    std::fs::write(p("object.npy"), obj).unwrap();
    fails_with("hu-convert", &[os(&p("object.npy")), os("-o"), os(&out)], 1, &["dtype '|O' is not supported"]);
    let mut be = npy_header(">i2", true, "(2, 1, 3)");
    for v in [1i16, 4, 2, 5, 3, 6] {
        be.extend_from_slice(&v.to_be_bytes());
    }
    std::fs::write(p("be.npy"), be).unwrap();
    let v = ctprep_core::io::read_volume(&ctprep_core::io::Source::Path(p("be.npy")), &Default::default()).unwrap().volume;
    assert_eq!(f32_data(&v).iter().copied().collect::<Vec<f32>>(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "Fortran order, big-endian");
    // NIfTI with a NaN quaternion and no sform; a singular sform with a NaN qform.
    let nii = small_hu_at(d.path(), "good.nii");
    let good = std::fs::read(&nii).unwrap();
    let mut q = good.clone();
    q[252..254].copy_from_slice(&1i16.to_le_bytes());
    q[254..256].copy_from_slice(&0i16.to_le_bytes());
    q[256..260].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(p("nanq.nii"), &q).unwrap();
    fails_with("vol-resample", &[os(&p("nanq.nii")), os("--spacing"), os("1"), os("-o"), os(&out)], 1, &["nanq.nii", "grid is unusable"]);
    let mut s = q.clone();
    s[254..256].copy_from_slice(&1i16.to_le_bytes());
    s[280..328].fill(0);
    std::fs::write(p("singular.nii"), &s).unwrap();
    fails_with("vol-resample", &[os(&p("singular.nii")), os("--spacing"), os("1"), os("-o"), os(&out)], 1, &["grid is unusable"]);
    // A .nii.gz whose CRC does not match: the voxels were read, the damage is still found.
    let gz = small_hu_at(d.path(), "v.nii.gz");
    let mut g = std::fs::read(&gz).unwrap();
    let n = g.len();
    g[n - 8] ^= 0xFF;
    std::fs::write(&gz, &g).unwrap();
    fails_with("vol-resample", &[os(&gz), os("--spacing"), os("1"), os("-o"), os(&out)], 1, &["v.nii.gz", "corrupt or truncated gzip"]);
    // A gzip bomb's header: 1000^3 float64 voxels from a file of a few hundred bytes is refused
    // before inflating (deflate cannot expand past 1032:1).
    let mut bomb_header = good.clone();
    for (k, v) in [1000i16, 1000, 1000].iter().enumerate() {
        bomb_header[42 + 2 * k..44 + 2 * k].copy_from_slice(&v.to_le_bytes());
    }
    bomb_header[70..72].copy_from_slice(&64i16.to_le_bytes());
    bomb_header[72..74].copy_from_slice(&64i16.to_le_bytes());
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, &bomb_header).unwrap();
    std::io::Write::write_all(&mut enc, &vec![0u8; 1 << 20]).unwrap();
    std::fs::write(p("bomb.nii.gz"), enc.finish().unwrap()).unwrap();
    fails_with(
        "vol-resample",
        &[os(&p("bomb.nii.gz")), os("--spacing"), os("1"), os("-o"), os(&out)],
        1,
        &["bomb.nii.gz", "can hold at most"],
    );
    // A sidecar with zero spacing.
    let npy = small_hu_at(d.path(), "zero.npy");
    let side = sidecar_path(&npy);
    let text = std::fs::read_to_string(&side).unwrap().replacen("0.7", "0.0", 1);
    std::fs::write(&side, text).unwrap();
    fails_with("vol-resample", &[os(&npy), os("--spacing"), os("1"), os("-o"), os(&out)], 1, &["zero.json", "geometry is unusable"]);
}

#[test]
fn a_volume_and_a_sidecar_from_different_runs_are_told_apart() {
    let d = tempfile::tempdir().unwrap();
    let x = small_hu_at(d.path(), "x.npy");
    let first_sidecar = std::fs::read(sidecar_path(&x)).unwrap();
    let mut other = small_hu();
    other.data = VolumeData::I16(Array3::from_elem((6, 8, 10), 7));
    write(&other, &x);
    // As if the second run's sidecar rename never happened.
    std::fs::write(sidecar_path(&x), &first_sidecar).unwrap();
    fails_with(
        "vol-resample",
        &[os(&x), os("--spacing"), os("1"), os("-o"), os(&d.path().join("o.nii"))],
        1,
        &["x.json", "the sidecar belongs to another version of the file"],
    );
}

#[test]
fn folders_with_loops_pipes_and_devices_never_block() {
    let d = tempfile::tempdir().unwrap();
    let scan = d.path().join("scan");
    phantom(&scan, &small());
    std::os::unix::fs::symlink(&scan, scan.join("loop")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", scan.join("zero.dcm")).unwrap();
    let fifo = scan.join("pipe.dcm");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let o = run("dcm-stack", &[os(&scan), os("-o"), os(&d.path().join("ct.nii"))]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&d.path().join("ct.nii")).shape()[0], small().slices);
    // A named pipe as input with no writer, as an NPY sidecar, and as an output with no reader.
    let in_fifo = d.path().join("in.nii");
    assert!(std::process::Command::new("mkfifo").arg(&in_fifo).status().unwrap().success());
    fails_with(
        "vol-resample",
        &[os(&in_fifo), os("--spacing"), os("1"), os("-o"), os(&d.path().join("o.nii"))],
        1,
        &["in.nii", "empty input"],
    );
    let npy = small_hu_at(d.path(), "v.npy");
    std::fs::remove_file(sidecar_path(&npy)).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(sidecar_path(&npy)).status().unwrap().success());
    fails_with(
        "vol-resample",
        &[os(&npy), os("--spacing"), os("1"), os("-o"), os(&d.path().join("o.nii"))],
        1,
        &["v.json", "not a regular JSON file"],
    );
    let out_fifo = d.path().join("out.nii");
    assert!(std::process::Command::new("mkfifo").arg(&out_fifo).status().unwrap().success());
    let nii = small_hu_at(d.path(), "v.nii");
    fails_with("vol-resample", &[os(&nii), os("--spacing"), os("1"), os("-o"), os(&out_fifo)], 1, &["out.nii", "no process is reading"]);
}

#[test]
fn unbounded_options_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let nii = small_hu_at(d.path(), "v.nii");
    let [h, m, l, s, hu, ph] = ["h.png", "m.png", "l.nii", "m.stl", "h.nii", "p"].map(|n| d.path().join(n));
    let o = |n: &str| match n {
        "h.png" => &h,
        "m.png" => &m,
        "l.nii" => &l,
        "m.stl" => &s,
        "h.nii" => &hu,
        _ => &ph,
    };
    let cases: Vec<(&str, Vec<&std::ffi::OsStr>)> = vec![
        ("vol-view", vec![os(&nii), os("--histogram"), os(o("h.png")), os("--bins"), os("1000000000000")]),
        ("vol-view", vec![os(&nii), os("-o"), os(o("m.png")), os("--montage"), os("1000x1000")]),
        ("lung-seg", vec![os(&nii), os("-o"), os(o("l.nii")), os("--close"), os("1e6")]),
        ("lung-seg", vec![os(&nii), os("-o"), os(o("l.nii")), os("--dilate"), os("nan")]),
        ("vol-mesh", vec![os(&nii), os("-o"), os(o("m.stl")), os("--sigma"), os("1e6")]),
        ("hu-convert", vec![os(&nii), os("-o"), os(o("h.nii")), os("--air"), os("nan")]),
        ("ct-phantom", vec![os(o("p")), os("--slices"), os("100000")]),
    ];
    for (t, args) in cases {
        let r = run(t, &args);
        assert_eq!(r.status.code(), Some(2), "{t} {args:?}: {}", stderr(&r));
    }
}

fn tmp_files(dir: &Path) -> Vec<String> {
    files_in(dir).into_iter().filter(|f| f.ends_with(".tmp")).collect()
}

/// A tool that writes for a second or more: a 0.5 mm gzip-9 resample of a 120 x 160 x 160 volume.
fn slow_writer(input: &Path, out: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(bin("vol-resample"));
    c.arg(input).args(["--spacing", "0.5", "--gzip-level", "9", "-q", "-o"]).arg(out);
    c
}

fn big_input(d: &Path) -> PathBuf {
    let input = d.join("big.nii");
    let v = Volume {
        data: VolumeData::I16(Array3::from_shape_fn((120, 160, 160), |(z, y, x)| ((z * 31 + y * 17 + x * 7) % 2000) as i16 - 1000)),
        geometry: ctprep_core::Geometry::identity([1.0; 3]),
        meta: Meta { kind: Kind::Hu, ..Meta::default() },
    };
    write(&v, &input);
    input
}

/// Start `c`, wait until its temporary appears in `dir`, and return the child.
fn caught_writing(mut c: std::process::Command, dir: &Path) -> std::process::Child {
    let mut child = c.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while tmp_files(dir).is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the writer finished before its temporary was seen");
        assert!(t0.elapsed() < Duration::from_secs(120), "no temporary appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
    child
}

#[test]
fn killed_writers_leave_the_old_output_and_the_next_run_sweeps_their_temporaries() {
    let d = tempfile::tempdir().unwrap();
    let input = big_input(d.path());
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("r.nii.gz");
    std::fs::write(&out, b"the old output").unwrap();
    // SIGKILL: nothing can clean up; the old file stays whole, one temporary is left.
    let mut child = caught_writing(slow_writer(&input, &out), &out_dir);
    let pid = child.id();
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    child.wait().unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"the old output");
    let left = tmp_files(&out_dir);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains(&format!("ctprep{pid}-")), "the temporary names its writer: {left:?}");
    // A live writer's temporary (this test process started before it was written) is kept.
    let live = out_dir.join(format!(".other.nii.ctprep{}-abc.tmp", std::process::id()));
    std::fs::write(&live, b"in progress").unwrap();
    let o = run("vol-resample", &[os(&input), os("--spacing"), os("4"), os("-o"), os(&out_dir.join("small.nii"))]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(tmp_files(&out_dir), [live.file_name().unwrap().to_string_lossy().into_owned()], "the dead writer's temporary is swept");
    // SIGTERM and SIGHUP behave like SIGINT: exit 130, temporaries removed.
    for sig in ["-TERM", "-HUP"] {
        std::fs::remove_file(&live).ok();
        let mut child = caught_writing(slow_writer(&input, &out), &out_dir);
        std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(130), "{sig}");
        assert!(tmp_files(&out_dir).is_empty(), "{sig}: {:?}", tmp_files(&out_dir));
        assert_eq!(std::fs::read(&out).unwrap(), b"the old output");
    }
}

#[test]
fn two_writers_of_one_output_leave_one_complete_file() {
    let d = tempfile::tempdir().unwrap();
    let nii = small_hu_at(d.path(), "v.nii");
    let out = d.path().join("o.npy");
    for round in 0..5 {
        let spawn = |s: &str| tool("vol-resample").arg(&nii).args(["--spacing", s, "-q", "-o"]).arg(&out).output();
        let (a, b) = std::thread::scope(|sc| {
            let a = sc.spawn(|| spawn("0.5"));
            let b = sc.spawn(|| spawn("0.35"));
            (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
        });
        assert!(a.status.success() && b.status.success(), "round {round}");
        // One writer's file whole; with the other's sidecar the pair is refused, never mixed.
        let r = ctprep_core::io::read_volume(&ctprep_core::io::Source::Path(out.clone()), &Default::default());
        match r {
            Ok(l) => assert!([[24, 11, 14], [34, 16, 20]].contains(&l.volume.shape()), "{:?}", l.volume.shape()),
            Err(e) => assert!(e.to_string().contains("another version of the file"), "{e}"),
        }
        assert!(tmp_files(d.path()).is_empty());
    }
}

#[test]
fn a_full_filesystem_names_the_file_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&mnt).status();
    assert!(
        mounted.is_ok_and(|s| s.success()),
        "cannot mount a 256 KiB tmpfs (this test needs root, as CI has); the /dev/full case is common::full_disk_is_reported_and_leaves_nothing"
    );
    let nii = small_hu_at(d.path(), "v.nii");
    let out = mnt.join("big.nii");
    let o = run("vol-resample", &[os(&nii), os("--spacing"), os("0.1"), os("-o"), os(&out)]);
    let listing = files_in(&mnt);
    std::process::Command::new("umount").arg(&mnt).status().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("big.nii") && stderr(&o).contains("No space left"), "{}", stderr(&o));
    assert!(listing.is_empty(), "left on the full filesystem: {listing:?}");
}

#[test]
fn an_address_space_limit_is_a_refusal_not_an_abort() {
    // `ulimit -v` (RLIMIT_AS), as batch schedulers set it: a 940 MB output under a 600 MB limit.
    let d = tempfile::tempdir().unwrap();
    let nii = small_hu_at(d.path(), "v.nii");
    let out = d.path().join("fine.nii");
    let script =
        format!("ulimit -v 600000; exec '{}' '{}' --spacing 0.01 -o '{}'", bin("vol-resample").display(), nii.display(), out.display());
    let o = std::process::Command::new("bash").args(["-c", &script]).env_remove("CTPREP_MAX_BYTES").output().unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("the output grid claims") && stderr(&o).contains("bytes allowed"), "{}", stderr(&o));
    assert!(!out.exists());
}
