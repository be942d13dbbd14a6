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
        self.plane() == "axial"
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
            patient_id: f.patient_id.clone(),
            study_instance_uid: f.study_instance_uid.clone(),
            study_date: f.study_date.clone(),
            series_instance_uid: f.series_instance_uid.clone(),
            series_number: f.series_number,
            series_description: f.series_description.clone(),
            modality: f.modality.clone(),
            image_type: f.image_type.join("\\"),
            plane: self.plane(),
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
    pub patient_id: Option<String>,
    pub study_instance_uid: Option<String>,
    pub study_date: Option<String>,
    pub series_instance_uid: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub modality: Option<String>,
    pub image_type: String,
    /// axial, coronal, sagittal, oblique or unknown (from ImageOrientationPatient).
    pub plane: &'static str,
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

/// The series to stack, why it was chosen, and what the user must know about the choice.
#[derive(Debug, Clone)]
pub struct Selection {
    pub index: usize,
    pub why: String,
    /// Candidates from several patients or studies, a tie, a reformat instead of axial slices.
    pub warnings: Vec<String>,
}

fn describe(s: &Series) -> String {
    format!(
        "series {} #{} '{}' ({} slices)",
        s.uid(),
        s.first().series_number.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
        s.first().series_description.clone().unwrap_or_default(),
        s.slices.len()
    )
}

impl Series {
    /// "axial", "coronal", "sagittal" or "oblique" (no axis within 45 degrees of the normal is
    /// impossible; a missing orientation is "unknown").
    pub fn plane(&self) -> &'static str {
        match self.first().normal() {
            None => "unknown",
            Some(n) => {
                let lim = std::f64::consts::FRAC_1_SQRT_2;
                if n[2].abs() > lim {
                    "axial"
                } else if n[1].abs() > lim {
                    "coronal"
                } else if n[0].abs() > lim {
                    "sagittal"
                } else {
                    "oblique"
                }
            }
        }
    }
}

/// The distinct values of one header field over some series, for messages.
fn distinct(series: &[&Series], field: impl Fn(&SliceHeader) -> Option<String>) -> Vec<String> {
    let mut v: Vec<String> = series.iter().map(|s| field(s.first()).unwrap_or_else(|| "(none)".into())).collect();
    v.sort();
    v.dedup();
    v
}

/// Warnings about a choice among `candidates` (the chosen one among them).
fn choice_warnings(chosen: &Series, candidates: &[&Series]) -> Vec<String> {
    let mut warnings = Vec::new();
    let patients = distinct(candidates, |h| h.patient_id.clone());
    let studies = distinct(candidates, |h| h.study_instance_uid.clone());
    if patients.len() > 1 {
        warnings.push(format!(
            "the input holds candidate series of {} patients (PatientID {}); stacking one of PatientID {}: point at one patient's folder, or choose with --series",
            patients.len(),
            patients.join(", "),
            chosen.first().patient_id.as_deref().unwrap_or("(none)")
        ));
    } else if studies.len() > 1 {
        warnings.push(format!(
            "the input holds candidate series of {} studies (StudyInstanceUID {}); stacking one of study {} ({}): point at one study's folder, or choose with --series",
            studies.len(),
            studies.join(", "),
            chosen.first().study_instance_uid.as_deref().unwrap_or("(none)"),
            chosen.first().study_date.as_deref().unwrap_or("no StudyDate")
        ));
    }
    let plane = chosen.plane();
    if plane != "axial" {
        warnings.push(format!(
            "{} is {plane}, not axial: a reformat; the steps after stacking assume axial slices (lung-seg's airway and side rules); --axial-only refuses it",
            describe(chosen)
        ));
    }
    warnings
}

/// Pick the series to stack, explaining the choice. `largest` takes the axial CT series with
/// the most slices; ties go to the lowest SeriesNumber, then the lowest SeriesInstanceUID (a
/// documented, input-order-free rule) and are warned about. `axial_only` refuses sagittal,
/// coronal and oblique series (by default they are taken, with a warning).
pub fn select_series(series: &[Series], select: &SeriesSelect, axial_only: bool) -> Result<Selection> {
    let usable: Vec<usize> = (0..series.len()).filter(|&i| series[i].rejection().is_none()).collect();
    let refuse_plane = |i: usize| -> Result<()> {
        if axial_only && !series[i].is_axial() {
            return Err(Error::empty(format!("{} is {}, not axial, and --axial-only refuses it", describe(&series[i]), series[i].plane()))
                .with_hint("drop --axial-only to stack a reformat; `dcm-stack --list DIR` shows each series' plane"));
        }
        Ok(())
    };
    match select {
        SeriesSelect::Largest => {
            let candidates: Vec<usize> = usable.iter().copied().filter(|&i| !axial_only || series[i].is_axial()).collect();
            // Better first: CT, axial, more slices; then the tie rule.
            let rank = |i: usize| {
                let s = &series[i];
                (std::cmp::Reverse((s.is_ct(), s.is_axial(), s.slices.len())), s.first().series_number.unwrap_or(i64::MAX), s.uid())
            };
            let Some(best) = candidates.iter().copied().min_by_key(|&i| rank(i)) else {
                if let Some(&i) = usable.first() {
                    refuse_plane(i)?;
                }
                let reasons: Vec<String> =
                    series.iter().map(|s| format!("{}: {}", describe(s), s.rejection().unwrap_or_default())).collect();
                return Err(Error::empty(if series.is_empty() {
                    "no DICOM images found".to_string()
                } else {
                    format!("no usable CT series among {}: {}", series.len(), reasons.join("; "))
                })
                .with_hint("point at the folder of one CT series; `dcm-inspect --series DIR` lists what is there"));
            };
            let tied: Vec<usize> = candidates.iter().copied().filter(|&i| i != best && rank(i).0 == rank(best).0).collect();
            let mut why = if candidates.len() == 1 {
                "the only usable series".to_string()
            } else {
                format!("the largest axial CT series of {} candidates", candidates.len())
            };
            let all: Vec<&Series> = candidates.iter().map(|&i| &series[i]).collect();
            let mut warnings = choice_warnings(&series[best], &all);
            if !tied.is_empty() {
                why.push_str(&format!("; tied in slices with {} other(s), taken by the lowest SeriesNumber, then UID", tied.len()));
                let others: Vec<String> = tied.iter().map(|&i| describe(&series[i])).collect();
                warnings.push(format!("{} tie(s) with {}: choose with --series NUMBER or UID", others.len(), others.join(", ")));
            }
            Ok(Selection { index: best, why: format!("using {}: {why}", describe(&series[best])), warnings })
        }
        SeriesSelect::Uid(uid) => {
            let i = series.iter().position(|s| &s.uid() == uid).ok_or_else(|| {
                Error::empty(format!("no series with SeriesInstanceUID {uid}")).with_hint("list the series with `dcm-stack --list DIR`")
            })?;
            refuse_plane(i)?;
            Ok(Selection {
                index: i,
                why: format!("using {}: asked for by UID", describe(&series[i])),
                warnings: choice_warnings(&series[i], &[]),
            })
        }
        SeriesSelect::Number(n) => {
            let matching: Vec<usize> = (0..series.len()).filter(|&i| series[i].first().series_number == Some(*n)).collect();
            let i = matching.iter().copied().find(|&i| series[i].rejection().is_none()).or(matching.first().copied()).ok_or_else(|| {
                Error::empty(format!("no series with SeriesNumber {n}")).with_hint("list the series with `dcm-stack --list DIR`")
            })?;
            refuse_plane(i)?;
            // The same number in several studies (every scanner starts at 1 or 2) is ambiguous.
            let same: Vec<&Series> = matching.iter().map(|&k| &series[k]).filter(|s| s.rejection().is_none()).collect();
            let mut warnings = choice_warnings(&series[i], &same);
            if same.len() > 1 {
                warnings.push(format!("{} usable series have SeriesNumber {n}: choose by UID with --series UID", same.len()));
            }
            Ok(Selection { index: i, why: format!("using {}: asked for by number", describe(&series[i])), warnings })
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

    fn of_patient(mut s: Series, patient: &str, study: &str) -> Series {
        for h in &mut s.slices {
            h.patient_id = Some(patient.into());
            h.study_instance_uid = Some(study.into());
            h.study_date = Some("20200101".into());
        }
        s
    }
    const SAGITTAL: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];

    #[test]
    fn the_largest_axial_ct_series_wins_and_the_lower_number_breaks_ties() {
        let all = [series("1.1", 3, 40, "CT", AXIAL), series("1.2", 2, 40, "CT", AXIAL), series("1.3", 4, 90, "CT", CORONAL)];
        let c = select_series(&all, &SeriesSelect::Largest, false).unwrap();
        assert_eq!(c.index, 1, "{}", c.why);
        assert!(c.why.contains("largest axial CT series of 3 candidates"), "{}", c.why);
        assert!(c.why.contains("tied in slices with 1 other(s)"), "{}", c.why);
        assert!(c.warnings.iter().any(|w| w.contains("tie(s) with series 1.1")), "{:?}", c.warnings);
        let c = select_series(&all[..1], &SeriesSelect::Largest, false).unwrap();
        assert_eq!(c.index, 0);
        assert!(c.why.ends_with("the only usable series"), "{}", c.why);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn two_patients_with_equal_series_tie_by_uid_whatever_the_order_and_are_warned_about() {
        let a = of_patient(series("1.9", 2, 40, "CT", AXIAL), "P1", "S1");
        let b = of_patient(series("1.10", 2, 40, "CT", AXIAL), "P2", "S2");
        for all in [[a.clone(), b.clone()], [b.clone(), a.clone()]] {
            let c = select_series(&all, &SeriesSelect::Largest, false).unwrap();
            // "1.10" < "1.9" as text: the rule is the UID's text order, stable across runs.
            assert_eq!(all[c.index].uid(), "1.10");
            assert!(
                c.warnings.iter().any(|w| w.contains("2 patients (PatientID P1, P2)") && w.contains("stacking one of PatientID P2")),
                "{:?}",
                c.warnings
            );
            assert!(c.warnings.iter().any(|w| w.contains("tie")), "{:?}", c.warnings);
        }
        // One patient, two studies: the studies are named.
        let c = select_series(
            &[of_patient(series("1.1", 2, 40, "CT", AXIAL), "P", "S1"), of_patient(series("1.2", 3, 30, "CT", AXIAL), "P", "S2")],
            &SeriesSelect::Largest,
            false,
        )
        .unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("2 studies") && w.contains("stacking one of study S1 (20200101)")),
            "{:?}",
            c.warnings
        );
        // The same SeriesNumber in two studies is ambiguous when asked for by number.
        let c = select_series(
            &[of_patient(series("1.1", 2, 40, "CT", AXIAL), "P", "S1"), of_patient(series("1.2", 2, 30, "CT", AXIAL), "P", "S2")],
            &SeriesSelect::Number(2),
            false,
        )
        .unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("2 usable series have SeriesNumber 2")), "{:?}", c.warnings);
    }

    #[test]
    fn a_reformat_is_taken_with_a_warning_or_refused_with_axial_only() {
        let all = [series("1.1", 2, 60, "CT", SAGITTAL)];
        assert_eq!(all[0].plane(), "sagittal");
        assert_eq!(series("1.2", 2, 6, "CT", CORONAL).plane(), "coronal");
        let c = select_series(&all, &SeriesSelect::Largest, false).unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("is sagittal, not axial") && w.contains("--axial-only")), "{:?}", c.warnings);
        for select in [SeriesSelect::Largest, SeriesSelect::Number(2), SeriesSelect::Uid("1.1".into())] {
            let e = select_series(&all, &select, true).unwrap_err();
            assert!(e.to_string().contains("sagittal, not axial, and --axial-only refuses it"), "{e}");
            assert_eq!(e.kind, crate::ErrorKind::Empty);
        }
        // With an axial series there, --axial-only takes it.
        let both = [series("1.1", 2, 60, "CT", SAGITTAL), series("1.2", 3, 20, "CT", AXIAL)];
        assert_eq!(select_series(&both, &SeriesSelect::Largest, true).unwrap().index, 1);
    }

    #[test]
    fn series_are_chosen_by_uid_or_number_and_a_wrong_one_names_the_fix() {
        let all = [series("1.1", 3, 4, "CT", AXIAL), series("1.2", 5, 4, "CT", AXIAL)];
        assert_eq!(select_series(&all, &SeriesSelect::parse("1.2"), false).unwrap().index, 1);
        assert_eq!(select_series(&all, &SeriesSelect::parse("3"), false).unwrap().index, 0);
        assert_eq!(SeriesSelect::parse("largest"), SeriesSelect::Largest);
        let e = select_series(&all, &SeriesSelect::Number(9), false).unwrap_err();
        assert!(e.to_string().contains("no series with SeriesNumber 9"), "{e}");
        assert!(e.hint.as_deref().unwrap_or_default().contains("--list"), "{e:?}");
    }

    #[test]
    fn no_usable_series_lists_each_with_its_reason() {
        let e = select_series(&[series("1.1", 1, 1, "CT", AXIAL)], &SeriesSelect::Largest, false).unwrap_err();
        assert!(e.to_string().contains("a single slice is not a volume"), "{e}");
        let e = select_series(&[], &SeriesSelect::Largest, false).unwrap_err();
        assert!(e.to_string().contains("no DICOM images found"), "{e}");
    }
}
