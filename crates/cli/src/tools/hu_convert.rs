//! hu-convert: stored values to Hounsfield units, padding to air.

use crate::args::{CommonArgs, InputArgs, OutputArgs, StackArgs, parse_range};
use crate::{Cx, Exit};
use anyhow::Result;
use clap::Parser;
use ctprep_core::hu::{HuOptions, to_hu_owned};
use ctprep_core::meta::{Kind, Meta};
use ctprep_core::volume::{DType, Volume, VolumeData};
use std::path::Path;

/// Convert a CT volume to Hounsfield units (HU), mapping padding outside the field of view to air.
///
/// HU = stored x RescaleSlope + RescaleIntercept. Voxels whose stored value is the
/// PixelPaddingValue (or inside PixelPaddingRangeLimit) become --air HU; without a padding tag the
/// tutorial's rule applies (stored -2000 is padding). Output int16 when slope and intercept are
/// integers, else float32.
///
/// Examples:
///   dcm-stack scan/ | hu-convert -o hu.nii.gz
///   hu-convert scan/ -o hu.nii.gz --write-fov-mask fov.nii.gz     (a DICOM folder directly)
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    /// HU given to padding voxels (-1024 is what the tutorial's -2000 -> 0 rule produces)
    #[arg(long, value_name = "HU", default_value_t = -1024.0, allow_negative_numbers = true, value_parser = crate::args::finite)]
    pub air: f64,
    /// Output type: i16, i32, f32 (default: i16 for integer rescale, else f32)
    #[arg(long, value_name = "TYPE", value_enum)]
    pub dtype: Option<HuDType>,
    /// Clamp the result to MIN:MAX HU, e.g. -1024:3071
    #[arg(long, value_name = "MIN:MAX", value_parser = parse_range, allow_hyphen_values = true)]
    pub clamp: Option<(f64, f64)>,
    /// HU below this are outside the scanner's field of view (e.g. -2048) and become air too
    #[arg(long, value_name = "HU", default_value_t = -1024.0, allow_negative_numbers = true, conflicts_with = "no_floor", value_parser = crate::args::finite)]
    pub floor: f64,
    /// Keep values below --floor as they are
    #[arg(long)]
    pub no_floor: bool,
    /// Also write the mask of measured (non-padding) voxels, uint8 0/1, to this new file
    #[arg(long, value_name = "FILE")]
    pub write_fov_mask: Option<String>,
    /// Renamed --write-fov-mask (it writes FILE, never reads it)
    #[arg(long, value_name = "FILE", hide = true)]
    pub fov_mask: Option<String>,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

/// The output types HU fit: 16- or 32-bit integers, or float32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HuDType {
    #[value(alias = "int16")]
    I16,
    #[value(alias = "int32")]
    I32,
    #[value(alias = "float32")]
    F32,
}

fn is_dicom_input(s: &str) -> bool {
    let p = Path::new(s);
    s != "-" && (p.is_dir() || ctprep_core::dicom::looks_like_dicom(p))
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    if let Some(f) = &args.fov_mask {
        return Err(crate::usage_error(
            format!("--fov-mask is now --write-fov-mask: it writes '{f}', it does not read it"),
            "pass --write-fov-mask NEW.nii.gz",
        ));
    }
    args.out.check(args.input.path_str().as_slice(), args.write_fov_mask.as_deref().as_slice())?;
    let t0 = std::time::Instant::now();
    let vol = if is_dicom_input(&args.input.input) {
        cx.verbose("input is DICOM: stacking it first");
        crate::stacking::stack_inputs(std::slice::from_ref(&args.input.input), &args.stack, cx)?.volume
    } else {
        args.input.read(cx)?
    };
    let opts = HuOptions {
        air: args.air,
        dtype: args.dtype.map(|d| match d {
            HuDType::I16 => DType::I16,
            HuDType::I32 => DType::I32,
            HuDType::F32 => DType::F32,
        }),
        clamp: args.clamp,
        floor: (!args.no_floor).then_some(args.floor),
        fov_mask: args.write_fov_mask.is_some(),
    };
    let mut r = to_hu_owned(vol, &opts)?;
    cx.time_in_memory(t0.elapsed(), "reading and decoding included, writing not");
    cx.verbose(format!("padding rule: {}; {} voxel(s) set to {} HU", r.padding_rule, r.padded_voxels, args.air));
    for w in &r.warnings {
        cx.warn(w);
    }
    cx.stamp(&mut r.volume.meta);
    args.out.write(cx, &r.volume)?;
    if let Some(path) = &args.write_fov_mask {
        let mut meta = Meta { kind: Kind::Mask, series: r.volume.meta.series.clone(), ..Meta::default() };
        cx.stamp(&mut meta);
        let fov = r.fov_mask.take().unwrap_or_default();
        let mask = Volume { data: VolumeData::U8(fov), geometry: r.volume.geometry.clone(), meta };
        let o = crate::args::OutputArgs { output: path.clone(), format: None, ..args.out.clone() };
        o.write(cx, &mask)?;
    }
    args.out.summary(|| {
        let (mn, mx) = r.volume.data.min_max().unwrap_or((0.0, 0.0));
        serde_json::json!({
            "output": args.out.output, "dtype": r.volume.data.dtype().name(), "shape_zyx": r.volume.shape(),
            "padding_rule": r.padding_rule, "padded_voxels": r.padded_voxels, "air_hu": args.air, "min_hu": mn, "max_hu": mx,
            "warnings": r.warnings,
        })
    })?;
    Ok(Exit::Ok)
}
