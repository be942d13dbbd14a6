//! Grouping slices into series, choosing one, ordering it in space, and measuring what is wrong
//! with it (spacing, gaps, duplicates, tilt) before any pixel is decoded.

use super::header::SliceHeader;
use crate::error::{Error, Result};
use crate::geometry::{Vec3, dot, norm, normalize, sub};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Slices that belong together: same SeriesInstanceUID, orientation and image size.
#[derive(Debug, Clone)]
pub struct Series {
    pub slices: Vec<SliceHeader>,
}

/// Group slice headers into series. Empty UIDs still group (by orientation and size).
pub fn group_series(headers: Vec<SliceHeader>) -> Vec<Series> {
    let mut groups: BTreeMap<(String, String, u32, u32), Vec<SliceHeader>> = BTreeMap::new();
    for h in headers {
        let orient = h.orientation.map(|o| o.iter().map(|v| format!("{:.2}", v + 0.0)).collect::<Vec<_>>().join(",")).unwrap_or_default();
        let key = (h.series_instance_uid.clone().unwrap_or_default(), orient, h.rows, h.columns);
        groups.entry(key).or_default().push(h);
    }
    let mut out: Vec<Series> = groups.into_values().map(|slices| Series { slices }).collect();
    // Stable, readable order: by series number, then UID.
    out.sort_by_key(|s| (s.first().series_number, s.uid()));
    out
}

/// How the slices were put in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderMethod {
    /// ImagePositionPatient projected on the slice normal (the right way).
    Position,
    /// SliceLocation (fallback when positions are missing).
    SliceLocation,
    /// InstanceNumber (last resort).
    InstanceNumber,
}

/// A run of missing or irregular spacing between two consecutive slices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    /// Index (in sorted order) of the slice before the gap.
    pub after_slice: usize,
    /// Positions along the normal (mm) of the two slices around the gap.
    pub from_mm: f64,
    pub to_mm: f64,
    /// About how many slices are missing (0 for a merely irregular step).
    pub missing_slices: usize,
}

/// A series in spatial order with its measured geometry.
#[derive(Debug, Clone)]
pub struct Ordered {
    pub slices: Vec<SliceHeader>,
    /// Position of each slice along `normal` (mm).
    pub positions: Vec<f64>,
    pub normal: Vec3,
    pub method: OrderMethod,
    /// Files dropped because another slice had the same position.
    pub duplicates: Vec<PathBuf>,
    pub spacing: SpacingStats,
    pub gaps: Vec<Gap>,
    /// Angle (degrees) between the slice normal and the direction the slices advance along.
    pub tilt_deg: f64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpacingStats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// All steps within tolerance of the median.
    pub regular: bool,
}

/// Relative tolerance for "regular" slice spacing.
const SPACING_TOL: f64 = 0.02;

impl Series {
    pub fn first(&self) -> &SliceHeader {
        &self.slices[0]
    }
    pub fn uid(&self) -> String {
        self.first().series_instance_uid.clone().unwrap_or_default()
    }
    pub fn is_localizer(&self) -> bool {
        self.slices.iter().any(|s| s.is_localizer())
    }
    pub fn is_secondary_capture(&self) -> bool {
        self.first().is_secondary_capture()
    }
    pub fn is_image(&self) -> bool {
        self.first().rows > 0 && self.first().columns > 0
    }
    pub fn is_ct(&self) -> bool {
        self.first().modality.as_deref() == Some("CT") || self.first().sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.2")
    }
    /// Slice normal within 45 degrees of the patient's head-feet axis.
    pub fn is_axial(&self) -> bool {
        self.first().normal().is_some_and(|n| n[2].abs() > std::f64::consts::FRAC_1_SQRT_2)
    }
    /// Why this series cannot be a CT volume, if it cannot.
    pub fn rejection(&self) -> Option<String> {
        let f = self.first();
        if !self.is_image() {
            return Some("not an image (no Rows/Columns)".into());
        }
        if self.is_localizer() {
            return Some("localizer (ImageType LOCALIZER)".into());
        }
        if self.is_secondary_capture() {
            return Some("secondary capture".into());
        }
        if f.samples_per_pixel != 1 {
            return Some(format!("colour image ({} samples per pixel)", f.samples_per_pixel));
        }
        if self.slices.len() < 2 {
            return Some("a single slice is not a volume".into());
        }
        None
    }

    /// Order the slices in space and measure spacing, gaps, duplicates and tilt.
    pub fn order(&self) -> Result<Ordered> {
        let mut warnings = Vec::new();
        let have_pos = self.slices.iter().all(|s| s.position.is_some() && s.orientation.is_some());
        let normal = self.first().normal().unwrap_or([0.0, 0.0, 1.0]);
        let (method, keyed): (OrderMethod, Vec<(f64, &SliceHeader)>) = if have_pos {
            (OrderMethod::Position, self.slices.iter().map(|s| (dot(s.position.unwrap_or_default(), normal), s)).collect())
        } else if self.slices.iter().all(|s| s.slice_location.is_some()) {
            warnings.push("ImagePositionPatient missing: ordering by SliceLocation".to_string());
            (OrderMethod::SliceLocation, self.slices.iter().map(|s| (s.slice_location.unwrap_or_default(), s)).collect())
        } else if self.slices.iter().all(|s| s.instance_number.is_some()) {
            warnings.push(
                "ImagePositionPatient and SliceLocation missing: ordering by InstanceNumber; spacing taken from SliceThickness".to_string(),
            );
            let th = self.first().slice_thickness.unwrap_or(1.0);
            (OrderMethod::InstanceNumber, self.slices.iter().map(|s| (s.instance_number.unwrap_or_default() as f64 * th, s)).collect())
        } else {
            return Err(Error::bad_input(format!(
                "series {} has slices without ImagePositionPatient, SliceLocation or InstanceNumber: nothing orders them",
                self.uid()
            ))
            .with_path(&self.first().path)
            .with_hint("re-export the series with its geometry tags; ctprep will not guess slice order"));
        };
        let mut keyed = keyed;
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.instance_number.cmp(&b.1.instance_number)).then(a.1.path.cmp(&b.1.path)));
        let mut slices = Vec::with_capacity(keyed.len());
        let mut positions: Vec<f64> = Vec::with_capacity(keyed.len());
        let mut duplicates = Vec::new();
        for (p, s) in keyed {
            if let Some(&last) = positions.last() {
                if (p - last).abs() < 1e-3 {
                    duplicates.push(s.path.clone());
                    continue;
                }
            }
            positions.push(p);
            slices.push(s.clone());
        }
        if !duplicates.is_empty() {
            warnings.push(format!(
                "{} slice(s) at an already-used position were dropped (duplicates), e.g. {}",
                duplicates.len(),
                duplicates[0].display()
            ));
        }
        if slices.len() < 2 {
            return Err(Error::bad_input(format!("series {} has fewer than 2 distinct slice positions", self.uid()))
                .with_path(&self.first().path)
                .with_hint("a volume needs at least two slices; check that the whole series was exported"));
        }
        let steps: Vec<f64> = positions.windows(2).map(|w| w[1] - w[0]).collect();
        let mut sorted = steps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        let tol = SPACING_TOL * median;
        let regular = steps.iter().all(|s| (s - median).abs() <= tol);
        let gaps: Vec<Gap> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| (*s - median).abs() > tol)
            .map(|(i, s)| Gap {
                after_slice: i,
                from_mm: positions[i],
                to_mm: positions[i + 1],
                missing_slices: ((s / median).round() as usize).saturating_sub(1),
            })
            .collect();
        // Tilt: angle between the normal and the first->last position vector.
        let tilt_deg = match (method, slices.first().and_then(|s| s.position), slices.last().and_then(|s| s.position)) {
            (OrderMethod::Position, Some(a), Some(b)) => {
                let step = sub(b, a);
                if norm(step) > 0.0 { dot(normalize(step), normal).clamp(-1.0, 1.0).acos().to_degrees() } else { 0.0 }
            }
            _ => 0.0,
        };
        Ok(Ordered {
            slices,
            positions,
            normal,
            method,
            duplicates,
            spacing: SpacingStats { min, median, max, regular },
            gaps,
            tilt_deg,
            warnings,
        })
    }

    /// The pre-flight report for this series (no pixel data read).
    pub fn report(&self) -> SeriesReport {
        let f = self.first();
        let ordered = self.order();
        let mut files: Vec<&PathBuf> = self.slices.iter().map(|s| &s.path).collect();
        files.dedup();
        let mut ts: Vec<String> = self.slices.iter().map(|s| super::header::transfer_syntax_name(&s.transfer_syntax)).collect();
        ts.sort();
        ts.dedup();
        let rescale_varies = self.slices.iter().any(|s| s.rescale != f.rescale);
        let mut warnings = Vec::new();
        if let Some(why) = self.rejection() {
            warnings.push(format!("not a CT volume: {why}"));
        }
        let (spacing, gaps, duplicates, tilt, method) = match &ordered {
            Ok(o) => {
                warnings.extend(o.warnings.iter().cloned());
                if !o.spacing.regular {
                    warnings.push(format!(
                        "irregular slice spacing {:.3}..{:.3} mm (median {:.3}); {} gap(s)",
                        o.spacing.min,
                        o.spacing.max,
                        o.spacing.median,
                        o.gaps.len()
                    ));
                }
                if o.tilt_deg > 0.01 {
                    warnings.push(format!("gantry tilt {:.2} deg: slices are sheared", o.tilt_deg));
                }
                (Some(o.spacing), o.gaps.clone(), o.duplicates.len(), Some(o.tilt_deg), Some(o.method))
            }
            Err(e) => {
                if self.rejection().is_none() {
                    warnings.push(e.message.clone());
                }
                (None, Vec::new(), 0, None, None)
            }
        };
        if let (Some(th), Some(sp)) = (f.slice_thickness, spacing) {
            if (th - sp.median).abs() > 0.01 * sp.median.max(th) {
                warnings.push(format!("SliceThickness {th} differs from the measured spacing {:.4} mm (the spacing is used)", sp.median));
            }
        }
        if rescale_varies {
            warnings.push("RescaleSlope/Intercept vary between slices".to_string());
        }
        SeriesReport {
            series_instance_uid: f.series_instance_uid.clone(),
            series_number: f.series_number,
            series_description: f.series_description.clone(),
            modality: f.modality.clone(),
            image_type: f.image_type.join("\\"),
            localizer: self.is_localizer(),
            derived: f.is_derived(),
            secondary_capture: self.is_secondary_capture(),
            files: files.len(),
            slices: self.slices.len(),
            rows: f.rows,
            columns: f.columns,
            pixel_spacing: f.pixel_spacing,
            slice_thickness_tag: f.slice_thickness,
            slice_spacing: spacing,
            order_method: method,
            gaps,
            duplicates,
            gantry_tilt_deg: tilt,
            transfer_syntaxes: ts,
            rescale_slope: f.rescale.slope,
            rescale_intercept: f.rescale.intercept,
            rescale_varies,
            padding_value: f.padding.as_ref().map(|p| p.value),
            padding_raw: f.padding.as_ref().and_then(|p| p.raw.clone()),
            patient_position: f.patient_position.clone(),
            orientation: f.orientation,
            warnings,
        }
    }
}

/// One row of `dcm-inspect --series`.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesReport {
    pub series_instance_uid: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub modality: Option<String>,
    pub image_type: String,
    pub localizer: bool,
    pub derived: bool,
    pub secondary_capture: bool,
    pub files: usize,
    pub slices: usize,
    pub rows: u32,
    pub columns: u32,
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness_tag: Option<f64>,
    pub slice_spacing: Option<SpacingStats>,
    pub order_method: Option<OrderMethod>,
    pub gaps: Vec<Gap>,
    pub duplicates: usize,
    pub gantry_tilt_deg: Option<f64>,
    pub transfer_syntaxes: Vec<String>,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    pub rescale_varies: bool,
    pub padding_value: Option<f64>,
    pub padding_raw: Option<String>,
    pub patient_position: Option<String>,
    pub orientation: Option<[f64; 6]>,
    pub warnings: Vec<String>,
}

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

#[cfg(test)]
mod select_tests {
    use super::*;

    fn series(uid: &str, number: i64, slices: usize, modality: &str, orientation: [f64; 6]) -> Series {
        let slices = (0..slices)
            .map(|k| SliceHeader {
                path: format!("/ct/{uid}/{k}.dcm").into(),
                series_instance_uid: Some(uid.into()),
                series_number: Some(number),
                modality: Some(modality.into()),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                rows: 8,
                columns: 8,
                samples_per_pixel: 1,
                bits_allocated: 16,
                bits_stored: 12,
                pixel_spacing: Some([1.0, 1.0]),
                orientation: Some(orientation),
                position: Some([0.0, 0.0, k as f64]),
                instance_number: Some(k as i64 + 1),
                ..SliceHeader::default()
            })
            .collect();
        Series { slices }
    }
    const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    const CORONAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0];

    #[test]
    fn the_largest_axial_ct_series_wins_and_the_lower_number_breaks_ties() {
        let all = [series("1.1", 3, 40, "CT", AXIAL), series("1.2", 2, 40, "CT", AXIAL), series("1.3", 4, 90, "CT", CORONAL)];
        let (i, why) = select_series(&all, &SeriesSelect::Largest).unwrap();
        assert_eq!(i, 1, "{why}");
        assert!(why.contains("largest axial CT series of 3 candidates"), "{why}");
        let (i, why) = select_series(&all[..1], &SeriesSelect::Largest).unwrap();
        assert_eq!(i, 0);
        assert!(why.ends_with("the only usable series"), "{why}");
    }

    #[test]
    fn series_are_chosen_by_uid_or_number_and_a_wrong_one_names_the_fix() {
        let all = [series("1.1", 3, 4, "CT", AXIAL), series("1.2", 5, 4, "CT", AXIAL)];
        assert_eq!(select_series(&all, &SeriesSelect::parse("1.2")).unwrap().0, 1);
        assert_eq!(select_series(&all, &SeriesSelect::parse("3")).unwrap().0, 0);
        assert_eq!(SeriesSelect::parse("largest"), SeriesSelect::Largest);
        let e = select_series(&all, &SeriesSelect::Number(9)).unwrap_err();
        assert!(e.to_string().contains("no series with SeriesNumber 9"), "{e}");
        assert!(e.hint.as_deref().unwrap_or_default().contains("--list"), "{e:?}");
    }

    #[test]
    fn no_usable_series_lists_each_with_its_reason() {
        let e = select_series(&[series("1.1", 1, 1, "CT", AXIAL)], &SeriesSelect::Largest).unwrap_err();
        assert!(e.to_string().contains("a single slice is not a volume"), "{e}");
        let e = select_series(&[], &SeriesSelect::Largest).unwrap_err();
        assert!(e.to_string().contains("no DICOM images found"), "{e}");
    }
}
