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

/// Linear rescale `real = stored * slope + intercept`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
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
    /// Display window (centre, width) in HU.
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
}
