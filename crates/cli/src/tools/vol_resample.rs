//! vol-resample: a new voxel grid in physical space (isotropic spacing, another volume's grid, or
//! an axis-aligned reorientation).

use crate::args::{CommonArgs, InputArgs, OutputArgs, parse_spacing3};
use crate::{Cx, Exit};
use anyhow::Result;
use clap::Parser;
use ctprep_core::io::{ReadOptions, Source, read_volume};
use ctprep_core::resample::{GridMode, Interp, MaskMode, ResampleOptions, Target, resample};
use ctprep_core::volume::DType;
use std::io::Write;

/// Resample a volume to a new spacing (x,y,z mm), onto another volume's grid, or to an
/// axis-aligned orientation. Anatomy keeps its world (LPS) position.
///
/// The output covers the input's physical box: shape = round(extent / spacing) per axis (as the
/// tutorial), with the spacing adjusted to fit exactly (reported with -v and --json); --exact
/// keeps the spacing instead. Outside the input: -1024 HU for CT, 0 for masks.
///
/// Examples:
///   vol-resample hu.nii.gz --spacing 1 -o hu_1mm.nii.gz
///   vol-resample mask.nii.gz --like ct.nii.gz -o mask_on_ct.nii.gz
///   dcm-stack scan/ | hu-convert | vol-resample --spacing 0.7,0.7,1.25 --interp cubic > out.nii
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    /// Target spacing in mm: one value (isotropic) or x,y,z
    #[arg(long, value_name = "MM|X,Y,Z", value_parser = parse_spacing3, required_unless_present_any = ["like", "orient"])]
    pub spacing: Option<[f64; 3]>,
    /// Resample onto this volume's grid (its geometry and shape)
    #[arg(long, value_name = "REF", conflicts_with_all = ["spacing", "orient"])]
    pub like: Option<String>,
    /// Reorient to an axis-aligned grid (RAS or LPS) covering the input
    #[arg(long, value_name = "RAS|LPS", value_parser = ["RAS", "LPS", "ras", "lps"], conflicts_with = "like")]
    pub orient: Option<String>,
    /// Keep the requested spacing exactly and trim or extend the extent (centred) instead
    #[arg(long)]
    pub exact: bool,
    /// Interpolation: nearest, linear (default for images), cubic (B-spline, the tutorial's order 3)
    #[arg(long, value_name = "KIND", value_parser = ["nearest", "linear", "cubic"])]
    pub interp: Option<String>,
    /// Masks: nearest (default) or linear (interpolate, then threshold at 0.5; smoother edges)
    #[arg(long, value_name = "MODE", default_value = "nearest", value_parser = ["nearest", "linear"])]
    pub mask_mode: String,
    /// Grid: physical (voxel boxes, ITK) or corners (first/last centres aligned, scipy zoom / the tutorial)
    #[arg(long, value_name = "MODE", default_value = "physical", value_parser = ["physical", "corners"])]
    pub grid: String,
    /// Value outside the input (default: -1024 HU for CT, 0 for masks)
    #[arg(long, value_name = "V", allow_negative_numbers = true, value_parser = crate::args::finite)]
    pub fill: Option<f64>,
    /// Gaussian anti-aliasing when downsampling (images only): on or off
    #[arg(long, value_name = "ON|OFF", default_value = "on", value_parser = ["on", "off"])]
    pub antialias: String,
    /// Output type (default: the input's; integers are rounded)
    #[arg(long, value_name = "TYPE", value_parser = ["u8", "i16", "u16", "i32", "f32", "f64"])]
    pub dtype: Option<String>,
    /// Print a JSON summary on stdout (needs -o FILE)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    let inputs: Vec<&str> = args.input.path_str().into_iter().chain(args.like.as_deref()).collect();
    args.out.check(&inputs, &[])?;
    crate::args::json_needs_file(args.json, &args.out.output, "volume")?;
    let vol = args.input.read(cx)?;
    let target = if let Some(r) = &args.like {
        let refv = read_volume(&Source::parse(r), &ReadOptions::default()).map_err(crate::core)?.volume;
        Target::Like { shape: refv.shape(), geometry: refv.geometry }
    } else if let Some(o) = &args.orient {
        Target::Orient { ras: o.eq_ignore_ascii_case("ras"), spacing: args.spacing }
    } else {
        Target::Spacing { spacing: args.spacing.unwrap_or([1.0; 3]), exact: args.exact }
    };
    let opts = ResampleOptions {
        target,
        interp: args.interp.as_deref().map(|i| match i {
            "nearest" => Interp::Nearest,
            "cubic" => Interp::Cubic,
            _ => Interp::Linear,
        }),
        mask_mode: if args.mask_mode == "linear" { MaskMode::LinearThreshold } else { MaskMode::Nearest },
        grid: if args.grid == "corners" { GridMode::Corners } else { GridMode::Physical },
        fill: args.fill,
        antialias: args.antialias == "on",
        dtype: args.dtype.as_deref().and_then(DType::parse),
    };
    let t0 = std::time::Instant::now();
    let mut r = resample(&vol, &opts).map_err(crate::core)?;
    cx.time_in_memory(t0.elapsed(), "resampling alone");
    for n in &r.notes {
        cx.verbose(n);
    }
    let g = &r.volume.geometry;
    cx.verbose(format!("{:?} interpolation; output {:?} (z,y,x) at actual spacing x,y,z {:.6?} mm", r.interp, r.volume.shape(), g.spacing));
    cx.stamp(&mut r.volume.meta);
    args.out.write(cx, &r.volume)?;
    if args.json {
        let s = serde_json::json!({
            "output": args.out.output, "shape_zyx": r.volume.shape(), "spacing_xyz_mm": g.spacing,
            "origin_lps_mm": g.origin, "interp": format!("{:?}", r.interp).to_lowercase(), "dtype": r.volume.data.dtype().name(),
        });
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&s)?)?;
    }
    Ok(Exit::Ok)
}
