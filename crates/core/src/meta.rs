//! What a volume is and where it came from: serialised as JSON into the NIfTI header extension
//! and the `.json` sidecar, so it survives pipes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the voxel values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Unknown provenance (a foreign NIfTI or NPY).
    #[default]
    Unknown,
    /// Stored DICOM values; `rescale` turns them into HU.
    Stored,
    /// Hounsfield units.
    Hu,
    /// Binary mask (0/1).
    Mask,
    /// Integer labels (e.g. 1 = right lung, 2 = left lung).
    Labels,
    /// Normalized intensities (see `normalization`).
    Normalized,
}

impl Kind {
    /// The name in sidecars and messages (as serialised).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unknown => "unknown",
            Kind::Stored => "stored",
            Kind::Hu => "hu",
            Kind::Mask => "mask",
            Kind::Labels => "labels",
            Kind::Normalized => "normalized",
        }
    }
}

/// Linear rescale `real = stored * slope + intercept`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

impl Default for Rescale {
    fn default() -> Self {
        Rescale::IDENTITY
    }
}

impl Rescale {
    pub const IDENTITY: Rescale = Rescale { slope: 1.0, intercept: 0.0 };
    pub fn is_identity(&self) -> bool {
        self.slope == 1.0 && self.intercept == 0.0
    }
    pub fn apply(&self, v: f64) -> f64 {
        v * self.slope + self.intercept
    }
}

/// Stored pixel padding (outside the scanner's field of view), with the signedness resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Padding {
    /// PixelPaddingValue as a stored value (US 63536 with signed pixels is -2000).
    pub value: f64,
    /// PixelPaddingRangeLimit, when present: padding is every stored value between the two.
    pub range_limit: Option<f64>,
    /// The raw element as written in the file, e.g. "US 63536".
    pub raw: Option<String>,
}

impl Padding {
    pub fn contains(&self, stored: f64) -> bool {
        match self.range_limit {
            Some(l) => stored >= self.value.min(l) && stored <= self.value.max(l),
            None => stored == self.value,
        }
    }
}

/// The intensity transform applied by vol-normalize, invertible:
/// `hu = (value + mean) * (max - min) + min` inside [min, max].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// Identifiers and facts of the DICOM series a volume came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SeriesInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convolution_kernel: Option<String>,
    /// SliceThickness as the files say (often absent or not the real spacing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_thickness_tag: Option<f64>,
    /// Slice spacing measured from ImagePositionPatient (median), mm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_slice_spacing: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gantry_tilt_deg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_syntax: Option<String>,
}

/// Where one output slice came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceSource {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_number: Option<i64>,
    /// ImagePositionPatient (LPS mm).
    pub position: [f64; 3],
    pub rescale: Rescale,
}

/// One processing step: which tool, which version, which arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub tool: String,
    pub version: String,
    pub args: Vec<String>,
}

/// Everything we know about a volume besides its voxels and grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Meta {
    pub kind: Kind,
    /// Stored -> real values (only meaningful for `Kind::Stored`/`Unknown` integer data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescale: Option<Rescale>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub padding: Option<Padding>,
    /// Padding already turned into NaN (a series whose rescale varies per slice is stacked as
    /// float real values); hu-convert then treats NaN as padding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub padding_as_nan: bool,
    /// Display window (centre, width) in the volume's own units: HU for CT, [0, 1] minus the
    /// mean for a normalized volume (written as the NIfTI cal_min/cal_max).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<SliceSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Step>,
    /// Tool-specific facts (QC numbers, choices made), kept verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Meta {
    pub fn push_step(&mut self, tool: &str, version: &str, args: Vec<String>) {
        self.provenance.push(Step { tool: tool.into(), version: version.into(), args });
    }

    /// A copy without what identifies the patient, as dcm2niix does by default: no PatientID;
    /// study, series and instance UIDs replaced by one-way hashes (the same UID always gives the
    /// same hash, so outputs of one series still match up); file and folder paths reduced to
    /// file names, with folder names (often the patient's name or ID) and UID-like file names
    /// hashed. Idempotent. Positions, spacing, rescale and the rest stay.
    pub fn anonymized(&self) -> Meta {
        let mut m = self.clone();
        if let Some(s) = &mut m.series {
            s.patient_id = None;
            for uid in [&mut s.study_instance_uid, &mut s.series_instance_uid].into_iter().flatten() {
                *uid = anon_hash(uid);
            }
        }
        for s in &mut m.slices {
            s.file = anonymize_path(&s.file, false);
            if let Some(uid) = &mut s.sop_instance_uid {
                *uid = anon_hash(uid);
            }
        }
        for step in &mut m.provenance {
            for a in &mut step.args {
                let is_dir = a.ends_with('/') || std::path::Path::new(a.as_str()).is_dir();
                if is_dir || a.contains('/') {
                    *a = anonymize_path(a, is_dir);
                }
            }
        }
        m
    }
}

const ANON: &str = "anon-";

/// `anon-` and 16 hex digits of SHA-256: one-way, stable across runs and machines.
fn anon_hash(s: &str) -> String {
    use sha2::Digest;
    if s.starts_with(ANON) {
        return s.to_string();
    }
    let d = sha2::Sha256::digest(format!("ctprep-anon:{s}").as_bytes());
    format!("{ANON}{}", d.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
}

/// A path reduced to what identifies no one: the folder part to a hash (folder names often hold
/// the patient's name or ID), the file name kept (hashed when it is a DICOM UID, as scanners often
/// name files); a folder given as a whole is hashed. Distinct paths stay distinct. `#frameN` stays.
pub fn anonymize_path(p: &str, is_dir: bool) -> String {
    let (path, frame) = p.split_once('#').map_or((p, None), |(a, b)| (a, Some(b)));
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    let stem = name.strip_suffix(".dcm").unwrap_or(name);
    let uid_like = stem.len() >= 10 && stem.bytes().all(|b| b.is_ascii_digit() || b == b'.') && stem.contains('.');
    let out = if is_dir || name.is_empty() || parent.starts_with(ANON) || name.starts_with(ANON) {
        // A folder, or a path already anonymized: hashed whole (anon_hash leaves `anon-` alone).
        if trimmed.starts_with(ANON) { trimmed.to_string() } else { anon_hash(trimmed) }
    } else {
        let name = if uid_like { anon_hash(name) } else { name.to_string() };
        if parent.is_empty() && !path.starts_with('/') { name } else { format!("{}/{name}", anon_hash(parent)) }
    };
    match frame {
        Some(f) => format!("{out}#{f}"),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identified() -> Meta {
        Meta {
            series: Some(SeriesInfo {
                patient_id: Some("DOE^JOHN-1234".into()),
                study_instance_uid: Some("1.2.840.113619.2.55.3.1".into()),
                series_instance_uid: Some("1.2.840.113619.2.55.3.2".into()),
                series_number: Some(3),
                ..SeriesInfo::default()
            }),
            slices: vec![
                SliceSource {
                    file: "/data/DOE_JOHN/CT/1.2.840.113619.2.55.3.2.7.dcm".into(),
                    sop_instance_uid: Some("1.2.840.113619.2.55.3.2.7".into()),
                    instance_number: Some(7),
                    position: [1.0, 2.0, 3.0],
                    rescale: Rescale::IDENTITY,
                },
                SliceSource {
                    file: "/data/DOE_JOHN/CT/IM-0001-0008.dcm#frame2".into(),
                    sop_instance_uid: None,
                    instance_number: Some(8),
                    position: [1.0, 2.0, 4.0],
                    rescale: Rescale::IDENTITY,
                },
            ],
            provenance: vec![Step {
                tool: "dcm-stack".into(),
                version: "0".into(),
                args: vec!["/data/DOE_JOHN/CT/".into(), "-o".into(), "out/hu.nii.gz".into(), "--spacing".into(), "1".into()],
            }],
            ..Meta::default()
        }
    }

    #[test]
    fn anonymized_meta_names_no_patient_folder_or_uid_and_keeps_the_rest() {
        let m = identified().anonymized();
        let text = serde_json::to_string(&m).unwrap();
        for secret in ["DOE", "JOHN", "1234", "113619", "/data"] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        let s = m.series.as_ref().unwrap();
        assert_eq!(s.patient_id, None);
        assert_eq!(s.series_number, Some(3));
        assert!(s.series_instance_uid.as_ref().unwrap().starts_with("anon-"));
        let (folder, name) = m.slices[1].file.split_once('/').unwrap();
        assert!(folder.starts_with("anon-") && folder.len() == 21, "{folder}");
        assert_eq!(name, "IM-0001-0008.dcm#frame2");
        assert!(m.slices[0].file.starts_with(folder), "one folder, one hash: {}", m.slices[0].file);
        assert!(m.slices[0].sop_instance_uid.as_ref().unwrap().starts_with("anon-"));
        assert_eq!(m.slices[0].position, [1.0, 2.0, 3.0]);
        let args = &m.provenance[0].args;
        assert!(args[0].starts_with("anon-") && !args[0].contains('/'), "{args:?}");
        assert!(args[2].starts_with("anon-") && args[2].ends_with("/hu.nii.gz"), "{args:?}");
        assert_eq!([&args[1], &args[3], &args[4]], ["-o", "--spacing", "1"]);
        assert_eq!(anonymize_path("hu.nii.gz", false), "hu.nii.gz", "a name in the working folder names no one");
    }

    #[test]
    fn anonymizing_is_stable_and_idempotent() {
        let once = identified().anonymized();
        assert_eq!(once, identified().anonymized(), "the same input hashes the same way");
        assert_eq!(once.anonymized(), once);
        // Different UIDs stay different.
        let s = once.series.unwrap();
        assert_ne!(s.study_instance_uid, s.series_instance_uid);
    }
}
