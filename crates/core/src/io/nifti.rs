//! NIfTI-1 single-file reader and writer, for files and pipes.
//!
//! Our writer exists because the nifti crate writes only to paths and forces scl_slope/scl_inter
//! to 1/0; every file it writes is read back with the nifti crate in the tests. The header carries
//! sform and qform (code 1, scanner) in RAS as dcm2niix writes them, and our metadata travels as
//! JSON in a header extension (ecode 6, "comment"), so it survives pipes.

use super::{Format, Loaded, check_claim, gz_err, read_converted, read_vec};
use crate::error::{Error, Result};
use crate::geometry::{Geometry, Qform};
use crate::meta::{Kind, Meta, Rescale};
use crate::volume::{DType, Header, Volume, VolumeData};
use crate::with_data;
use ndarray::Array3;
use std::io::{BufRead, Write};
use std::path::Path;

const HEADER_SIZE: usize = 348;
/// Extension code 6 = NIFTI_ECODE_COMMENT; our payload is a JSON object with this key.
const ECODE_COMMENT: i32 = 6;
const META_KEY: &str = "ctprep_meta";
/// NIFTI_INTENT_LABEL: "the value at each voxel is an index into some set of labels".
const INTENT_LABEL: i16 = 1002;

/// Largest header extension block we read (64 MiB).
const MAX_EXTENSIONS: u64 = 64 << 20;

fn dtype_code(d: DType) -> (i16, i16) {
    match d {
        DType::U8 => (2, 8),
        DType::I16 => (4, 16),
        DType::I32 => (8, 32),
        DType::F32 => (16, 32),
        DType::F64 => (64, 64),
        DType::U16 => (512, 16),
    }
}

struct Fields<'a> {
    b: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    fn i16(&self, o: usize) -> i16 {
        let a = [self.b[o], self.b[o + 1]];
        if self.be { i16::from_be_bytes(a) } else { i16::from_le_bytes(a) }
    }
    fn i32(&self, o: usize) -> i32 {
        let a = [self.b[o], self.b[o + 1], self.b[o + 2], self.b[o + 3]];
        if self.be { i32::from_be_bytes(a) } else { i32::from_le_bytes(a) }
    }
    fn f32(&self, o: usize) -> f32 {
        let a = [self.b[o], self.b[o + 1], self.b[o + 2], self.b[o + 3]];
        if self.be { f32::from_be_bytes(a) } else { f32::from_le_bytes(a) }
    }
}

/// Read a NIfTI-1 volume (the stream starts at the 348-byte header).
pub fn read<R: BufRead>(mut r: R, name: &Path, file_len: Option<u64>, gz: bool) -> Result<Loaded> {
    let mut hdr = [0u8; HEADER_SIZE];
    r.read_exact(&mut hdr).map_err(|e| gz_err(name, e, gz))?;
    let layout = Layout::parse(&hdr, name, file_len)?;
    let h = Fields { b: &hdr, be: layout.be };
    // Extensions (between the header and vox_offset).
    let mut rest = vec![0u8; (layout.vox_offset - HEADER_SIZE as u64) as usize];
    r.read_exact(&mut rest).map_err(|e| gz_err(name, e, gz))?;
    let mut warnings = Vec::new();
    let meta = read_extensions(&rest, layout.be, name, &mut warnings);
    let data = layout.read_voxels(&mut r, name, gz)?;
    if gz {
        // Read the gzip trailer too: the decoder checks the CRC-32 and length only there.
        std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| gz_err(name, e, gz))?;
    }
    let (geometry, geometry_known) = read_geometry(&h, name, &mut warnings)?;
    if let Some(why) = geometry.invalid() {
        return Err(Error::bad_input(format!("the header's grid is unusable: {why}"))
            .with_path(name)
            .with_hint("the sform/qform is corrupt (NaN quaternion, singular matrix): rewrite it, e.g. with nibabel's set_sform"));
    }
    let (data, meta) = apply_scaling(&h, layout.dtype, data, meta.unwrap_or_default());
    Ok(Loaded { volume: Volume { data, geometry, meta }, format: Format::Nifti, warnings, geometry_known })
}

/// What the header says about the voxels: byte order, size, type and where they start, each
/// checked (and the payload against the memory limit and the file) before anything is allocated.
struct Layout {
    be: bool,
    /// (x, y, z) sizes.
    dims_xyz: [usize; 3],
    dtype: DType,
    /// int8 on disk, read as int16.
    from_i8: bool,
    vox_offset: u64,
}

impl Layout {
    fn parse(hdr: &[u8; HEADER_SIZE], name: &Path, file_len: Option<u64>) -> Result<Layout> {
        let be = i32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) != 348;
        let h = Fields { b: hdr, be };
        let bad = |msg: String| {
            Error::bad_input(msg)
                .with_path(name)
                .with_hint("the NIfTI header is invalid: re-export the volume (nibabel, dcm2niix or dcm-stack)")
        };
        let magic = &hdr[344..348];
        if magic != b"n+1\0" {
            if magic == b"ni1\0" {
                return Err(Error::unsupported("two-file NIfTI (.hdr/.img) is not supported")
                    .with_path(name)
                    .with_hint("convert to a single .nii file, e.g. with nibabel or fslchfiletype"));
            }
            return Err(bad(format!("bad NIfTI-1 magic {:?} (expected \"n+1\")", String::from_utf8_lossy(magic))));
        }
        let ndim = h.i16(40);
        if !(1..=7).contains(&ndim) {
            return Err(bad(format!("dim[0] = {ndim}, must be 1 to 7")));
        }
        let mut dims = [1i64; 7];
        for (i, d) in dims.iter_mut().enumerate().take(ndim as usize) {
            *d = h.i16(42 + 2 * i) as i64;
            if *d < 1 {
                return Err(bad(format!("dim[{}] = {} is not a positive size", i + 1, *d)));
            }
        }
        if dims[3..].iter().any(|&d| d > 1) {
            return Err(Error::unsupported(format!(
                "4-D or higher volume (dims {:?}); ctprep works on 3-D volumes",
                &dims[..ndim as usize]
            ))
            .with_path(name)
            .with_hint("extract one 3-D volume first, e.g. `fslroi in out 0 1` or nibabel's `img.slicer[..., 0]`"));
        }
        let (dtype, src_size, from_i8) = match h.i16(70) {
            2 => (DType::U8, 1, false),
            4 => (DType::I16, 2, false),
            8 => (DType::I32, 4, false),
            16 => (DType::F32, 4, false),
            64 => (DType::F64, 8, false),
            256 => (DType::I16, 1, true),
            512 => (DType::U16, 2, false),
            other => {
                return Err(Error::unsupported(format!("NIfTI datatype code {other} is not supported")).with_path(name).with_hint(
                    "supported: uint8, int8, int16, uint16, int32, float32, float64; convert with nibabel (img.set_data_dtype)",
                ));
            }
        };
        let vox_offset = h.f32(108);
        if !vox_offset.is_finite() || vox_offset < HEADER_SIZE as f32 {
            return Err(bad(format!("vox_offset = {vox_offset} is before the end of the header")));
        }
        let vox_offset = vox_offset as u64;
        // Extensions hold metadata, not voxels: refuse absurd offsets before allocating for them.
        // (Found by the byte-mutation tests: a mutated vox_offset asked for 26 TB.)
        if vox_offset - HEADER_SIZE as u64 > MAX_EXTENSIONS || file_len.is_some_and(|l| vox_offset > l) {
            return Err(bad(format!("vox_offset = {vox_offset} is beyond the end of the file or absurdly large")));
        }
        let dims_xyz = [dims[0] as usize, dims[1] as usize, dims[2] as usize];
        let voxels = dims_xyz.iter().map(|&d| d as u64).product::<u64>();
        check_claim(name, "the NIfTI header", voxels * src_size as u64, file_len.map(|l| l.saturating_sub(vox_offset)))?;
        // What memory holds at the peak: int8 widens to int16; scaled floats get a float32 copy.
        let scaled_copy = if !dtype.is_integer() && header_rescale(&h).is_some_and(|r| !r.is_identity()) { 4 } else { 0 };
        check_claim(name, "the NIfTI header", voxels * (dtype.size() as u64 + scaled_copy), None)?;
        Ok(Layout { be, dims_xyz, dtype, from_i8, vox_offset })
    }

    /// The voxels, read straight into the typed buffer, then put in the machine's byte order.
    fn read_voxels<R: BufRead>(&self, r: &mut R, name: &Path, gz: bool) -> Result<VolumeData> {
        let [nx, ny, nz] = self.dims_xyz;
        let (n, be) = (nx * ny * nz, self.be);
        if self.from_i8 {
            return Ok(VolumeData::I16(arr(nz, ny, nx, read_converted(r, n, name, gz, |[v]: [u8; 1]| v as i8 as i16)?)));
        }
        Ok(match self.dtype {
            DType::U8 => VolumeData::U8(arr(nz, ny, nx, read_vec::<u8, _>(r, n, be, name, gz)?)),
            DType::I16 => VolumeData::I16(arr(nz, ny, nx, read_vec::<i16, _>(r, n, be, name, gz)?)),
            DType::U16 => VolumeData::U16(arr(nz, ny, nx, read_vec::<u16, _>(r, n, be, name, gz)?)),
            DType::I32 => VolumeData::I32(arr(nz, ny, nx, read_vec::<i32, _>(r, n, be, name, gz)?)),
            DType::F32 => VolumeData::F32(arr(nz, ny, nx, read_vec::<f32, _>(r, n, be, name, gz)?)),
            DType::F64 => VolumeData::F64(arr(nz, ny, nx, read_vec::<f64, _>(r, n, be, name, gz)?)),
        })
    }
}

/// ctprep's metadata from the extensions (a JSON comment extension), when one holds it;
/// malformed extensions and unreadable metadata are warnings, not errors.
fn read_extensions(rest: &[u8], be: bool, name: &Path, warnings: &mut Vec<String>) -> Option<Meta> {
    let mut meta = None;
    if rest.len() < 4 || rest[0] == 0 {
        return meta;
    }
    let mut off = 4;
    while off + 8 <= rest.len() {
        let f = Fields { b: rest, be };
        let esize = f.i32(off);
        let ecode = f.i32(off + 4);
        if esize < 8 || off + esize as usize > rest.len() {
            warnings.push(format!("{}: ignoring a malformed NIfTI extension (esize {esize})", name.display()));
            break;
        }
        if ecode == ECODE_COMMENT {
            let body = &rest[off + 8..off + esize as usize];
            let text = String::from_utf8_lossy(body);
            let text = text.trim_end_matches('\0');
            if let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str::<serde_json::Value>(text) {
                if let Some(v) = obj.remove(META_KEY) {
                    match serde_json::from_value::<Meta>(v) {
                        Ok(m) => meta = Some(m),
                        Err(e) => warnings.push(format!("{}: ignoring unreadable ctprep metadata: {e}", name.display())),
                    }
                }
            }
        }
        off += esize as usize;
    }
    meta
}

/// scl_slope/scl_inter: applied now to float data (as every NIfTI reader would), kept as the
/// rescale of integer data; and the kind the header implies when the metadata names none.
fn apply_scaling(h: &Fields, dtype: DType, mut data: VolumeData, mut meta: Meta) -> (VolumeData, Meta) {
    match header_rescale(h) {
        Some(r) if !r.is_identity() && !dtype.is_integer() => {
            data = VolumeData::F32(data.to_f32(Some(r)));
            meta.rescale = None;
        }
        Some(r) if !r.is_identity() => meta.rescale = Some(r),
        _ => meta.rescale = None,
    }
    if meta.kind == Kind::Unknown && meta.rescale.is_some() {
        meta.kind = Kind::Stored;
    }
    // A label map from another tool (ITK-SNAP, FSL, nibabel with the intent set) says so.
    if meta.kind == Kind::Unknown && h.i16(68) == INTENT_LABEL {
        meta.kind = Kind::Labels;
    }
    (data, meta)
}

/// scl_slope/scl_inter when they mean something (a zero or non-finite slope means "none").
fn header_rescale(h: &Fields) -> Option<Rescale> {
    let (slope, intercept) = (h.f32(112) as f64, h.f32(116) as f64);
    (slope.is_finite() && slope != 0.0 && intercept.is_finite()).then_some(Rescale { slope, intercept })
}

fn arr<T>(nz: usize, ny: usize, nx: usize, v: Vec<T>) -> Array3<T> {
    Array3::from_shape_vec((nz, ny, nx), v).expect("length checked by read_vec")
}

/// The header's grid, and whether the header gave one (an sform or a qform) or it was assumed.
fn read_geometry(h: &Fields, name: &Path, warnings: &mut Vec<String>) -> Result<(Geometry, bool)> {
    let sform_code = h.i16(254);
    let qform_code = h.i16(252);
    let pixdim = [h.f32(80) as f64, h.f32(84) as f64, h.f32(88) as f64];
    if sform_code > 0 {
        let mut m = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..4 {
                m[r][c] = h.f32(280 + 16 * r + 4 * c) as f64;
            }
        }
        m[3][3] = 1.0;
        let g = Geometry::from_affine_ras(&m);
        if g.spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Ok((g, true));
        }
        warnings.push(format!("{}: sform is degenerate, using qform", name.display()));
    }
    if pixdim.iter().any(|p| !p.is_finite() || *p <= 0.0) {
        return Err(Error::bad_input(format!("pixdim {pixdim:?}: voxel sizes must be positive"))
            .with_path(name)
            .with_hint("fix the header's pixdim (e.g. nibabel: img.header.set_zooms((0.7, 0.7, 1.25)))"));
    }
    if qform_code > 0 {
        let q = Qform {
            quatern: [h.f32(256) as f64, h.f32(260) as f64, h.f32(264) as f64],
            offset: [h.f32(268) as f64, h.f32(272) as f64, h.f32(276) as f64],
            qfac: h.f32(76) as f64,
            spacing: pixdim,
        };
        return Ok((Geometry::from_qform(&q), true));
    }
    warnings.push(format!("{}: no sform or qform: assuming an axis-aligned grid at the origin", name.display()));
    // NIfTI's method 1: x = i*dx etc. in RAS, i.e. LPS with x and y flipped.
    Ok((Geometry { spacing: pixdim, origin: [0.0; 3], direction: [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]] }, false))
}

fn meta_extension(meta: &Meta) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    obj.insert(META_KEY.into(), serde_json::to_value(meta).unwrap_or_default());
    let mut body = serde_json::to_vec(&obj).unwrap_or_default();
    // esize includes the 8-byte (esize, ecode) prefix and must be a multiple of 16.
    let total = (body.len() + 8).div_ceil(16) * 16;
    body.resize(total - 8, 0);
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as i32).to_le_bytes());
    out.extend_from_slice(&ECODE_COMMENT.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The header, extender and extension of a volume (everything before the voxels).
pub fn write_header(vol: &Header, w: &mut dyn Write) -> Result<()> {
    let [nz, ny, nx] = vol.shape;
    for (axis, n) in [("x", nx), ("y", ny), ("z", nz)] {
        if n > i16::MAX as usize {
            return Err(Error::unsupported(format!("{n} voxels along {axis} exceed NIfTI-1's limit of 32767"))
                .with_hint("crop or resample the volume"));
        }
    }
    let ext = meta_extension(vol.meta);
    let mut h = [0u8; HEADER_SIZE];
    let put_i16 = |h: &mut [u8], o: usize, v: i16| h[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 = |h: &mut [u8], o: usize, v: i32| h[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8], o: usize, v: f64| h[o..o + 4].copy_from_slice(&(v as f32).to_le_bytes());
    put_i32(&mut h, 0, HEADER_SIZE as i32);
    h[38] = b'r';
    let dims = [3i16, nx as i16, ny as i16, nz as i16, 1, 1, 1, 1];
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d);
    }
    let (code, bitpix) = dtype_code(vol.dtype);
    // Masks and label maps carry NIfTI's label intent, so viewers (ITK-SNAP, Slicer, FSLeyes)
    // show them as segmentations, not as grey values.
    if matches!(vol.meta.kind, Kind::Mask | Kind::Labels) {
        put_i16(&mut h, 68, INTENT_LABEL);
        let name: &[u8] = if vol.meta.kind == Kind::Mask { b"mask" } else { b"labels" };
        h[328..328 + name.len()].copy_from_slice(name);
    }
    put_i16(&mut h, 70, code);
    put_i16(&mut h, 72, bitpix);
    let g = vol.geometry;
    let q = g.qform();
    put_f32(&mut h, 76, q.qfac);
    for a in 0..3 {
        put_f32(&mut h, 80 + 4 * a, g.spacing[a]);
    }
    let vox_offset = HEADER_SIZE + 4 + ext.len();
    put_f32(&mut h, 108, vox_offset as f64);
    let r = vol.meta.rescale.filter(|_| vol.dtype.is_integer()).unwrap_or(Rescale::IDENTITY);
    put_f32(&mut h, 112, r.slope);
    put_f32(&mut h, 116, r.intercept);
    h[123] = 2 | 8; // mm, seconds
    if let Some([c, wdt]) = vol.meta.window {
        put_f32(&mut h, 124, c + wdt / 2.0);
        put_f32(&mut h, 128, c - wdt / 2.0);
    }
    let descrip = format!("ctprep {} {}", env!("CARGO_PKG_VERSION"), vol.meta.kind.name());
    let d = descrip.as_bytes();
    h[148..148 + d.len().min(79)].copy_from_slice(&d[..d.len().min(79)]);
    put_i16(&mut h, 252, 1);
    put_i16(&mut h, 254, 1);
    for i in 0..3 {
        put_f32(&mut h, 256 + 4 * i, q.quatern[i]);
        put_f32(&mut h, 268 + 4 * i, q.offset[i]);
    }
    let a = g.affine_ras();
    for rr in 0..3 {
        for c in 0..4 {
            put_f32(&mut h, 280 + 16 * rr + 4 * c, a[rr][c]);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    let io = |e| Error::io("cannot write", Path::new(""), e);
    w.write_all(&h).map_err(io)?;
    w.write_all(&[1, 0, 0, 0]).map_err(io)?;
    w.write_all(&ext).map_err(io)?;
    Ok(())
}

#[allow(clippy::unnecessary_cast)]
/// The voxel bytes in NIfTI order (x fastest = our `[z, y, x]` C order), little-endian.
pub fn data_bytes(vol: &Volume) -> std::borrow::Cow<'_, [u8]> {
    with_data!(&vol.data, a => {
        match a.as_slice() {
            Some(s) if cfg!(target_endian = "little") => std::borrow::Cow::Borrowed(bytemuck::cast_slice(s)),
            _ => {
                let mut out = Vec::with_capacity(a.len() * std::mem::size_of_val(&a[[0, 0, 0]]));
                for v in a.iter() {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                std::borrow::Cow::Owned(out)
            }
        }
    })
}

/// Write a whole uncompressed NIfTI-1 file.
pub fn write(vol: &Volume, w: &mut dyn Write) -> Result<()> {
    write_header(&vol.header(), w)?;
    w.write_all(&data_bytes(vol)).map_err(|e| Error::io("cannot write", Path::new(""), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{ReadOptions, Sink, Source, WriteOptions, read_volume, write_volume};
    use crate::meta::Kind;

    fn sample(dtype: DType, g: Geometry) -> Volume {
        let a = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| (z * 100 + y * 10 + x) as f64 - 50.0);
        let data = crate::volume::cast_array(a.view(), dtype);
        let mut meta = Meta { kind: Kind::Hu, ..Meta::default() };
        meta.push_step("test", "0", vec!["a".into()]);
        Volume { data, geometry: g, meta }
    }

    fn geometries() -> Vec<Geometry> {
        let t = 18.5f64.to_radians();
        vec![
            Geometry { spacing: [0.7, 0.8, 1.25], origin: [-172.0, -202.8, -20.5], ..Geometry::default() },
            Geometry {
                spacing: [0.5, 0.5, 2.0],
                origin: [10.0, 20.0, 30.0],
                direction: [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
            },
            Geometry {
                spacing: [0.5, 0.5, 5.0],
                origin: [1.0, 2.0, 3.0],
                direction: [[1.0, 0.0, 0.0], [0.0, t.cos(), -t.sin()], [0.0, 0.0, 1.0]],
            },
        ]
    }

    #[test]
    fn int8_is_read_as_int16_with_its_sign() {
        let v = Volume {
            data: VolumeData::U8(Array3::from_shape_vec((1, 1, 3), vec![0xFF, 0x80, 7]).unwrap()),
            geometry: Geometry::identity([1.0; 3]),
            meta: Meta::default(),
        };
        let mut bytes = Vec::new();
        write(&v, &mut bytes).unwrap();
        bytes[70..72].copy_from_slice(&256i16.to_le_bytes()); // NIFTI_TYPE_INT8
        let l = read(&bytes[..], Path::new("int8.nii"), None, false).unwrap();
        let VolumeData::I16(a) = l.volume.data else { panic!("int8 reads as int16") };
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), [-1, -128, 7]);
    }

    #[test]
    fn round_trip_every_dtype_geometry_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in [DType::U8, DType::I16, DType::U16, DType::I32, DType::F32, DType::F64] {
            for (gi, g) in geometries().into_iter().enumerate() {
                for ext in ["nii", "nii.gz"] {
                    let v = sample(dtype, g.clone());
                    let p = dir.path().join(format!("v{gi}.{ext}"));
                    write_volume(&v, &Sink::Path(p.clone()), &WriteOptions::default()).unwrap();
                    let back = read_volume(&Source::Path(p.clone()), &ReadOptions::default()).unwrap().volume;
                    assert_eq!(back.data, v.data, "{dtype:?} {ext}");
                    assert_eq!(back.meta, v.meta);
                    for ijk in [[0.0, 0.0, 0.0], [4.0, 3.0, 2.0]] {
                        let (a, b) = (back.geometry.index_to_world(ijk), v.geometry.index_to_world(ijk));
                        assert!((0..3).all(|i| (a[i] - b[i]).abs() < 1e-3), "{a:?} vs {b:?}");
                    }
                    // The nifti crate reads the same voxels and the same sform.
                    let obj = nifti::ReaderOptions::new().read_file(&p).unwrap();
                    let h = nifti::NiftiObject::header(&obj);
                    assert_eq!(h.dim[1..4], [5, 4, 3]);
                    assert_eq!((h.sform_code, h.qform_code), (1, 1));
                    let ras = v.geometry.affine_ras();
                    for c in 0..4 {
                        assert!((h.srow_x[c] as f64 - ras[0][c]).abs() < 1e-4);
                        assert!((h.srow_z[c] as f64 - ras[2][c]).abs() < 1e-4);
                    }
                    use nifti::IntoNdArray;
                    let theirs = nifti::NiftiObject::into_volume(obj).into_ndarray::<f64>().unwrap();
                    // nifti-rs gives [x, y, z]; ours is [z, y, x].
                    assert_eq!(theirs[[4, 3, 2]], v.data.to_f32(None)[[2, 3, 4]] as f64);
                }
            }
        }
    }

    #[test]
    fn scl_slope_and_inter_survive_and_are_visible_to_other_readers() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = sample(DType::I16, geometries()[0].clone());
        v.meta.kind = Kind::Stored;
        v.meta.rescale = Some(Rescale { slope: 1.0, intercept: -1024.0 });
        let p = dir.path().join("s.nii");
        write_volume(&v, &Sink::Path(p.clone()), &WriteOptions::default()).unwrap();
        let back = read_volume(&Source::Path(p.clone()), &ReadOptions::default()).unwrap().volume;
        assert_eq!(back.meta.rescale, v.meta.rescale);
        assert_eq!(back.data, v.data);
        use nifti::IntoNdArray;
        let obj = nifti::ReaderOptions::new().read_file(&p).unwrap();
        let theirs = nifti::NiftiObject::into_volume(obj).into_ndarray::<f32>().unwrap();
        assert_eq!(theirs[[0, 0, 0]], -50.0 - 1024.0);
    }

    #[test]
    fn sidecar_written_beside_file_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let v = sample(DType::F32, geometries()[1].clone());
        let p = dir.path().join("a.nii.gz");
        write_volume(&v, &Sink::Path(p), &WriteOptions::default()).unwrap();
        let side = std::fs::read_to_string(dir.path().join("a.json")).unwrap();
        let (g, m, shape) = crate::io::parse_sidecar(&side).unwrap();
        assert_eq!(g, v.geometry);
        assert_eq!(m, v.meta);
        assert_eq!(shape, Some([3, 4, 5]));
    }
}
