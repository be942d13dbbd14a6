//! One series to one volume: order it, check it is one volume, decode it (decode.rs), make the
//! grid regular and orthogonal when asked (regrid.rs), and record where every slice came from.
//! Files and the header scan are in files.rs, the series choice in series.rs.

use super::decode::decode_all;
use super::regrid;
use super::series::{OrderMethod, Ordered, Series, SeriesSelect};
use crate::error::{Error, Result};
use crate::geometry::{Geometry, cross, dot, normalize, sub};
use crate::meta::{Kind, Meta, Padding, SeriesInfo, SliceSource};
use crate::volume::{Volume, VolumeData};
use ndarray::{Array3, Axis};
use rayon::prelude::*;

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
    /// Refuse non-axial series (see [`select_series`](super::select_series)).
    pub axial_only: bool,
}

/// The stacked volume and the story of how it was made.
#[derive(Debug)]
pub struct Stacked {
    pub volume: Volume,
    /// Human-readable notes: what was chosen and why, what was fixed.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
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
    if let Some(msg) = irregular_spacing(&ordered) {
        if opts.on_gap == GapPolicy::Error {
            return Err(Error::bad_input(msg)
                .with_path(&first.path)
                .with_hint("use --on-gap resample to interpolate onto an equidistant grid, or --on-gap keep"));
        }
        warnings.push(msg);
    }
    let (mut data, mut meta) = decode_series(&ordered, &mut notes)?;
    let padding = first.padding.clone();

    // Geometry, then the regular grid: tilt corrected (or kept as a shear), gaps filled.
    let o = first.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let row = normalize([o[0], o[1], o[2]]);
    let col = normalize([o[3], o[4], o[5]]);
    let normal = normalize(cross(row, col));
    let origin = first.position.unwrap_or([0.0; 3]);
    let (dx, dy) = (ps[1], ps[0]);
    let mut positions = ordered.positions.clone();
    let mut slice_dir = normal;
    let mut dz = ordered.spacing.median;
    if ordered.method == OrderMethod::Position && ordered.tilt_deg > 0.01 {
        match opts.tilt {
            TiltPolicy::Correct => {
                let fill = regrid::fill_value(&data, padding.as_ref(), &meta);
                data = regrid::correct_tilt(&data, &ordered, row, col, dx, dy, fill, padding.as_ref());
                notes.push(format!("gantry tilt {:.2} deg corrected: slices shifted in-plane onto an orthogonal grid", ordered.tilt_deg));
            }
            TiltPolicy::Keep => {
                let last = ordered.slices.last().and_then(|s| s.position).unwrap_or(origin);
                slice_dir = normalize(sub(last, origin));
                // Positions along the sheared axis: scale so that index k lands on slice k.
                let c = dot(slice_dir, normal);
                positions = positions.iter().map(|p| p / c).collect();
                dz /= c;
                notes.push(format!("gantry tilt {:.2} deg kept: the geometry is sheared", ordered.tilt_deg));
            }
        }
    }
    if !ordered.spacing.regular && opts.on_gap == GapPolicy::Resample {
        regrid::check_gap_fill(&ordered, &positions, dz, &data)?;
        let (resampled, n) = regrid::resample_slices(&data, &positions, dz, padding.as_ref());
        notes.push(format!("resampled {} slices onto {} equidistant slices at {:.4} mm", positions.len(), n, dz));
        data = resampled;
    }
    let geometry = Geometry { spacing: [dx, dy, dz], origin, direction: [row, col, slice_dir] };
    record_sources(&mut meta, &ordered);
    if let (Some(th), sp) = (first.slice_thickness, ordered.spacing.median) {
        if (th - sp).abs() > 0.01 * sp.max(th) {
            notes.push(format!("SliceThickness tag {th} mm differs from the measured slice spacing {sp:.4} mm: using the spacing"));
        }
    }
    Ok(Stacked { volume: Volume { data, geometry, meta }, notes, warnings })
}

/// The warning (or, with `--on-gap error`, the error) for a series whose spacing is irregular.
fn irregular_spacing(ordered: &Ordered) -> Option<String> {
    if ordered.spacing.regular {
        return None;
    }
    let first_gap = ordered.gaps.first();
    Some(format!(
        "irregular slice spacing {:.3}..{:.3} mm (median {:.3} mm) at {} place(s), first after slice {} ({:.2} -> {:.2} mm)",
        ordered.spacing.min,
        ordered.spacing.max,
        ordered.spacing.median,
        ordered.gaps.len(),
        first_gap.map(|g| g.after_slice).unwrap_or(0),
        first_gap.map(|g| g.from_mm).unwrap_or(0.0),
        first_gap.map(|g| g.to_mm).unwrap_or(0.0)
    ))
}

/// Decode into the stored type the headers call for; a rescale that varies per slice gives
/// float real values (padding as NaN) instead.
fn decode_series(ordered: &Ordered, notes: &mut Vec<String>) -> Result<(VolumeData, Meta)> {
    let first = &ordered.slices[0];
    let signed = first.pixel_representation == 1;
    let data = match (signed, first.bits_stored.max(1)) {
        (true, b) if b <= 16 => VolumeData::I16(decode_all::<i16>(ordered)?),
        (false, b) if b <= 15 => VolumeData::I16(decode_all::<i16>(ordered)?),
        (false, 16) => VolumeData::U16(decode_all::<u16>(ordered)?),
        _ => VolumeData::I32(decode_all::<i32>(ordered)?),
    };
    let mut meta = Meta { kind: Kind::Stored, padding: first.padding.clone(), window: first.window, ..Meta::default() };
    if ordered.slices.iter().all(|s| s.rescale == first.rescale) {
        meta.rescale = Some(first.rescale);
        return Ok((data, meta));
    }
    notes.push("RescaleSlope/Intercept vary per slice: writing float32 real values; padding voxels become NaN".into());
    meta.kind = Kind::Hu;
    meta.padding_as_nan = true;
    Ok((VolumeData::F32(per_slice_real(&data, ordered, first.padding.as_ref())), meta))
}

/// The series' identity and each output slice's source file, position and rescale.
fn record_sources(meta: &mut Meta, ordered: &Ordered) {
    let first = &ordered.slices[0];
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

/// Per-slice rescale to real values (float), padding -> NaN.
fn per_slice_real(data: &VolumeData, o: &Ordered, padding: Option<&Padding>) -> Array3<f32> {
    let stored = data.to_f32(None);
    let mut out = stored;
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(o.slices.par_iter()).for_each(|(mut slab, h)| {
        slab.mapv_inplace(|v| if padding.is_some_and(|p| p.contains(v as f64)) { f32::NAN } else { h.rescale.apply(v as f64) as f32 });
    });
    out
}
