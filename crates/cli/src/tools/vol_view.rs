//! vol-view: slices, overlays, montages and histograms as PNG.

use crate::args::{CommonArgs, InputArgs};
use crate::{Cx, Exit, usage_error};
use anyhow::Result;
use clap::Parser;
use ctprep_core::io::{ReadOptions, Source, read_volume};
use ctprep_core::view::{Plane, Position, SliceOptions, histogram, montage, slice, window};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Draw a slice of a volume (HU, stored, mask, normalized) or of one DICOM file as PNG, with
/// correct physical aspect, orientation letters, a window, and masks overlaid; or a montage; or
/// the HU histogram (the tutorial's first plot).
///
/// Display convention: radiological. Axial slices are seen from the feet (patient's right on the
/// left, anterior up), coronal from the front, sagittal from the patient's left.
///
/// Examples:
///   vol-view hu.nii.gz -o axial.png --window lung --overlay lungs.nii.gz
///   vol-view hu.nii.gz --coronal --montage 3x4 -o montage.png
///   vol-view hu.nii.gz --histogram hist.png
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output PNG
    #[arg(short, long, value_name = "PNG")]
    pub output: Option<String>,
    /// Axial plane (default)
    #[arg(long, conflicts_with_all = ["coronal", "sagittal"])]
    pub axial: bool,
    /// Coronal plane
    #[arg(long, conflicts_with = "sagittal")]
    pub coronal: bool,
    /// Sagittal plane
    #[arg(long)]
    pub sagittal: bool,
    /// Slice index along the volume axis closest to the plane's normal (default: the middle)
    #[arg(long, value_name = "N", conflicts_with = "mm")]
    pub index: Option<usize>,
    /// Slice position in world millimetres (LPS) along the plane's normal
    #[arg(long, value_name = "MM", allow_negative_numbers = true, value_parser = crate::args::finite)]
    pub mm: Option<f64>,
    /// Window: lung, mediastinum, bone, or C,W in HU (default from the data kind: lung for CT)
    #[arg(long, value_name = "NAME|C,W", allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Overlay a mask or label map (any grid: placed by world coordinates); repeatable
    #[arg(long, value_name = "MASK")]
    pub overlay: Vec<String>,
    /// Draw overlays as contours instead of translucent fills
    #[arg(long)]
    pub contour: bool,
    /// Overlay opacity
    #[arg(long, value_name = "A", default_value_t = 0.4)]
    pub alpha: f32,
    /// Evenly spaced slices in one picture, e.g. 3x4 (rows x columns)
    #[arg(long, value_name = "RxC")]
    pub montage: Option<String>,
    /// Also (or only) write the value histogram to this PNG
    #[arg(long, value_name = "PNG")]
    pub histogram: Option<String>,
    /// Histogram bins
    #[arg(long, value_name = "N", default_value_t = 80, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub bins: u16,
    /// Logarithmic histogram counts
    #[arg(long)]
    pub log: bool,
    /// Longest side of the picture, pixels, enlarging small volumes too (default: one pixel per
    /// voxel of the finer in-plane spacing, at most 1024)
    #[arg(long, value_name = "PX")]
    pub size: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

fn write_png(cx: &Cx, path: &str, bytes: &[u8]) -> Result<()> {
    if path == "-" {
        if std::io::stdout().is_terminal() {
            return Err(usage_error("refusing to write a PNG to a terminal", "pass -o picture.png or redirect with `> picture.png`"));
        }
        std::io::stdout().write_all(bytes)?;
    } else {
        ctprep_core::io::write_file_atomic(Path::new(path), |w| w.write_all(bytes))?;
    }
    cx.verbose(format!("wrote {path}"));
    Ok(())
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    if args.output.is_none() && args.histogram.is_none() {
        return Err(usage_error("nothing to draw", "pass -o slice.png and/or --histogram hist.png"));
    }
    for (out, flag) in [(&args.output, "-o"), (&args.histogram, "--histogram")] {
        if let Some(o) = out {
            crate::args::check_output_name(o, &[".png"], flag)?;
        }
    }
    let inputs: Vec<&str> = args.input.path_str().into_iter().chain(args.overlay.iter().map(String::as_str)).collect();
    let outputs: Vec<&str> = args.output.iter().chain(&args.histogram).map(String::as_str).collect();
    crate::args::no_clobber(&inputs, &outputs)?;
    let path = Path::new(&args.input.input);
    let vol = if args.input.input != "-" && ctprep_core::dicom::looks_like_dicom(path) {
        ctprep_core::dicom::single::file_volume(path)?
    } else {
        args.input.read(cx)?
    };
    let masks = args
        .overlay
        .iter()
        .map(|m| read_volume(&Source::parse(m), &ReadOptions::default()).map(|l| l.volume))
        .collect::<ctprep_core::Result<Vec<_>>>()?;
    let refs: Vec<&ctprep_core::Volume> = masks.iter().collect();
    let plane = if args.coronal {
        Plane::Coronal
    } else if args.sagittal {
        Plane::Sagittal
    } else {
        Plane::Axial
    };
    let range = match &args.window {
        Some(w) => {
            let (c, wd) = window(w)
                .ok_or_else(|| usage_error(format!("unknown window '{w}'"), "use lung, mediastinum, bone, or C,W such as -600,1500"))?;
            Some((c - wd / 2.0, c + wd / 2.0))
        }
        None => None,
    };
    let position = match (args.index, args.mm) {
        (Some(i), _) => Position::Index(i),
        (_, Some(m)) => Position::Mm(m),
        _ => Position::Middle,
    };
    let o = SliceOptions {
        plane,
        position,
        range,
        contour: args.contour,
        alpha: args.alpha.clamp(0.0, 1.0),
        max_px: args.size.unwrap_or(1024).clamp(32, 8192),
        enlarge: args.size.is_some(),
        letters: true,
    };
    if let Some(out) = &args.output {
        let img = match &args.montage {
            Some(m) => {
                let (r, c) = m
                    .split_once(['x', 'X'])
                    .and_then(|(r, c)| Some((r.parse::<usize>().ok()?, c.parse::<usize>().ok()?)))
                    .filter(|(r, c)| (1..=20).contains(r) && (1..=20).contains(c))
                    .ok_or_else(|| usage_error(format!("bad --montage '{m}'"), "use ROWSxCOLS from 1x1 to 20x20, e.g. 3x4"))?;
                montage(&vol, &refs, &o, r, c)?
            }
            None => {
                let (img, at) = slice(&vol, &refs, &o)?;
                cx.verbose(format!("{} slice at {} = {at:.2} mm, {}x{} px", plane.name(), plane.coordinate(), img.width, img.height));
                img
            }
        };
        write_png(cx, out, &img.png()?)?;
    }
    if let Some(h) = &args.histogram {
        let xlabel = match vol.meta.kind {
            ctprep_core::Kind::Hu | ctprep_core::Kind::Stored => "HOUNSFIELD UNITS",
            _ => "VALUE",
        };
        let img = histogram(&vol, usize::from(args.bins), range, args.log, xlabel);
        write_png(cx, h, &img.png()?)?;
    }
    Ok(Exit::Ok)
}
