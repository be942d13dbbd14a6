//! # ctprep-phantom
//!
//! A synthetic chest CT, defined analytically in patient space (LPS, mm) and written as a DICOM
//! series the way real scanners write them: files named by random hashes, SliceThickness absent,
//! int16 with intercept -1024, a circular field of view padded with -2000 and PixelPaddingValue.
//! Options add the traps of real data (feet-first, gantry tilt, a missing slice, a localizer and
//! a second series in the folder, junk files, other transfer syntaxes). The ground-truth lung
//! mask is returned on the grid `dcm-stack` will produce. Deterministic for a given seed.

use ctprep_core::geometry::{Geometry, Vec3, cross, normalize};
use ctprep_core::meta::{Kind, Meta};
use ctprep_core::volume::{Volume, VolumeData};
use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use ndarray::{Array2, Array3, Axis};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Transfer syntaxes the phantom can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    ExplicitLittle,
    ImplicitLittle,
    DeflatedExplicit,
    Rle,
    /// JPEG lossless, first-order prediction (process 14, selection value 1), one fragment per
    /// frame: how most archived CT is stored.
    JpegLossless,
}

impl Syntax {
    pub fn uid(self) -> &'static str {
        match self {
            Syntax::ExplicitLittle => "1.2.840.10008.1.2.1",
            Syntax::ImplicitLittle => "1.2.840.10008.1.2",
            Syntax::DeflatedExplicit => "1.2.840.10008.1.2.1.99",
            Syntax::Rle => "1.2.840.10008.1.2.5",
            Syntax::JpegLossless => "1.2.840.10008.1.2.4.70",
        }
    }
    pub fn parse(s: &str) -> Option<Syntax> {
        Some(match s {
            "explicit" => Syntax::ExplicitLittle,
            "implicit" => Syntax::ImplicitLittle,
            "deflate" => Syntax::DeflatedExplicit,
            "rle" => Syntax::Rle,
            "jpeg-lossless" => Syntax::JpegLossless,
            _ => return None,
        })
    }
}

/// Everything that shapes the phantom.
#[derive(Debug, Clone)]
pub struct PhantomOptions {
    /// Rows = columns of each slice.
    pub size: usize,
    pub slices: usize,
    /// In-plane pixel spacing, mm (default: a 360 mm field of view).
    pub pixel_spacing: Option<f64>,
    /// Table increment between slices, mm.
    pub slice_spacing: f64,
    pub seed: u64,
    pub rescale_slope: f64,
    /// Store uint16 (stored = HU + 1024, no padding tag) instead of int16.
    pub unsigned: bool,
    pub feet_first: bool,
    /// Gantry tilt in degrees (slice planes tilted about the x axis).
    pub tilt_deg: f64,
    /// Leave out one slice in the middle.
    pub missing_slice: bool,
    /// Add a second, thicker series of the same patient.
    pub second_series: bool,
    /// Add a coronal localizer (same series UID, as some scanners do).
    pub localizer: bool,
    /// Add non-DICOM files (a proprietary index file and a text file).
    pub junk: bool,
    pub syntax: Syntax,
    /// Write SliceThickness (off by default, like the tutorial's data).
    pub slice_thickness_tag: bool,
    /// Noise standard deviation, HU.
    pub noise_hu: f64,
    /// Variants of the anatomy that real scans show and segmentation has to survive.
    pub anatomy: Variants,
}

/// Anatomy variants, each a class of real scans where a lung segmentation fails silently.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Variants {
    /// A table as wide as the image and a square field of view: the table splits the outside air
    /// (where the tutorial's segmentation fails).
    pub table_splits_air: bool,
    /// A carbon-fibre tabletop the patient lies on: 3 mm skins around a foam core that reads as
    /// air (-950 HU), so body and table enclose an air core larger than a lung.
    pub hollow_table: bool,
    /// The right lung's lower part walled off by a thickened fissure (8 mm of soft tissue) but for
    /// a neck 8 mm wide: normal lung that an opening makes a piece of its own.
    pub lobe_neck: bool,
    /// The scan starts this many mm above the chest (neck, then skull with an air-filled sinus
    /// near the mid-line in its top 25 mm, the trachea ending 25 mm below the top); the whole
    /// scan or more: the neck only, no lungs.
    pub head_mm: f64,
    /// Diameter (mm) of a soft-tissue mass on the lateral pleura of the right lung, half in the
    /// lung and half in the chest wall; 0: none.
    pub pleural_mass_mm: f64,
}

impl Default for PhantomOptions {
    fn default() -> Self {
        PhantomOptions {
            size: 128,
            slices: 60,
            pixel_spacing: None,
            slice_spacing: 5.0,
            seed: 1,
            rescale_slope: 1.0,
            unsigned: false,
            feet_first: false,
            tilt_deg: 0.0,
            missing_slice: false,
            second_series: false,
            localizer: false,
            junk: false,
            syntax: Syntax::ExplicitLittle,
            slice_thickness_tag: false,
            noise_hu: 10.0,
            anatomy: Variants::default(),
        }
    }
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The main series' SeriesInstanceUID.
    pub series_uid: String,
    /// Ground truth lung mask (1 = lung, vessels and nodules included) on the grid of the main
    /// series as `dcm-stack` assembles it (orthogonal after tilt correction).
    pub lung_mask: Volume,
}

/// The anatomy: HU at an LPS point, and whether the point is lung.
pub struct Anatomy {
    /// Field-of-view radius, mm; everything scales with it.
    r: f64,
    z0: f64,
    z1: f64,
    /// Top of the scan (above z1 when it starts at the head).
    top: f64,
    nodules: Vec<(Vec3, f64)>,
    vessels: Vec<(Vec3, Vec3, f64)>,
    v: Variants,
}

fn dist_to_segment(p: Vec3, a: Vec3, b: Vec3) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let t = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / (ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2])).clamp(0.0, 1.0);
    let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

impl Anatomy {
    /// Anatomy for a field of view of radius `r` mm, a scan spanning z0..top mm (LPS z), the
    /// chest z0..top - `v.head_mm`.
    pub fn new(r: f64, z0: f64, top: f64, seed: u64, v: Variants) -> Self {
        let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        // A scan shorter than `head_mm` holds no chest at all: the neck only.
        let z1 = (top - v.head_mm.max(0.0)).max(z0);
        let mut a = Anatomy { r, z0, z1, top, nodules: Vec::new(), vessels: Vec::new(), v };
        let h = z1 - z0;
        for side in [-1.0, 1.0] {
            let (cx, cy, cz) = a.lung_centre(side);
            // Vessels: segments from the hilum outwards.
            for _ in 0..5 {
                let dir = normalize([side * (0.3 + rng.f64()), rng.f64() * 1.2 - 0.6, rng.f64() * 1.6 - 0.8]);
                let len = 0.22 * r;
                let start = [cx - side * 0.12 * r, cy, cz];
                a.vessels.push((
                    start,
                    [start[0] + dir[0] * len, start[1] + dir[1] * len, start[2] + dir[2] * len * h / r / 2.0],
                    0.018 * r,
                ));
            }
            // An interior nodule.
            a.nodules.push(([cx + side * 0.05 * r, cy - 0.1 * r, cz + 0.1 * h], 0.045 * r));
        }
        // A nodule touching the chest wall (pleura) of the left lung, lateral side.
        let (cx, cy, cz) = a.lung_centre(1.0);
        let (ax, _, _) = a.lung_axes();
        a.nodules.push(([cx + ax - 0.03 * r, cy, cz], 0.05 * r));
        a
    }

    /// The pleural mass: a ball centred on the right lung's lateral surface at mid-height.
    pub fn in_pleural_mass(&self, p: Vec3) -> bool {
        let (cx, cy, cz) = self.lung_centre(-1.0);
        let (ax, _, _) = self.lung_axes();
        let c = [cx - ax, cy, cz];
        let rad = self.v.pleural_mass_mm / 2.0;
        (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2) < rad * rad
    }

    /// The thickened fissure: an 8 mm plate across the right lung a third of the way up from
    /// its base, with a round 8 mm opening near the lateral wall.
    fn in_fissure(&self, p: Vec3) -> bool {
        let (cx, cy, cz) = self.lung_centre(-1.0);
        let (ax, _, az) = self.lung_axes();
        let zf = cz - 0.35 * az;
        let in_neck = (p[0] - (cx - 0.5 * ax)).powi(2) + (p[1] - cy).powi(2) < 16.0;
        p[0] < 0.0 && (p[2] - zf).abs() < 4.0 && !in_neck && self.is_lung(p)
    }

    fn lung_centre(&self, side: f64) -> (f64, f64, f64) {
        let h = self.z1 - self.z0;
        (side * 0.36 * self.r, -0.02 * self.r, self.z0 + 0.58 * h)
    }
    fn lung_axes(&self) -> (f64, f64, f64) {
        let h = self.z1 - self.z0;
        (0.24 * self.r, 0.34 * self.r, 0.42 * h)
    }

    /// Inside a lung (vessels and nodules included, airways excluded): the ground truth.
    pub fn is_lung(&self, p: Vec3) -> bool {
        let (ax, ay, az) = self.lung_axes();
        [-1.0, 1.0].iter().any(|&side| {
            let (cx, cy, cz) = self.lung_centre(side);
            let (dx, dy, dz) = ((p[0] - cx) / ax, (p[1] - cy) / ay, (p[2] - cz) / az);
            // Flat-ish base (diaphragm dome) at dz = -0.8.
            dx * dx + dy * dy + dz * dz <= 1.0 && dz > -0.8 + 0.3 * (dx * dx + dy * dy)
        })
    }

    fn is_airway(&self, p: Vec3) -> bool {
        let r = self.r;
        let h = self.z1 - self.z0;
        let carina = [0.0, -0.12 * r, self.z0 + 0.72 * h];
        // Up through the scan's top, or to 25 mm below it when the scan starts at the skull.
        let top = [0.0, -0.12 * r, if self.v.head_mm > 0.0 { self.top - 25.0 } else { self.top + 10.0 }];
        if dist_to_segment(p, top, carina) < 0.055 * r {
            return true;
        }
        [-1.0, 1.0].iter().any(|&side| {
            let (cx, cy, cz) = self.lung_centre(side);
            let end = [cx - side * 0.05 * r, cy, cz + 0.05 * h];
            dist_to_segment(p, carina, end) < 0.035 * r
        })
    }

    /// HU (noise-free) at an LPS point.
    pub fn hu(&self, p: Vec3) -> f64 {
        let r = self.r;
        let (x, y) = (p[0], p[1]);
        let neck = p[2] > self.z1;
        let body = if neck {
            (x / (0.30 * r)).powi(2) + ((y + 0.02 * r) / (0.30 * r)).powi(2)
        } else {
            (x / (0.80 * r)).powi(2) + ((y - 0.02 * r) / (0.56 * r)).powi(2)
        };
        if self.v.hollow_table {
            // The patient lies on it (1.8 mm of overlap at the back's lowest point); it fits in
            // the circular field of view, so its core is enclosed.
            let (top, depth, half_width, skin) = (0.57 * r, 0.2 * r, 0.6 * r, 3.0);
            if (top..top + depth).contains(&y) && x.abs() < half_width {
                let core = y > top + skin && y < top + depth - skin && x.abs() < half_width - skin;
                if body > 1.0 || core {
                    return if core { -950.0 } else { 300.0 };
                }
            }
        }
        let table_top = 0.02 * r + 0.56 * r + if self.v.table_splits_air { 0.0 } else { 0.04 * r };
        if body > 1.0 {
            // Table: a slab under the patient, wide enough to split the FOV's air when asked.
            let half_width = if self.v.table_splits_air { 1.2 * r } else { 0.7 * r };
            if !self.v.hollow_table && y > table_top && y < table_top + 0.07 * r && x.abs() < half_width {
                return 250.0;
            }
            return -1000.0;
        }
        if self.is_airway(p) {
            return -1000.0;
        }
        if body > 0.86 {
            return -100.0; // subcutaneous fat
        }
        if neck {
            // A sinus near the mid-line in the skull's top 25 mm, not joined to the airway.
            let d = (x.powi(2) + (y - 0.1 * r).powi(2) + (p[2] - (self.top - 12.0)).powi(2)).sqrt();
            return if d < 14.0 { -1000.0 } else { 40.0 };
        }
        if self.v.pleural_mass_mm > 0.0 && self.in_pleural_mass(p) {
            return 35.0;
        }
        if self.v.lobe_neck && self.in_fissure(p) {
            return 40.0;
        }
        // Spine: a vertebral body posterior to the mediastinum.
        let (sx, sy) = (x, y - 0.36 * r);
        let sd = (sx * sx + sy * sy).sqrt();
        if sd < 0.09 * r {
            return if sd > 0.07 * r { 1000.0 } else { 700.0 };
        }
        // Ribs: thin elliptical bands every 25 mm along z, outside the lungs.
        let rib = (x / (0.70 * r)).powi(2) + ((y - 0.02 * r) / (0.48 * r)).powi(2);
        if (0.93..1.0).contains(&rib) && (p[2] - self.z0).rem_euclid(25.0) < 8.0 {
            return 800.0;
        }
        for &(c, rad) in &self.nodules {
            let d = ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2)).sqrt();
            if d < rad && (self.is_lung(p) || d < rad * 0.999) && (body < 0.86) {
                return 30.0;
            }
        }
        if self.is_lung(p) {
            if self.vessels.iter().any(|&(a, b, rad)| dist_to_segment(p, a, b) < rad) {
                return 40.0;
            }
            return -850.0;
        }
        // Stomach gas just below the left lung base, separated by a thin diaphragm.
        let (cx, cy, cz) = self.lung_centre(1.0);
        let (ax, ay, az) = self.lung_axes();
        let g = [(p[0] - cx) / (0.55 * ax), (p[1] - cy + 0.2 * ay) / (0.45 * ay), (p[2] - (cz - 0.8 * az - 0.14 * az)) / (0.1 * az)];
        if g[0] * g[0] + g[1] * g[1] + g[2] * g[2] < 1.0 {
            return -1000.0;
        }
        if p[2] < cz - 0.6 * az {
            return 60.0; // liver / abdomen
        }
        40.0
    }
}

/// Small deterministic PRNG (splitmix64): no dependency, same numbers everywhere.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of uniforms).
    pub fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.f64()).sum::<f64>() * 3f64.sqrt() - 2.0 * 3f64.sqrt()
    }
    pub fn hex(&mut self, n: usize) -> String {
        (0..n).map(|_| format!("{:x}", self.next_u64() % 16)).collect()
    }
}

/// The planned geometry of the main series: per-slice positions plus row/column directions.
pub struct Plan {
    pub row: Vec3,
    pub col: Vec3,
    pub positions: Vec<Vec3>,
    pub dx: f64,
    pub r: f64,
    pub z0: f64,
    pub z1: f64,
}

pub fn plan(o: &PhantomOptions) -> Plan {
    let dx = o.pixel_spacing.unwrap_or(360.0 / o.size as f64);
    let r = dx * o.size as f64 / 2.0;
    let t = o.tilt_deg.to_radians();
    // Row direction: +x (head first) or -x (feet first, as the enhanced-CT sample); columns tilt about x.
    let row = if o.feet_first { [-1.0, 0.0, 0.0] } else { [1.0, 0.0, 0.0] };
    let col = [0.0, t.cos(), -t.sin()];
    let half = (o.size as f64 - 1.0) / 2.0 * dx;
    let z0 = -(o.slices as f64 - 1.0) / 2.0 * o.slice_spacing;
    let positions = (0..o.slices)
        .map(|k| {
            let z = z0 + k as f64 * o.slice_spacing;
            // The in-plane centre of each slice sits on the table axis (x = 0, y = 0 at z).
            [-row[0] * half, -col[1] * half, z - col[2] * half]
        })
        .collect();
    Plan { row, col, positions, dx, r, z0: z0 - o.slice_spacing / 2.0, z1: z0 + (o.slices as f64 - 0.5) * o.slice_spacing }
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, v.into()));
}

fn ds(v: &[f64]) -> String {
    v.iter().map(|x| format!("{:.6}", x).trim_end_matches('0').trim_end_matches('.').to_string()).collect::<Vec<_>>().join("\\")
}

/// One slice's HU image (noise included) at a plane.
fn render(
    anat: &Anatomy,
    origin: Vec3,
    row: Vec3,
    col: Vec3,
    dx: f64,
    rows: usize,
    cols: usize,
    noise: f64,
    seed: u64,
) -> (Array2<f64>, Array2<bool>) {
    // A square field of view (no padding) when the table splits the air: the case where the
    // tutorial's corner-voxel background misses the air under the table.
    let circular = !anat.v.table_splits_air;
    let mut rng = Rng(seed);
    let mut hu = Array2::<f64>::zeros((rows, cols));
    let mut fov = Array2::<bool>::from_elem((rows, cols), true);
    let (cj, ci) = ((rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0);
    for j in 0..rows {
        for i in 0..cols {
            let p = [
                origin[0] + (i as f64 * row[0] + j as f64 * col[0]) * dx,
                origin[1] + (i as f64 * row[1] + j as f64 * col[1]) * dx,
                origin[2] + (i as f64 * row[2] + j as f64 * col[2]) * dx,
            ];
            let rr = ((i as f64 - ci).powi(2) + (j as f64 - cj).powi(2)).sqrt();
            if circular && rr > cols as f64 / 2.0 {
                fov[[j, i]] = false;
                continue;
            }
            hu[[j, i]] = anat.hu(p) + noise * rng.normal();
        }
    }
    (hu, fov)
}

fn uid(root: &str, rng: &mut Rng) -> String {
    format!("2.25.{}{}", root, rng.next_u64() % 1_000_000_000_000)
}

struct SeriesSpec<'a> {
    series_uid: &'a str,
    study_uid: &'a str,
    number: i64,
    description: &'a str,
    image_type: &'a str,
}

/// RLE Lossless encoding of one 16-bit frame (PS3.5 G): two byte segments, PackBits each.
fn rle_encode(words: &[u16]) -> Vec<u8> {
    let hi: Vec<u8> = words.iter().map(|w| (w >> 8) as u8).collect();
    let lo: Vec<u8> = words.iter().map(|w| *w as u8).collect();
    let segs = [packbits(&hi), packbits(&lo)];
    let mut out = vec![0u8; 64];
    out[0..4].copy_from_slice(&2u32.to_le_bytes());
    let mut off = 64u32;
    for (i, s) in segs.iter().enumerate() {
        out[4 + 4 * i..8 + 4 * i].copy_from_slice(&off.to_le_bytes());
        off += s.len() as u32;
    }
    for s in segs {
        out.extend_from_slice(&s);
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn packbits(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let mut run = 1;
        while i + run < b.len() && b[i + run] == b[i] && run < 128 {
            run += 1;
        }
        if run >= 2 {
            out.push((257 - run) as u8);
            out.push(b[i]);
            i += run;
        } else {
            let start = i;
            let mut n = 0;
            while i < b.len() && n < 128 && !(i + 1 < b.len() && b[i + 1] == b[i]) {
                i += 1;
                n += 1;
            }
            if n == 0 {
                i += 1;
                n = 1;
            }
            out.push((n - 1) as u8);
            out.extend_from_slice(&b[start..start + n]);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn write_slice(
    dir: &Path,
    name: &str,
    o: &PhantomOptions,
    s: &SeriesSpec,
    sop_uid: &str,
    instance: i64,
    pos: Vec3,
    row: Vec3,
    col: Vec3,
    dx: f64,
    rows: usize,
    cols: usize,
    hu: &Array2<f64>,
    fov: &Array2<bool>,
) -> std::io::Result<PathBuf> {
    let mut obj = InMemDicomObject::new_empty();
    let slope = o.rescale_slope;
    let intercept = -1024.0;
    put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    put(&mut obj, tags::IMAGE_TYPE, VR::CS, s.image_type);
    put(&mut obj, tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2");
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
    put(&mut obj, tags::MODALITY, VR::CS, "CT");
    put(&mut obj, tags::MANUFACTURER, VR::LO, "ctprep phantom");
    put(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, s.description);
    put(&mut obj, tags::PATIENT_NAME, VR::PN, "PHANTOM^CHEST");
    put(&mut obj, tags::PATIENT_ID, VR::LO, format!("PHANTOM-{:04}", o.seed));
    put(&mut obj, tags::CONVOLUTION_KERNEL, VR::SH, "STANDARD");
    put(&mut obj, tags::KVP, VR::DS, "120");
    if o.slice_thickness_tag {
        put(&mut obj, tags::SLICE_THICKNESS, VR::DS, ds(&[o.slice_spacing]));
    }
    if o.tilt_deg != 0.0 {
        put(&mut obj, tags::GANTRY_DETECTOR_TILT, VR::DS, ds(&[o.tilt_deg]));
    }
    put(&mut obj, tags::PATIENT_POSITION, VR::CS, if o.feet_first { "FFS" } else { "HFS" });
    put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, s.study_uid);
    put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, s.series_uid);
    put(&mut obj, tags::SERIES_NUMBER, VR::IS, s.number.to_string());
    put(&mut obj, tags::INSTANCE_NUMBER, VR::IS, instance.to_string());
    put(&mut obj, tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&pos));
    put(&mut obj, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&[row[0], row[1], row[2], col[0], col[1], col[2]]));
    put(&mut obj, tags::FRAME_OF_REFERENCE_UID, VR::UI, format!("{}.1", s.study_uid));
    put(&mut obj, tags::SLICE_LOCATION, VR::DS, ds(&[pos[2]]));
    put(&mut obj, tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(&mut obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put(&mut obj, tags::ROWS, VR::US, PrimitiveValue::from(rows as u16));
    put(&mut obj, tags::COLUMNS, VR::US, PrimitiveValue::from(cols as u16));
    put(&mut obj, tags::PIXEL_SPACING, VR::DS, ds(&[dx, dx]));
    put(&mut obj, tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(&mut obj, tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16));
    put(&mut obj, tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16));
    put(&mut obj, tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(if o.unsigned { 0u16 } else { 1u16 }));
    if !o.unsigned {
        put(&mut obj, tags::PIXEL_PADDING_VALUE, VR::SS, PrimitiveValue::from(-2000i16));
    }
    put(&mut obj, tags::WINDOW_CENTER, VR::DS, "40");
    put(&mut obj, tags::WINDOW_WIDTH, VR::DS, "400");
    put(&mut obj, tags::RESCALE_INTERCEPT, VR::DS, ds(&[intercept]));
    put(&mut obj, tags::RESCALE_SLOPE, VR::DS, ds(&[slope]));
    put(&mut obj, tags::RESCALE_TYPE, VR::LO, "HU");
    put_pixels(&mut obj, o, &stored_words(o, hu, fov, slope, intercept), rows, cols);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(o.syntax.uid())
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                .media_storage_sop_instance_uid(sop_uid),
        )
        .map_err(std::io::Error::other)?;
    let path = dir.join(name);
    file.write_to_file(&path).map_err(std::io::Error::other)?;
    Ok(path)
}

/// HU to stored values: (HU - intercept) / slope, clamped; outside the field of view the
/// padding value (-2000 signed; 0 unsigned, which has no PixelPaddingValue).
fn stored_words(o: &PhantomOptions, hu: &Array2<f64>, fov: &Array2<bool>, slope: f64, intercept: f64) -> Vec<u16> {
    hu.iter()
        .zip(fov.iter())
        .map(|(&h, &inside)| {
            if o.unsigned {
                if inside { ((h - intercept) / slope).round().clamp(0.0, 65535.0) as u16 } else { 0 }
            } else if inside {
                (((h - intercept) / slope).round().clamp(-1999.0, 32767.0) as i16) as u16
            } else {
                (-2000i16) as u16
            }
        })
        .collect()
}

/// PixelData: native 16-bit words, or one RLE or lossless-JPEG fragment.
fn put_pixels(obj: &mut InMemDicomObject, o: &PhantomOptions, words: &[u16], rows: usize, cols: usize) {
    let fragment = match o.syntax {
        Syntax::Rle => Some(rle_encode(words)),
        Syntax::JpegLossless => {
            let mut f = ctprep_core::dicom::ljpeg::encode(words, rows, cols, 16, 1);
            // Fragments have even length: pad after the end-of-image marker.
            if f.len() % 2 == 1 {
                f.push(0);
            }
            Some(f)
        }
        _ => None,
    };
    match fragment {
        Some(frag) => {
            obj.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                dicom_core::value::Value::from(PixelFragmentSequence::new(vec![], vec![frag])),
            ));
        }
        None => put(obj, tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.to_vec().into())),
    }
}

/// Write the phantom series (and extras) into `dir`.
pub fn write_series(dir: &Path, o: &PhantomOptions) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let p = plan(o);
    let anat = Anatomy::new(p.r, p.z0, p.z1, o.seed, o.anatomy);
    let mut rng = Rng(o.seed);
    let study_uid = uid("1", &mut rng);
    let series_uid = uid("2", &mut rng);
    let spec = SeriesSpec {
        series_uid: &series_uid,
        study_uid: &study_uid,
        number: 2,
        description: "PHANTOM CHEST",
        image_type: "ORIGINAL\\PRIMARY\\AXIAL",
    };
    let skip = if o.missing_slice { Some(o.slices / 2) } else { None };
    // Instance numbers run head to feet for feet-first scans, as scanners do.
    let jobs: Vec<(usize, String, String, i64)> = (0..o.slices)
        .filter(|k| Some(*k) != skip)
        .map(|k| {
            let inst = if o.feet_first { (o.slices - k) as i64 } else { k as i64 + 1 };
            (k, format!("{}.dcm", rng.hex(16)), uid("3", &mut rng), inst)
        })
        .collect();
    let mut files: Vec<PathBuf> = jobs
        .par_iter()
        .map(|(k, name, sop, inst)| {
            let (hu, fov) = render(
                &anat,
                p.positions[*k],
                p.row,
                p.col,
                p.dx,
                o.size,
                o.size,
                o.noise_hu,
                o.seed.wrapping_mul(1000).wrapping_add(*k as u64),
            );
            write_slice(dir, name, o, &spec, sop, *inst, p.positions[*k], p.row, p.col, p.dx, o.size, o.size, &hu, &fov)
        })
        .collect::<std::io::Result<_>>()?;
    if o.second_series {
        let uid2 = uid("4", &mut rng);
        let spec2 = SeriesSpec {
            series_uid: &uid2,
            study_uid: &study_uid,
            number: 3,
            description: "PHANTOM CHEST THICK",
            image_type: "ORIGINAL\\PRIMARY\\AXIAL",
        };
        let n2 = (o.slices / 2).max(2);
        for k in 0..n2 {
            let pos = p.positions[(2 * k).min(o.slices - 1)];
            let (hu, fov) = render(&anat, pos, p.row, p.col, p.dx, o.size, o.size, o.noise_hu, 77 + k as u64);
            let name = format!("{}.dcm", rng.hex(16));
            let sop = uid("5", &mut rng);
            files.push(write_slice(dir, &name, o, &spec2, &sop, k as i64 + 1, pos, p.row, p.col, p.dx, o.size, o.size, &hu, &fov)?);
        }
    }
    if o.localizer {
        // Coronal scout through the table axis, same series UID as the axial images.
        let spec_l = SeriesSpec { image_type: "ORIGINAL\\PRIMARY\\LOCALIZER", description: "PHANTOM CHEST", ..spec };
        let rows = o.slices.max(8);
        let (row, col) = ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]);
        let dxl = (p.z1 - p.z0) / rows as f64;
        let pos = [-(o.size as f64 - 1.0) / 2.0 * p.dx * dxl / dxl, 0.0, p.z1];
        let (hu, fov) = render(&anat, pos, row, col, dxl.min(p.dx), rows, o.size, 0.0, 5);
        let name = format!("{}.dcm", rng.hex(16));
        let sop = uid("6", &mut rng);
        files.push(write_slice(dir, &name, o, &spec_l, &sop, 1, pos, row, col, dxl.min(p.dx), rows, o.size, &hu, &fov)?);
    }
    if o.junk {
        let junk = dir.join("DIRFILE");
        std::fs::write(&junk, (0..4096).map(|i| (i * 31 % 256) as u8).collect::<Vec<_>>())?;
        std::fs::write(dir.join("notes.txt"), "exported by the phantom; not DICOM\n")?;
    }
    // Ground truth on the grid dcm-stack makes: sorted along the normal, orthogonal.
    let normal = normalize(cross(p.row, p.col));
    let mut order: Vec<usize> = (0..o.slices).collect();
    let proj = |k: usize| ctprep_core::geometry::dot(p.positions[k], normal);
    order.sort_by(|&a, &b| proj(a).total_cmp(&proj(b)));
    let first = p.positions[order[0]];
    let dz = (proj(order[1]) - proj(order[0])).abs();
    let geometry = Geometry { spacing: [p.dx, p.dx, dz], origin: first, direction: [p.row, p.col, normal] };
    let mut mask = Array3::<u8>::zeros((o.slices, o.size, o.size));
    mask.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
        for j in 0..o.size {
            for i in 0..o.size {
                let w = geometry.index_to_world([i as f64, j as f64, k as f64]);
                slab[[j, i]] = u8::from(anat.is_lung(w));
            }
        }
    });
    let lung_mask = Volume { data: VolumeData::U8(mask), geometry, meta: Meta { kind: Kind::Mask, ..Meta::default() } };
    Ok(Written { files, series_uid, lung_mask })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_round_trip() {
        let data: Vec<u8> = (0..1000).map(|i| if i % 100 < 50 { 7 } else { (i * 13 % 256) as u8 }).collect();
        let enc = packbits(&data);
        let mut dec = Vec::new();
        let mut i = 0;
        while i < enc.len() {
            let n = enc[i] as i8;
            i += 1;
            if n >= 0 {
                dec.extend_from_slice(&enc[i..i + n as usize + 1]);
                i += n as usize + 1;
            } else if n != -128 {
                dec.extend(std::iter::repeat_n(enc[i], (1 - n as i32) as usize));
                i += 1;
            }
        }
        assert_eq!(dec, data);
    }

    #[test]
    fn anatomy_has_the_expected_tissues() {
        let a = Anatomy::new(180.0, -150.0, 150.0, 1, Variants::default());
        let (cx, cy, cz) = a.lung_centre(-1.0);
        assert!(a.is_lung([cx, cy + 0.2 * 180.0 * 0.34, cz]));
        assert_eq!(a.hu([0.0, 0.36 * 180.0, 0.0]), 700.0); // spine
        assert_eq!(a.hu([0.0, -170.0, 0.0]), -1000.0); // outside, anterior
        assert_eq!(a.hu([0.0, -0.12 * 180.0, 149.0]), -1000.0); // trachea reaches the top
    }
}
