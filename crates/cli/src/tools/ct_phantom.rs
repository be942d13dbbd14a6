//! ct-phantom: a synthetic chest-CT DICOM series (the built-in sample and the test factory).

use crate::args::CommonArgs;
use crate::{Cx, Exit};
use anyhow::Result;
use clap::Parser;
use ctprep_phantom::{PhantomOptions, Syntax, Variants, write_series};
use std::path::PathBuf;

/// Write a synthetic chest CT as a DICOM series: body, fat, lungs with vessels and nodules (one on
/// the pleura), trachea and bronchi, spine, ribs, stomach gas under the diaphragm, a table, and a
/// circular field of view padded with -2000. Files get random names; SliceThickness is absent.
///
/// Examples:
///   ct-phantom demo/dicom --truth demo/lung_truth.nii.gz
///   ct-phantom bad/ --tilt 15 --missing-slice --localizer --junk --feet-first
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    /// Folder to write the DICOM files into (created if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Rows = columns per slice
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Number of slices
    #[arg(long, default_value_t = 60)]
    pub slices: usize,
    /// In-plane pixel spacing in mm (default: a 360 mm field of view)
    #[arg(long, value_name = "MM")]
    pub pixel_spacing: Option<f64>,
    /// Table increment between slices in mm
    #[arg(long, value_name = "MM", default_value_t = 5.0)]
    pub slice_spacing: f64,
    /// Random seed (same seed, same files)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// RescaleSlope (intercept stays -1024)
    #[arg(long, default_value_t = 1.0)]
    pub slope: f64,
    /// Store uint16 (no padding tag) instead of int16
    #[arg(long)]
    pub unsigned: bool,
    /// Feet-first scan (rows run right-to-left, instance numbers head to feet)
    #[arg(long)]
    pub feet_first: bool,
    /// Gantry tilt in degrees
    #[arg(long, value_name = "DEG", default_value_t = 0.0, allow_negative_numbers = true)]
    pub tilt: f64,
    /// Leave out the middle slice
    #[arg(long)]
    pub missing_slice: bool,
    /// Add a second, thicker series of the same patient
    #[arg(long)]
    pub second_series: bool,
    /// Add a coronal localizer in the same series
    #[arg(long)]
    pub localizer: bool,
    /// Add non-DICOM files (DIRFILE, notes.txt)
    #[arg(long)]
    pub junk: bool,
    /// Transfer syntax: explicit, implicit, deflate, rle, jpeg-lossless
    #[arg(long, value_enum, default_value_t = SyntaxArg::Explicit)]
    pub syntax: SyntaxArg,
    /// Write the SliceThickness tag
    #[arg(long)]
    pub slice_thickness_tag: bool,
    /// Noise standard deviation in HU
    #[arg(long, default_value_t = 10.0)]
    pub noise: f64,
    /// Make the table split the outside air (where the tutorial's segmentation fails)
    #[arg(long)]
    pub table_splits_air: bool,
    /// A hollow carbon-fibre table the patient lies on (thin skins around an air-like core)
    #[arg(long)]
    pub hollow_table: bool,
    /// Wall the right lung's base off but for a narrow neck (a thickened fissure)
    #[arg(long)]
    pub lobe_neck: bool,
    /// Start the scan this far above the chest (neck, then skull with a sinus)
    #[arg(long, value_name = "MM", default_value_t = 0.0)]
    pub head_mm: f64,
    /// Diameter of a soft-tissue mass on the right lung's lateral pleura (0: none)
    #[arg(long, value_name = "MM", default_value_t = 0.0)]
    pub pleural_mass: f64,
    /// Also write the ground-truth lung mask (on dcm-stack's grid) to this NIfTI file
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyntaxArg {
    Explicit,
    Implicit,
    Deflate,
    Rle,
    JpegLossless,
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    if args.size < 8 || args.slices < 2 || args.size > 2048 || args.slices > 4000 {
        return Err(crate::usage_error("--size must be 8..2048 and --slices 2..4000", "e.g. --size 128 --slices 60"));
    }
    if ![args.slice_spacing, args.slope, args.tilt, args.noise].iter().all(|v| v.is_finite()) || args.slice_spacing <= 0.0 {
        return Err(crate::usage_error(
            "--slice-spacing, --slope, --tilt and --noise must be finite (spacing > 0)",
            "e.g. --slice-spacing 2.5",
        ));
    }
    let o = PhantomOptions {
        size: args.size,
        slices: args.slices,
        pixel_spacing: args.pixel_spacing,
        slice_spacing: args.slice_spacing,
        seed: args.seed,
        rescale_slope: args.slope,
        unsigned: args.unsigned,
        feet_first: args.feet_first,
        tilt_deg: args.tilt,
        missing_slice: args.missing_slice,
        second_series: args.second_series,
        localizer: args.localizer,
        junk: args.junk,
        syntax: match args.syntax {
            SyntaxArg::Explicit => Syntax::ExplicitLittle,
            SyntaxArg::Implicit => Syntax::ImplicitLittle,
            SyntaxArg::Deflate => Syntax::DeflatedExplicit,
            SyntaxArg::Rle => Syntax::Rle,
            SyntaxArg::JpegLossless => Syntax::JpegLossless,
        },
        slice_thickness_tag: args.slice_thickness_tag,
        noise_hu: args.noise,
        anatomy: Variants {
            table_splits_air: args.table_splits_air,
            hollow_table: args.hollow_table,
            lobe_neck: args.lobe_neck,
            head_mm: args.head_mm,
            pleural_mass_mm: args.pleural_mass,
        },
    };
    let mut w = write_series(&args.dir, &o).map_err(|e| anyhow::anyhow!("cannot write the phantom into '{}': {e}", args.dir.display()))?;
    cx.info(format!("wrote {} files into {} (series {})", w.files.len(), args.dir.display(), w.series_uid));
    if let Some(t) = &args.truth {
        cx.stamp(&mut w.lung_mask.meta);
        ctprep_core::io::write_volume(&w.lung_mask, &ctprep_core::io::Sink::Path(t.clone()), &Default::default())?;
        cx.verbose(format!("wrote the ground-truth lung mask to {}", t.display()));
    }
    Ok(Exit::Ok)
}
