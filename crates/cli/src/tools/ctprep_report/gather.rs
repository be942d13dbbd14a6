//! What the report shows of one patient, read from the files the workflow (or ctprep.mk) left.
//!
//! The workflow puts each step in its own folder (`P/volume/hu_1mm.json`), ctprep.mk writes them
//! flat (`P/hu_1mm.json`); both are read. Nothing here fails on a missing or unreadable file: a
//! missing fact is an empty cell, and a failed step is a row with its error line.

use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The steps, in the order they run; each may have left a `status.json`.
pub const STEPS: [&str; 5] = ["volume", "lungs", "bone", "thumbs", "input"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Patient {
    pub name: String,
    /// The first step that failed, its error line and hint (None: everything ran).
    pub failure: Option<Failure>,
    pub series: Series,
    pub lungs: Option<LungQc>,
    /// Warnings any tool printed for this patient (HU sanity, lung QC, series choice).
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub axial: Option<PathBuf>,
    #[serde(skip)]
    pub coronal: Option<PathBuf>,
    /// Why the report flags this patient; empty = nothing to look at.
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Failure {
    pub step: String,
    pub error: String,
    pub hint: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub description: Option<String>,
    pub slices: Option<usize>,
    pub slice_spacing_mm: Option<f64>,
    pub tilt_deg: Option<f64>,
    pub gaps: Option<usize>,
    pub patient_position: Option<String>,
    pub shape_zyx: Option<Vec<u64>>,
    /// dcm-stack's line saying which series it took and why.
    pub chosen: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LungQc {
    pub right_ml: Option<f64>,
    pub left_ml: Option<f64>,
    pub total_ml: Option<f64>,
    pub body_fraction: Option<f64>,
    pub components: Option<u64>,
    pub lungs_found: Option<u64>,
    pub fallback: Option<String>,
}

/// The file `name` of `step`, in the workflow's layout or ctprep.mk's.
fn find(dir: &Path, step: &str, name: &str) -> Option<PathBuf> {
    [dir.join(step).join(name), dir.join(name)].into_iter().find(|p| p.is_file())
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

impl Patient {
    fn warn(&mut self, line: &str) {
        if !self.warnings.iter().any(|w| w == line) {
            self.warnings.push(line.to_string());
        }
    }
}

/// Gather one patient's row. `expect_volume`: the patient came from the input folder, so a
/// missing volume is a failure even without a status file (ctprep.mk writes none).
pub fn patient(dir: &Path, name: &str, expect_volume: bool) -> Patient {
    let mut p = Patient { name: name.to_string(), ..Default::default() };
    for step in STEPS {
        // Only the workflow writes these, one per step folder.
        let status = read_json(&dir.join(step).join("status.json"));
        if let Some(s) = status {
            if s["ok"] == Value::Bool(false) && p.failure.is_none() {
                p.failure = Some(Failure {
                    step: step.to_string(),
                    error: s["error"].as_str().unwrap_or("failed").to_string(),
                    hint: s["hint"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        let log = std::fs::read_to_string(dir.join(step).join("stderr.log")).unwrap_or_default();
        for line in log.lines() {
            if line.contains(": warning: ") {
                p.warn(line.trim());
            }
            // dcm-stack's or hu-convert's (which reads the folder itself) choice of series.
            if let (true, Some((_, chosen))) = (step == "volume", line.split_once(": using series ")) {
                p.series.chosen = Some(format!("using series {chosen}"));
            }
        }
    }
    let volume = find(dir, "volume", "hu_1mm.json").and_then(|f| read_json(&f));
    if volume.is_none() && p.failure.is_none() && expect_volume {
        p.failure = Some(Failure {
            step: "volume".into(),
            error: "no 1 mm volume (hu_1mm.json) was made for this patient".into(),
            hint: "run the workflow on it again and read its error on stderr".into(),
        });
    }
    if let Some(v) = &volume {
        let s = &v["meta"]["series"];
        p.series.description = s["series_description"].as_str().map(String::from);
        p.series.slice_spacing_mm = s["measured_slice_spacing"].as_f64();
        p.series.tilt_deg = s["gantry_tilt_deg"].as_f64();
        p.series.patient_position = s["patient_position"].as_str().map(String::from);
        p.series.slices = v["meta"]["slices"].as_array().map(|a| a.len());
        p.series.gaps = v["meta"]["extra"]["gaps"].as_array().map(|a| a.len()).or(Some(0));
        p.series.shape_zyx = v["shape_zyx"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect());
    }
    if let Some(q) = find(dir, "lungs", "lungs_qc.json").and_then(|f| read_json(&f)) {
        p.lungs = Some(LungQc {
            right_ml: q["right_ml"].as_f64(),
            left_ml: q["left_ml"].as_f64(),
            total_ml: q["total_ml"].as_f64(),
            body_fraction: q["body_fraction"].as_f64(),
            components: q["air_components"].as_u64(),
            lungs_found: q["lungs_found"].as_u64(),
            fallback: match &q["fallback"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            },
        });
        for w in q["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            p.warn(&format!("lung-seg: warning: {w}"));
        }
    }
    p.axial = find(dir, "thumbs", "axial.png");
    p.coronal = find(dir, "thumbs", "coronal.png");
    p
}

/// The dataset statistics file: its mean and how many volumes it was fitted over.
pub fn stats(out: &Path) -> Option<(f64, u64)> {
    let v = read_json(&out.join("stats.json"))?;
    Some((v["mean"].as_f64()?, v["volumes"].as_array().map_or(0, |a| a.len() as u64)))
}
