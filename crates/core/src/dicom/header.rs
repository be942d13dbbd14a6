//! The facts of one image (file, or frame of an enhanced multi-frame file) that series
//! assembly needs, read from the header without touching pixel data.

use crate::meta::{Padding, Rescale};
use dicom_core::Tag;
use dicom_core::value::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use std::path::{Path, PathBuf};

/// One image slice as its header describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SliceHeader {
    pub path: PathBuf,
    /// Frame index inside an enhanced multi-frame file (0 for classic single-frame files).
    pub frame: u32,
    pub frames_in_file: u32,
    pub sop_class_uid: String,
    pub sop_instance_uid: Option<String>,
    pub study_instance_uid: Option<String>,
    pub study_date: Option<String>,
    pub series_instance_uid: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub patient_id: Option<String>,
    pub modality: Option<String>,
    pub image_type: Vec<String>,
    pub manufacturer: Option<String>,
    pub convolution_kernel: Option<String>,
    pub patient_position: Option<String>,
    pub rows: u32,
    pub columns: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub pixel_representation: u16,
    pub photometric: Option<String>,
    /// PixelSpacing: (row spacing = between rows = along y, column spacing = along x), mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// ImageOrientationPatient: row direction (x), then column direction (y).
    pub orientation: Option<[f64; 6]>,
    pub position: Option<[f64; 3]>,
    pub slice_location: Option<f64>,
    pub instance_number: Option<i64>,
    pub slice_thickness: Option<f64>,
    pub gantry_tilt_tag: Option<f64>,
    pub rescale: Rescale,
    pub rescale_present: bool,
    pub padding: Option<Padding>,
    pub window: Option<[f64; 2]>,
    pub transfer_syntax: String,
}

impl SliceHeader {
    /// Localizer / scout (ImageType contains LOCALIZER).
    pub fn is_localizer(&self) -> bool {
        self.image_type.iter().any(|t| t.eq_ignore_ascii_case("LOCALIZER"))
    }
    /// Secondary capture or other non-CT image storage.
    pub fn is_secondary_capture(&self) -> bool {
        self.sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.7")
    }
    /// Derived or secondary images (ImageType value 1 DERIVED, or value 2 SECONDARY).
    pub fn is_derived(&self) -> bool {
        self.image_type.first().is_some_and(|t| t.eq_ignore_ascii_case("DERIVED"))
            || self.image_type.get(1).is_some_and(|t| t.eq_ignore_ascii_case("SECONDARY"))
    }
    /// Slice normal (row x column direction), when the orientation is known.
    pub fn normal(&self) -> Option<[f64; 3]> {
        let o = self.orientation?;
        Some(crate::geometry::normalize(crate::geometry::cross([o[0], o[1], o[2]], [o[3], o[4], o[5]])))
    }
}

fn elem(obj: &InMemDicomObject, t: Tag) -> Option<&InMemElement> {
    obj.get(t)
}

pub(crate) fn get_str(obj: &InMemDicomObject, t: Tag) -> Option<String> {
    let s = elem(obj, t)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

pub(crate) fn get_strs(obj: &InMemDicomObject, t: Tag) -> Vec<String> {
    elem(obj, t).and_then(|e| e.value().primitive()).map(strings).unwrap_or_default()
}

pub(crate) fn get_f64(obj: &InMemDicomObject, t: Tag) -> Option<f64> {
    elem(obj, t)?.to_float64().ok().filter(|v| v.is_finite())
}

pub(crate) fn get_f64s(obj: &InMemDicomObject, t: Tag) -> Option<Vec<f64>> {
    let v = elem(obj, t)?.to_multi_float64().ok()?;
    v.iter().all(|x| x.is_finite()).then_some(v)
}

pub(crate) fn get_i64(obj: &InMemDicomObject, t: Tag) -> Option<i64> {
    let e = elem(obj, t)?;
    e.to_int::<i64>().ok().or_else(|| e.to_float64().ok().filter(|v| v.is_finite()).map(|v| v.round() as i64))
}

fn clean(s: &str) -> String {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_string()
}

/// String values, split on the DICOM multi-value separator and trimmed.
pub fn strings(p: &PrimitiveValue) -> Vec<String> {
    p.to_multi_str().iter().flat_map(|s| s.split('\\').map(clean).collect::<Vec<_>>()).collect()
}

fn arr<const N: usize>(v: Option<Vec<f64>>) -> Option<[f64; N]> {
    let v = v?;
    (v.len() >= N).then(|| {
        let mut a = [0.0; N];
        a.copy_from_slice(&v[..N]);
        a
    })
}

/// First item of a sequence.
fn item(obj: &InMemDicomObject, t: Tag, i: usize) -> Option<&InMemDicomObject> {
    elem(obj, t)?.items()?.get(i)
}

/// Resolve PixelPaddingValue's signedness: in explicit VR files it may be written as US even
/// when pixels are signed (US 63536 with PixelRepresentation 1 means -2000).
pub fn padding_of(obj: &InMemDicomObject, pixel_representation: u16) -> Option<Padding> {
    let resolve = |t: Tag| -> Option<(f64, String)> {
        let e = elem(obj, t)?;
        let v = e.to_float64().ok()?;
        let vr = e.vr().to_string().to_string();
        let raw = format!("{} {}", vr, v);
        // Pixel codes are 16-bit here: a US value >= 32768 with signed pixels is the same bits read signed.
        let v = if pixel_representation == 1 && (32768.0..65536.0).contains(&v) { v - 65536.0 } else { v };
        Some((v, raw))
    };
    let (value, raw) = resolve(tags::PIXEL_PADDING_VALUE)?;
    let range_limit = resolve(tags::PIXEL_PADDING_RANGE_LIMIT).map(|(v, _)| v);
    Some(Padding { value, range_limit, raw: Some(raw) })
}

/// Human-readable name of a transfer syntax UID.
pub fn transfer_syntax_name(uid: &str) -> String {
    let uid = uid.trim_end_matches('\0').trim();
    match dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{} ({})", ts.name(), uid),
        None => format!("unknown ({uid})"),
    }
}

use dicom_encoding::transfer_syntax::TransferSyntaxIndex;

/// Read the slice header(s) of one file: one per frame for enhanced multi-frame images.
pub fn open_header(path: &Path) -> crate::Result<Vec<SliceHeader>> {
    let obj = super::open_until_pixels(path)?;
    let file_len = std::fs::metadata(path).map(|m| m.len()).ok();
    check_pixel_claim(&obj, path, file_len)?;
    let headers = headers_of(&obj, path);
    if let Some(h) = headers.first() {
        check_values(h)?;
    }
    Ok(headers)
}

/// Syntaxes whose pixel data is stored as it is: the file must hold every byte it claims.
fn is_native(ts: &str) -> bool {
    matches!(ts, "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2")
}

/// Refuse pixel claims that cannot be true before anything is allocated for them (a 1 KB file
/// claiming 2^31 frames, or 4000 x 4000 pixels): sizes in checked arithmetic, frames against the
/// file's bytes, the whole image against the memory limit and, stored uncompressed, the file.
fn check_pixel_claim(obj: &DefaultDicomObject, path: &Path, file_len: Option<u64>) -> crate::Result<()> {
    let bad = |msg: String| crate::Error::bad_input(msg).with_path(path).with_hint("the image header is corrupt: re-export the file");
    let (Some(rows), Some(cols)) = (get_i64(obj, tags::ROWS), get_i64(obj, tags::COLUMNS)) else {
        return Ok(());
    };
    if !(0..=65535).contains(&rows) || !(0..=65535).contains(&cols) {
        return Err(bad(format!("Rows {rows} x Columns {cols}: DICOM allows 0 to 65535")));
    }
    let frames = get_i64(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    if frames < 1 || frames > i64::from(i32::MAX) || file_len.is_some_and(|l| frames as u64 > l) {
        return Err(bad(format!("NumberOfFrames {frames} in a file of {} bytes", file_len.unwrap_or(0))));
    }
    // A number tag that is there but no finite number (DS "NaN", "inf", garbage) must not turn
    // into the default silently (a NaN RescaleSlope became 1).
    for (t, name) in [
        (tags::RESCALE_SLOPE, "RescaleSlope"),
        (tags::RESCALE_INTERCEPT, "RescaleIntercept"),
        (tags::PIXEL_SPACING, "PixelSpacing"),
        (tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient"),
        (tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient"),
    ] {
        if get_str(obj, t).is_some() && get_f64s(obj, t).is_none() {
            return Err(bad(format!("{name} '{}' is not a list of finite numbers", get_str(obj, t).unwrap_or_default())));
        }
    }
    let samples = get_i64(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1).clamp(1, 4) as u64;
    let bits = get_i64(obj, tags::BITS_ALLOCATED).unwrap_or(16).clamp(1, 64) as u64;
    crate::io::check_claim(path, "the image", pixel_bytes(rows as u64, cols as u64, samples, bits, frames as u64), None)
}

/// Bytes of pixel data a header claims, in checked arithmetic (`u64::MAX` when it overflows).
fn pixel_bytes(rows: u64, cols: u64, samples: u64, bits_allocated: u64, frames: u64) -> u64 {
    [cols, samples.max(1), bits_allocated.clamp(1, 64).div_ceil(8), frames]
        .iter()
        .try_fold(rows, |a, &b| a.checked_mul(b))
        .unwrap_or(u64::MAX)
}

impl SliceHeader {
    /// Bytes of pixel data the header claims for its whole file.
    fn claimed_bytes(&self) -> u64 {
        let [r, c, s, b, f] = [self.rows, self.columns, self.samples_per_pixel.into(), self.bits_allocated.into(), self.frames_in_file];
        pixel_bytes(r.into(), c.into(), s.into(), b.into(), f.into())
    }

    /// Before pixels are allocated for this slice: stored uncompressed, its file must hold every
    /// byte the header claims (three tiny files claiming 4000 x 4000 asked for gigabytes).
    pub fn check_pixels_fit(&self) -> crate::Result<()> {
        let len = std::fs::metadata(&self.path).map(|m| m.len()).ok();
        crate::io::check_claim(&self.path, "the image", self.claimed_bytes(), len.filter(|_| is_native(&self.transfer_syntax)))
    }
}

/// Values that would turn into a wrong or empty volume without a word: non-finite or absurd
/// spacing, positions, orientation and rescale. Absent tags are not judged here.
fn check_values(h: &SliceHeader) -> crate::Result<()> {
    let bad = |msg: String| crate::Error::bad_input(msg).with_path(&h.path).with_hint("the image header is corrupt: re-export the file");
    if let Some(s) = h.pixel_spacing {
        if s.iter().any(|v| !v.is_finite() || *v <= 0.0 || *v > 1000.0) {
            return Err(bad(format!("PixelSpacing {s:?}: each must be a positive number of mm (at most 1000)")));
        }
    }
    if let Some(p) = h.position {
        if p.iter().any(|v| !v.is_finite() || v.abs() > 1e6) {
            return Err(bad(format!("ImagePositionPatient {p:?}: coordinates must be finite mm within a kilometre")));
        }
    }
    if let Some(o) = h.orientation {
        let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
        let (nr, nc) = (crate::geometry::norm(r), crate::geometry::norm(c));
        let cos = crate::geometry::dot(r, c) / (nr * nc);
        if !(0.9..=1.1).contains(&nr) || !(0.9..=1.1).contains(&nc) || !cos.is_finite() || cos.abs() > 0.01 {
            return Err(bad(format!("ImageOrientationPatient {o:?}: rows and columns must be orthogonal unit vectors")));
        }
    }
    let r = h.rescale;
    if !(r.slope.is_finite() && r.slope != 0.0 && r.slope.abs() <= 1e4 && r.intercept.is_finite() && r.intercept.abs() <= 1e7) {
        return Err(bad(format!("RescaleSlope {} / RescaleIntercept {}: not a usable linear rescale", r.slope, r.intercept)));
    }
    Ok(())
}

/// Slice headers from an opened object.
pub fn headers_of(obj: &DefaultDicomObject, path: &Path) -> Vec<SliceHeader> {
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let sop_class =
        get_str(obj, tags::SOP_CLASS_UID).unwrap_or_else(|| obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string());
    let pixel_representation = get_i64(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) as u16;
    let bits_stored = get_i64(obj, tags::BITS_STORED).unwrap_or(0) as u16;
    let frames = get_i64(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32;
    let rescale_slope = get_f64(obj, tags::RESCALE_SLOPE);
    let rescale_inter = get_f64(obj, tags::RESCALE_INTERCEPT);
    let window = match (get_f64s(obj, tags::WINDOW_CENTER), get_f64s(obj, tags::WINDOW_WIDTH)) {
        (Some(c), Some(w)) if !c.is_empty() && !w.is_empty() => Some([c[0], w[0]]),
        _ => None,
    };
    let base = SliceHeader {
        path: path.to_path_buf(),
        frame: 0,
        frames_in_file: frames,
        sop_class_uid: sop_class,
        sop_instance_uid: get_str(obj, tags::SOP_INSTANCE_UID),
        study_instance_uid: get_str(obj, tags::STUDY_INSTANCE_UID),
        study_date: get_str(obj, tags::STUDY_DATE),
        series_instance_uid: get_str(obj, tags::SERIES_INSTANCE_UID),
        series_number: get_i64(obj, tags::SERIES_NUMBER),
        series_description: get_str(obj, tags::SERIES_DESCRIPTION),
        patient_id: get_str(obj, tags::PATIENT_ID),
        modality: get_str(obj, tags::MODALITY),
        image_type: get_strs(obj, tags::IMAGE_TYPE),
        manufacturer: get_str(obj, tags::MANUFACTURER),
        convolution_kernel: get_str(obj, tags::CONVOLUTION_KERNEL),
        patient_position: get_str(obj, tags::PATIENT_POSITION),
        rows: get_i64(obj, tags::ROWS).unwrap_or(0) as u32,
        columns: get_i64(obj, tags::COLUMNS).unwrap_or(0) as u32,
        samples_per_pixel: get_i64(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
        bits_allocated: get_i64(obj, tags::BITS_ALLOCATED).unwrap_or(0) as u16,
        bits_stored,
        pixel_representation,
        photometric: get_str(obj, tags::PHOTOMETRIC_INTERPRETATION),
        pixel_spacing: arr(get_f64s(obj, tags::PIXEL_SPACING)),
        orientation: arr(get_f64s(obj, tags::IMAGE_ORIENTATION_PATIENT)),
        position: arr(get_f64s(obj, tags::IMAGE_POSITION_PATIENT)),
        slice_location: get_f64(obj, tags::SLICE_LOCATION),
        instance_number: get_i64(obj, tags::INSTANCE_NUMBER),
        slice_thickness: get_f64(obj, tags::SLICE_THICKNESS),
        gantry_tilt_tag: get_f64(obj, tags::GANTRY_DETECTOR_TILT),
        rescale: Rescale { slope: rescale_slope.unwrap_or(1.0), intercept: rescale_inter.unwrap_or(0.0) },
        rescale_present: rescale_slope.is_some() || rescale_inter.is_some(),
        padding: padding_of(obj, pixel_representation),
        window,
        transfer_syntax: ts,
    };
    // Enhanced multi-frame: geometry and rescale live in functional group sequences.
    let shared = item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0);
    let per_frame = elem(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items());
    if shared.is_none() && per_frame.is_none() {
        return vec![base];
    }
    (0..frames)
        .map(|f| {
            let pf = per_frame.and_then(|items| items.get(f as usize));
            let pick = |seq: Tag| pf.and_then(|g| item(g, seq, 0)).or_else(|| shared.and_then(|g| item(g, seq, 0)));
            let mut h = base.clone();
            h.frame = f;
            if let Some(m) = pick(tags::PIXEL_MEASURES_SEQUENCE) {
                h.pixel_spacing = arr(get_f64s(m, tags::PIXEL_SPACING)).or(h.pixel_spacing);
                h.slice_thickness = get_f64(m, tags::SLICE_THICKNESS).or(h.slice_thickness);
            }
            if let Some(o) = pick(tags::PLANE_ORIENTATION_SEQUENCE) {
                h.orientation = arr(get_f64s(o, tags::IMAGE_ORIENTATION_PATIENT)).or(h.orientation);
            }
            if let Some(p) = pick(tags::PLANE_POSITION_SEQUENCE) {
                h.position = arr(get_f64s(p, tags::IMAGE_POSITION_PATIENT)).or(h.position);
            }
            if let Some(t) = pick(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
                let s = get_f64(t, tags::RESCALE_SLOPE);
                let i = get_f64(t, tags::RESCALE_INTERCEPT);
                if s.is_some() || i.is_some() {
                    h.rescale = Rescale { slope: s.unwrap_or(1.0), intercept: i.unwrap_or(0.0) };
                    h.rescale_present = true;
                }
            }
            if let Some(fc) = pick(tags::FRAME_CONTENT_SEQUENCE) {
                h.instance_number = get_i64(fc, tags::IN_STACK_POSITION_NUMBER).or(h.instance_number);
            }
            h
        })
        .collect()
}
