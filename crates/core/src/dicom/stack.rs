//! From files to one volume: scan headers in parallel, pick a series, order it, decode the
//! pixels in parallel straight into the volume, then make the grid regular (gaps) and
//! orthogonal (gantry tilt) when asked.

use super::header::{SliceHeader, open_header};
use super::series::{OrderMethod, Ordered, Series};
use crate::error::{Error, Result};
use crate::geometry::{Geometry, cross, dot, normalize, sub};
use crate::meta::{Kind, Meta, SeriesInfo, SliceSource};
use crate::volume::{Volume, VolumeData, Voxel};
use dicom_core::value::Value;
use ndarray::{Array3, Axis};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Which series to take when several are present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeriesSelect {
    /// The axial CT series with the most slices (ties: lowest series number).
    #[default]
    Largest,
    /// By SeriesInstanceUID.
    Uid(String),
    /// By SeriesNumber.
    Number(i64),
}

impl SeriesSelect {
    pub fn parse(s: &str) -> SeriesSelect {
        if s == "largest" {
            SeriesSelect::Largest
        } else if let Ok(n) = s.parse::<i64>() {
            SeriesSelect::Number(n)
        } else {
            SeriesSelect::Uid(s.to_string())
        }
    }
}

/// What to do with irregular spacing or missing slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GapPolicy {
    /// Refuse the series.
    Error,
    /// Stack as-is with the median spacing (positions in the sidecar tell the truth).
    Keep,
    /// Interpolate onto an equidistant grid at the median spacing (like dcm2niix's `_Eq`).
    #[default]
    Resample,
}

/// What to do with a gantry tilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TiltPolicy {
    /// Shift each slice in-plane onto an orthogonal grid (like dcm2niix's `_Tilt`).
    #[default]
    Correct,
    /// Keep the voxels; write the sheared geometry.
    Keep,
}

#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    pub select: SeriesSelect,
    pub on_gap: GapPolicy,
    pub tilt: TiltPolicy,
}

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

/// The stacked volume and the story of how it was made.
#[derive(Debug)]
pub struct Stacked {
    pub volume: Volume,
    /// Human-readable notes: what was chosen and why, what was fixed.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Pick the series to stack, explaining the choice.
pub fn select_series(series: &[Series], select: &SeriesSelect) -> Result<(usize, String)> {
    let usable: Vec<usize> = (0..series.len()).filter(|&i| series[i].rejection().is_none()).collect();
    let describe = |s: &Series| {
        format!(
            "series {} #{} '{}' ({} slices)",
            s.uid(),
            s.first().series_number.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            s.first().series_description.clone().unwrap_or_default(),
            s.slices.len()
        )
    };
    match select {
        SeriesSelect::Largest => {
            let best = usable.iter().copied().max_by_key(|&i| {
                (series[i].is_ct(), series[i].is_axial(), series[i].slices.len(), std::cmp::Reverse(series[i].first().series_number))
            });
            match best {
                Some(i) => {
                    let why = if usable.len() == 1 {
                        "the only usable series".to_string()
                    } else {
                        format!("the largest axial CT series of {} candidates", usable.len())
                    };
                    Ok((i, format!("using {}: {}", describe(&series[i]), why)))
                }
                None => {
                    let reasons: Vec<String> =
                        series.iter().map(|s| format!("{}: {}", describe(s), s.rejection().unwrap_or_default())).collect();
                    Err(Error::empty(if series.is_empty() {
                        "no DICOM images found".to_string()
                    } else {
                        format!("no usable CT series among {}: {}", series.len(), reasons.join("; "))
                    })
                    .with_hint("point at the folder of one CT series; `dcm-inspect --series DIR` lists what is there"))
                }
            }
        }
        SeriesSelect::Uid(uid) => series
            .iter()
            .position(|s| &s.uid() == uid)
            .map(|i| (i, format!("using {}: asked for by UID", describe(&series[i]))))
            .ok_or_else(|| {
                Error::empty(format!("no series with SeriesInstanceUID {uid}")).with_hint("list the series with `dcm-stack --list DIR`")
            }),
        SeriesSelect::Number(n) => {
            let matching: Vec<usize> = (0..series.len()).filter(|&i| series[i].first().series_number == Some(*n)).collect();
            let i = matching.iter().copied().find(|&i| series[i].rejection().is_none()).or(matching.first().copied());
            i.map(|i| (i, format!("using {}: asked for by number", describe(&series[i])))).ok_or_else(|| {
                Error::empty(format!("no series with SeriesNumber {n}")).with_hint("list the series with `dcm-stack --list DIR`")
            })
        }
    }
}

/// Stack one series into a volume of stored values (or float real values when the rescale varies).
pub fn stack_series(series: &Series, opts: &StackOptions) -> Result<Stacked> {
    if let Some(why) = series.rejection() {
        return Err(Error::bad_input(format!("series {} cannot be stacked: {why}", series.uid()))
            .with_path(&series.first().path)
            .with_hint("choose another series with --series; `dcm-stack --list DIR` shows them"));
    }
    let ordered = series.order()?;
    let mut notes = Vec::new();
    let mut warnings = ordered.warnings.clone();
    check_consistent(&ordered)?;
    let first = &ordered.slices[0];
    let ps = first.pixel_spacing.ok_or_else(|| {
        Error::bad_input("PixelSpacing is missing")
            .with_path(&first.path)
            .with_hint("without PixelSpacing the voxel size is unknown; re-export the series with its geometry tags")
    })?;
    if !ordered.spacing.regular {
        let msg = format!(
            "irregular slice spacing {:.3}..{:.3} mm (median {:.3} mm) at {} place(s), first after slice {} ({:.2} -> {:.2} mm)",
            ordered.spacing.min,
            ordered.spacing.max,
            ordered.spacing.median,
            ordered.gaps.len(),
            ordered.gaps.first().map(|g| g.after_slice).unwrap_or(0),
            ordered.gaps.first().map(|g| g.from_mm).unwrap_or(0.0),
            ordered.gaps.first().map(|g| g.to_mm).unwrap_or(0.0)
        );
        if opts.on_gap == GapPolicy::Error {
            return Err(Error::bad_input(msg)
                .with_path(&first.path)
                .with_hint("use --on-gap resample to interpolate onto an equidistant grid, or --on-gap keep"));
        }
        warnings.push(msg);
    }

    // Decode into the stored type chosen from the headers.
    let padding = first.padding.clone();
    let rescale_uniform = ordered.slices.iter().all(|s| s.rescale == first.rescale);
    let signed = first.pixel_representation == 1;
    let bits = first.bits_stored.max(1);
    let data = match (signed, bits) {
        (true, b) if b <= 16 => VolumeData::I16(decode_all::<i16>(&ordered)?),
        (false, b) if b <= 15 => VolumeData::I16(decode_all::<i16>(&ordered)?),
        (false, 16) => VolumeData::U16(decode_all::<u16>(&ordered)?),
        _ => VolumeData::I32(decode_all::<i32>(&ordered)?),
    };
    let mut meta = Meta { kind: Kind::Stored, padding: padding.clone(), window: first.window, ..Meta::default() };
    let mut data = if rescale_uniform {
        meta.rescale = Some(first.rescale);
        data
    } else {
        notes.push("RescaleSlope/Intercept vary per slice: writing float32 real values; padding voxels become NaN".into());
        meta.kind = Kind::Hu;
        meta.extra.insert("padding_as_nan".into(), serde_json::Value::Bool(true));
        VolumeData::F32(per_slice_real(&data, &ordered, padding.as_ref()))
    };

    // Geometry.
    let o = first.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let row = normalize([o[0], o[1], o[2]]);
    let col = normalize([o[3], o[4], o[5]]);
    let normal = normalize(cross(row, col));
    let origin = first.position.unwrap_or([0.0; 3]);
    let (dx, dy) = (ps[1], ps[0]);
    let mut positions = ordered.positions.clone();
    let tilted = ordered.method == OrderMethod::Position && ordered.tilt_deg > 0.01;
    let mut slice_dir = normal;
    if tilted {
        match opts.tilt {
            TiltPolicy::Correct => {
                let fill = fill_value(&data, padding.as_ref(), &meta);
                data = correct_tilt(&data, &ordered, row, col, dx, dy, fill, padding.as_ref());
                notes.push(format!("gantry tilt {:.2} deg corrected: slices shifted in-plane onto an orthogonal grid", ordered.tilt_deg));
            }
            TiltPolicy::Keep => {
                let last = ordered.slices.last().and_then(|s| s.position).unwrap_or(origin);
                slice_dir = normalize(sub(last, origin));
                // Positions along the sheared axis: scale so that index k lands on slice k.
                let c = dot(slice_dir, normal);
                positions = positions.iter().map(|p| p / c).collect();
                notes.push(format!("gantry tilt {:.2} deg kept: the geometry is sheared", ordered.tilt_deg));
            }
        }
    }
    let mut dz = ordered.spacing.median;
    if tilted && opts.tilt == TiltPolicy::Keep {
        dz /= dot(slice_dir, normal);
    }
    if !ordered.spacing.regular && opts.on_gap == GapPolicy::Resample {
        check_gap_fill(&ordered, &positions, dz, &data)?;
        let (resampled, n) = resample_slices(&data, &positions, dz, padding.as_ref(), &meta);
        notes.push(format!("resampled {} slices onto {} equidistant slices at {:.4} mm", positions.len(), n, dz));
        data = resampled;
    }
    let geometry = Geometry { spacing: [dx, dy, dz], origin, direction: [row, col, slice_dir] };

    meta.series = Some(SeriesInfo {
        patient_id: first.patient_id.clone(),
        study_instance_uid: first.study_instance_uid.clone(),
        series_instance_uid: first.series_instance_uid.clone(),
        series_number: first.series_number,
        series_description: first.series_description.clone(),
        modality: first.modality.clone(),
        manufacturer: first.manufacturer.clone(),
        convolution_kernel: first.convolution_kernel.clone(),
        slice_thickness_tag: first.slice_thickness,
        measured_slice_spacing: Some(ordered.spacing.median),
        gantry_tilt_deg: Some(ordered.tilt_deg),
        patient_position: first.patient_position.clone(),
        transfer_syntax: Some(super::header::transfer_syntax_name(&first.transfer_syntax)),
    });
    meta.slices = ordered
        .slices
        .iter()
        .map(|s| SliceSource {
            file: s.path.display().to_string() + &if s.frames_in_file > 1 { format!("#frame{}", s.frame) } else { String::new() },
            sop_instance_uid: s.sop_instance_uid.clone(),
            instance_number: s.instance_number,
            position: s.position.unwrap_or_default(),
            rescale: s.rescale,
        })
        .collect();
    if !ordered.gaps.is_empty() {
        meta.extra.insert("gaps".into(), serde_json::to_value(&ordered.gaps).unwrap_or_default());
    }
    if let (Some(th), sp) = (first.slice_thickness, ordered.spacing.median) {
        if (th - sp).abs() > 0.01 * sp.max(th) {
            notes.push(format!("SliceThickness tag {th} mm differs from the measured slice spacing {sp:.4} mm: using the spacing"));
        }
    }
    Ok(Stacked { volume: Volume { data, geometry, meta }, notes, warnings })
}

/// Slices of one volume must share size and orientation.
fn check_consistent(o: &Ordered) -> Result<()> {
    let f = &o.slices[0];
    for s in &o.slices[1..] {
        if (s.rows, s.columns) != (f.rows, f.columns) {
            return Err(Error::bad_input(format!(
                "slice is {}x{} but the series' first slice is {}x{}",
                s.rows, s.columns, f.rows, f.columns
            ))
            .with_path(&s.path)
            .with_hint("the folder mixes images of different sizes in one series; remove the odd file"));
        }
        if s.pixel_spacing != f.pixel_spacing {
            return Err(Error::bad_input(format!(
                "PixelSpacing {:?} differs from the first slice's {:?}",
                s.pixel_spacing, f.pixel_spacing
            ))
            .with_path(&s.path)
            .with_hint("slices of one volume must share the pixel spacing; remove the odd file"));
        }
        if (s.pixel_representation, s.bits_stored) != (f.pixel_representation, f.bits_stored) {
            return Err(Error::bad_input("pixel format (PixelRepresentation/BitsStored) differs from the first slice's")
                .with_path(&s.path)
                .with_hint("remove the odd file from the folder"));
        }
    }
    Ok(())
}

/// Decode every slice's stored values (parallel) into one `[z, y, x]` array.
fn decode_all<T: Voxel>(o: &Ordered) -> Result<Array3<T>> {
    let f = &o.slices[0];
    let (nz, ny, nx) = (o.slices.len(), f.rows as usize, f.columns as usize);
    let bytes = [ny as u64, nx as u64, std::mem::size_of::<T>() as u64].iter().try_fold(nz as u64, |a, &b| a.checked_mul(b));
    crate::io::check_claim(&f.path, "the series", bytes.unwrap_or(u64::MAX), None)?;
    for h in &o.slices {
        h.check_pixels_fit()?;
    }
    let mut vol = Array3::<T>::default((nz, ny, nx));
    let _progress = crate::progress::task("decoding slices", nz as u64);
    vol.axis_iter_mut(Axis(0)).into_par_iter().zip(o.slices.par_iter()).try_for_each(|(mut slab, h)| -> Result<()> {
        let out = slab.as_slice_mut().expect("standard layout");
        decode_stored_into(h, out)?;
        crate::progress::advance(1);
        Ok(())
    })?;
    Ok(vol)
}

/// Stored values of one slice (masked to BitsStored and sign-extended), as i32.
pub fn decode_stored(h: &SliceHeader) -> Result<Vec<i32>> {
    let mut out = vec![0i32; h.rows as usize * h.columns as usize];
    decode_stored_into(h, &mut out)?;
    Ok(out)
}

/// Decode one slice's stored values (masked to BitsStored and sign-extended) straight into `out`
/// (Rows x Columns, row-major).
pub fn decode_stored_into<T: Voxel>(h: &SliceHeader, out: &mut [T]) -> Result<()> {
    // The decoder asserts on some impossible pixel formats: refuse them with a message first.
    // (Found by the byte-mutation tests: BitsStored 0 panicked inside dicom-pixeldata.)
    if !matches!(h.bits_allocated, 8 | 16 | 32) || h.bits_stored == 0 || h.bits_stored > h.bits_allocated || h.rows == 0 || h.columns == 0 {
        return Err(Error::bad_input(format!(
            "impossible pixel format: Rows {}, Columns {}, BitsAllocated {}, BitsStored {}",
            h.rows, h.columns, h.bits_allocated, h.bits_stored
        ))
        .with_path(&h.path)
        .with_hint("the image header is corrupt: re-export the file"));
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_checked(h, out))).map_err(|_| {
        Error::bad_input("the pixel decoder failed on this file")
            .with_path(&h.path)
            .with_hint("the pixel data is corrupt: re-export the file")
    })?
}

fn decode_checked<T: Voxel>(h: &SliceHeader, out: &mut [T]) -> Result<()> {
    use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
    let obj = super::open_full(&h.path)?;
    let ts = &h.transfer_syntax;
    // Lossless JPEG, one 16-bit frame per file (most archived CT): our single-pass decoder, which
    // costs half of the general one; whatever it leaves goes to the general path below.
    let lossless = matches!(ts.as_str(), "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70");
    if lossless && h.frames_in_file == 1 && h.samples_per_pixel == 1 && h.bits_allocated == 16 {
        if let Ok(Value::PixelSequence(ps)) = obj.element(dicom_dictionary_std::tags::PIXEL_DATA).map(|e| e.value()) {
            let frags = ps.fragments();
            let joined;
            let stream: &[u8] = if frags.len() == 1 {
                &frags[0]
            } else {
                joined = frags.concat();
                &joined
            };
            let mut samples = vec![0u16; out.len()];
            if super::ljpeg::decode(stream, h.rows as usize, h.columns as usize, &mut samples).is_ok() {
                store_samples(samples.into_iter().map(u32::from), h.bits_stored as u32, h.pixel_representation == 1, out);
                return Ok(());
            }
        }
    }
    if let Ok(Value::PixelSequence(ps)) = obj.element(dicom_dictionary_std::tags::PIXEL_DATA).map(|e| e.value()) {
        super::codestream::check_fragments(h, ps.fragments())?;
    }
    let decoded = if h.frames_in_file > 1 { obj.decode_pixel_data_frame(h.frame) } else { obj.decode_pixel_data() }.map_err(|e| {
        let msg = super::error_chain(&e);
        let ts_name = super::header::transfer_syntax_name(ts);
        if msg.contains("unsupported") || msg.contains("Unsupported") || msg.contains("not supported") {
            Error::unsupported(format!("cannot decode pixel data in transfer syntax {ts_name}: {msg}"))
                .with_path(&h.path)
                .with_hint("transcode the file to explicit VR little endian (e.g. `gdcmconv --raw` or `dcmdjpeg`) and try again")
        } else {
            Error::bad_input(format!("corrupt pixel data ({ts_name}): {msg}"))
                .with_path(&h.path)
                .with_hint("the file is damaged: re-copy or re-export it")
        }
    })?;
    let mismatch = |n: usize| {
        Error::bad_input(format!("decoded {} pixels, expected {}x{}", n, h.rows, h.columns))
            .with_path(&h.path)
            .with_hint("the pixel data does not match Rows/Columns: the file is damaged")
    };
    // The common case (one sample of 8 or 16 bits, little endian) straight from the decoded
    // bytes: dicom-pixeldata's general conversion costs as much as the JPEG decoding itself.
    let bytes = decoded.bits_allocated().div_ceil(8) as usize;
    let big_endian = h.transfer_syntax == "1.2.840.10008.1.2.2";
    if decoded.samples_per_pixel() == 1 && matches!(bytes, 1 | 2) && !big_endian {
        let raw = decoded.frame_data(0).map_err(|_| mismatch(decoded.data().len() / bytes))?;
        if raw.len() != out.len() * bytes {
            return Err(mismatch(raw.len() / bytes));
        }
        let bits = decoded.bits_stored().clamp(1, 8 * bytes as u16) as u32;
        let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
        if bytes == 2 {
            store_samples(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32), bits, signed, out);
        } else {
            store_samples(raw.iter().map(|&b| b as u32), bits, signed, out);
        }
        return Ok(());
    }
    let opts =
        ConvertOptions::new().with_modality_lut(ModalityLutOption::Override(dicom_pixeldata::Rescale { slope: 1.0, intercept: 0.0 }));
    let values = decoded.to_vec_frame_with_options::<i32>(0, &opts).map_err(|e| {
        Error::bad_input(format!("cannot convert pixel data: {}", super::error_chain(&e)))
            .with_path(&h.path)
            .with_hint("the file is damaged or uses an unusual pixel format")
    })?;
    if values.len() != out.len() {
        return Err(mismatch(values.len()));
    }
    for (d, v) in out.iter_mut().zip(values) {
        *d = T::from_i32(v);
    }
    Ok(())
}

/// Raw samples to stored values: the low `bits` bits, sign-extended when the pixels are signed.
fn store_samples<T: Voxel>(samples: impl Iterator<Item = u32>, bits: u32, signed: bool, out: &mut [T]) {
    let shift = 32 - bits.clamp(1, 32);
    for (d, v) in out.iter_mut().zip(samples) {
        *d = T::from_i32(if signed { ((v << shift) as i32) >> shift } else { (v << shift >> shift) as i32 });
    }
}

/// Per-slice rescale to real values (float), padding -> NaN.
fn per_slice_real(data: &VolumeData, o: &Ordered, padding: Option<&crate::meta::Padding>) -> Array3<f32> {
    let stored = data.to_f32(None);
    let mut out = stored;
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(o.slices.par_iter()).for_each(|(mut slab, h)| {
        slab.mapv_inplace(|v| if padding.is_some_and(|p| p.contains(v as f64)) { f32::NAN } else { h.rescale.apply(v as f64) as f32 });
    });
    out
}

/// What to put where no data exists: the padding value, else the smallest value present.
fn fill_value(data: &VolumeData, padding: Option<&crate::meta::Padding>, meta: &Meta) -> f64 {
    if meta.extra.contains_key("padding_as_nan") {
        return f64::NAN;
    }
    match padding {
        Some(p) => p.value,
        None => data.min_max().map(|m| m.0).unwrap_or(0.0),
    }
}

fn is_pad(v: f64, padding: Option<&crate::meta::Padding>) -> bool {
    v.is_nan() || padding.is_some_and(|p| p.contains(v))
}

/// Shift each slice in-plane so the stack becomes orthogonal (bilinear, padding-aware).
fn correct_tilt(
    data: &VolumeData,
    o: &Ordered,
    row: [f64; 3],
    col: [f64; 3],
    dx: f64,
    dy: f64,
    fill: f64,
    padding: Option<&crate::meta::Padding>,
) -> VolumeData {
    let p0 = o.slices[0].position.unwrap_or_default();
    let shifts: Vec<(f64, f64)> = o
        .slices
        .iter()
        .map(|s| {
            let d = sub(s.position.unwrap_or_default(), p0);
            (dot(d, row) / dx, dot(d, col) / dy)
        })
        .collect();
    crate::with_data!(data, a => {
        let mut out = a.clone();
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
            let src = a.index_axis(Axis(0), k);
            let (sx, sy) = shifts[k];
            let (ny, nx) = (src.shape()[0], src.shape()[1]);
            for j in 0..ny {
                for i in 0..nx {
                    let (x, y) = (i as f64 - sx, j as f64 - sy);
                    slab[[j, i]] = Voxel::from_f64(bilinear(&src, x, y, fill, padding, nx, ny));
                }
            }
        });
        Voxel::wrap(out)
    })
}

fn bilinear<T: Voxel>(
    src: &ndarray::ArrayView2<T>,
    x: f64,
    y: f64,
    fill: f64,
    padding: Option<&crate::meta::Padding>,
    nx: usize,
    ny: usize,
) -> f64 {
    if x < -0.5 || y < -0.5 || x > nx as f64 - 0.5 || y > ny as f64 - 0.5 {
        return fill;
    }
    let x = x.clamp(0.0, (nx - 1) as f64);
    let y = y.clamp(0.0, (ny - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(nx - 1), (y0 + 1).min(ny - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let v = [src[[y0, x0]].to_f64(), src[[y0, x1]].to_f64(), src[[y1, x0]].to_f64(), src[[y1, x1]].to_f64()];
    if v.iter().any(|&q| is_pad(q, padding)) {
        // Never blend padding into tissue: take the nearest sample.
        let (xi, yi) = (if fx < 0.5 { x0 } else { x1 }, if fy < 0.5 { y0 } else { y1 });
        return src[[yi, xi]].to_f64();
    }
    let top = v[0] * (1.0 - fx) + v[1] * fx;
    let bot = v[2] * (1.0 - fx) + v[3] * fx;
    top * (1.0 - fy) + bot * fy
}

/// Before filling gaps: the slices the regular grid would hold, checked against the series (an
/// outlier position, one slice at z = 1e6, asked for 131 GB) and the memory limit.
fn check_gap_fill(ordered: &Ordered, positions: &[f64], dz: f64, data: &VolumeData) -> Result<()> {
    let extent = positions[positions.len() - 1] - positions[0];
    let n = extent / dz + 1.0;
    let have = positions.len() as f64;
    let first = &ordered.slices[0].path;
    if !n.is_finite() || n > 4.0 * have + 16.0 {
        return Err(Error::bad_input(format!(
            "filling the gaps would make {n:.0} slices of {have}: the slices span {extent:.1} mm at {dz:.3} mm spacing"
        ))
        .with_path(first)
        .with_hint("a slice's ImagePositionPatient is wrong or belongs to another scan: remove that file, or pass --on-gap keep"));
    }
    let [_, ny, nx] = data.shape();
    let bytes = (n as u64).saturating_mul((ny * nx * data.dtype().size()) as u64);
    crate::io::check_claim(first, "filling the gaps", bytes, None)
}

/// Linear interpolation along slices onto equidistant positions (padding-aware).
fn resample_slices(
    data: &VolumeData,
    positions: &[f64],
    dz: f64,
    padding: Option<&crate::meta::Padding>,
    _meta: &Meta,
) -> (VolumeData, usize) {
    let p0 = positions[0];
    let extent = positions[positions.len() - 1] - p0;
    let n = (extent / dz).round() as usize + 1;
    let targets: Vec<f64> = (0..n).map(|k| p0 + k as f64 * dz).collect();
    let out = crate::with_data!(data, a => Voxel::wrap(resample_typed(a, positions, &targets, padding)));
    (out, n)
}

fn resample_typed<T: Voxel>(a: &Array3<T>, positions: &[f64], targets: &[f64], padding: Option<&crate::meta::Padding>) -> Array3<T> {
    let (ny, nx) = (a.shape()[1], a.shape()[2]);
    let mut out = Array3::<T>::default((targets.len(), ny, nx));
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(targets.par_iter()).for_each(|(mut slab, &t)| {
        let hi = positions.partition_point(|&p| p < t - 1e-6).min(positions.len() - 1);
        let lo = hi.saturating_sub(1);
        let w = if hi == lo || positions[hi] <= positions[lo] {
            0.0
        } else {
            ((t - positions[lo]) / (positions[hi] - positions[lo])).clamp(0.0, 1.0)
        };
        let (sa, sb) = (a.index_axis(Axis(0), lo), a.index_axis(Axis(0), hi));
        ndarray::Zip::from(&mut slab).and(&sa).and(&sb).for_each(|d, &va, &vb| {
            let (fa, fb) = (va.to_f64(), vb.to_f64());
            let v = if is_pad(fa, padding) || is_pad(fb, padding) { if w < 0.5 { fa } else { fb } } else { fa * (1.0 - w) + fb * w };
            *d = T::from_f64(v);
        });
    });
    out
}

/// Size, format and value statistics of one file's pixel data (`dcm-inspect --pixels`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PixelStats {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub samples_per_pixel: u16,
    pub transfer_syntax: String,
    pub stored_min: f64,
    pub stored_max: f64,
    pub stored_mean: f64,
    pub padding_value: Option<f64>,
    pub padding_pixels: usize,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// Real values (rescale applied) over non-padding pixels.
    pub hu_min: f64,
    pub hu_max: f64,
    pub hu_mean: f64,
}

impl PixelStats {
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("rows             {}", self.rows),
            format!("columns          {}", self.columns),
            format!("frames           {}", self.frames),
            format!(
                "bits             allocated {}, stored {}, {}",
                self.bits_allocated,
                self.bits_stored,
                if self.signed { "signed" } else { "unsigned" }
            ),
            format!("samples/pixel    {}", self.samples_per_pixel),
            format!("transfer syntax  {}", self.transfer_syntax),
            format!("stored           min {} max {} mean {:.3}", self.stored_min, self.stored_max, self.stored_mean),
            format!(
                "padding          {}",
                match self.padding_value {
                    Some(v) => format!("{v}: {} pixel(s)", self.padding_pixels),
                    None => "no PixelPaddingValue".into(),
                }
            ),
            format!("rescale          slope {} intercept {}", self.rescale_slope, self.rescale_intercept),
            format!("HU (no padding)  min {} max {} mean {:.3}", self.hu_min, self.hu_max, self.hu_mean),
        ]
    }
}

/// Decode every frame of one file and summarise it.
pub fn pixel_stats(path: &Path) -> Result<PixelStats> {
    let headers = open_header(path)?;
    let h0 = headers.first().ok_or_else(|| Error::bad_input("no image in this file").with_path(path))?.clone();
    if h0.rows == 0 || h0.columns == 0 {
        return Err(Error::bad_input("this DICOM object has no image (Rows/Columns missing)")
            .with_path(path)
            .with_hint("--pixels needs an image file"));
    }
    h0.check_pixels_fit()?;
    let (mut smin, mut smax, mut ssum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    let (mut hmin, mut hmax, mut hsum, mut hn, mut pad) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize, 0usize);
    for h in &headers {
        for v in decode_stored(h)? {
            let v = v as f64;
            smin = smin.min(v);
            smax = smax.max(v);
            ssum += v;
            n += 1;
            if h.padding.as_ref().is_some_and(|p| p.contains(v)) {
                pad += 1;
            } else {
                let r = h.rescale.apply(v);
                hmin = hmin.min(r);
                hmax = hmax.max(r);
                hsum += r;
                hn += 1;
            }
        }
    }
    Ok(PixelStats {
        rows: h0.rows,
        columns: h0.columns,
        frames: h0.frames_in_file,
        bits_allocated: h0.bits_allocated,
        bits_stored: h0.bits_stored,
        signed: h0.pixel_representation == 1,
        samples_per_pixel: h0.samples_per_pixel,
        transfer_syntax: super::header::transfer_syntax_name(&h0.transfer_syntax),
        stored_min: smin,
        stored_max: smax,
        stored_mean: ssum / n.max(1) as f64,
        padding_value: h0.padding.as_ref().map(|p| p.value),
        padding_pixels: pad,
        rescale_slope: h0.rescale.slope,
        rescale_intercept: h0.rescale.intercept,
        hu_min: hmin,
        hu_max: hmax,
        hu_mean: hsum / hn.max(1) as f64,
    })
}

/// One DICOM file as a volume (its frames as slices): stored values with the rescale, for looking
/// at a single image (`vol-view slice.dcm`).
pub fn file_volume(path: &Path) -> Result<Volume> {
    let headers = open_header(path)?;
    let h = headers.first().ok_or_else(|| Error::bad_input("no image in this file").with_path(path))?;
    if h.rows == 0 || h.columns == 0 || h.samples_per_pixel != 1 {
        return Err(Error::unsupported("not a grayscale image").with_path(path).with_hint("vol-view shows CT images and volumes"));
    }
    let (ny, nx) = (h.rows as usize, h.columns as usize);
    h.check_pixels_fit()?;
    crate::io::check_claim(path, "the image as float32", (headers.len() * ny * nx * 4) as u64, None)?;
    let mut data = Array3::<f32>::zeros((headers.len(), ny, nx));
    for (k, fh) in headers.iter().enumerate() {
        let v = decode_stored(fh)?;
        if v.len() != ny * nx {
            return Err(Error::bad_input("pixel data does not match Rows/Columns").with_path(path));
        }
        for (d, s) in data.index_axis_mut(Axis(0), k).iter_mut().zip(v) {
            *d = fh.rescale.apply(s as f64) as f32;
        }
    }
    let o = h.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let (row, col) = (normalize([o[0], o[1], o[2]]), normalize([o[3], o[4], o[5]]));
    let ps = h.pixel_spacing.unwrap_or([1.0, 1.0]);
    let dz = if headers.len() > 1 {
        match (headers[0].position, headers[1].position) {
            (Some(a), Some(b)) => crate::geometry::norm(sub(b, a)).max(1e-3),
            _ => h.slice_thickness.unwrap_or(1.0),
        }
    } else {
        h.slice_thickness.unwrap_or(1.0)
    };
    let geometry =
        Geometry { spacing: [ps[1], ps[0], dz], origin: h.position.unwrap_or([0.0; 3]), direction: [row, col, normalize(cross(row, col))] };
    let meta =
        Meta { kind: if h.modality.as_deref() == Some("CT") { Kind::Hu } else { Kind::Unknown }, window: h.window, ..Meta::default() };
    Ok(Volume { data: VolumeData::F32(data), geometry, meta })
}
