//! lung-seg: the tutorial's lung mask, and a robust default.

use crate::args::{CommonArgs, InputArgs, OutputArgs};
use crate::{Cx, Exit, usage_error};
use anyhow::Result;
use clap::Parser;
use ctprep_core::normalize::apply_outside;
use ctprep_core::seg::{LungOptions, Method, segment};

/// Segment the lungs of an HU volume into a uint8 mask on the same grid.
///
/// Default (robust): the body is the largest dense (> -320 HU) component, so the table and the air
/// under it are excluded; lungs are the one or two largest air components inside the body; the
/// trachea and main bronchi are tracked and removed; one-voxel bridges to gas under the diaphragm
/// are cut; each lung is closed (--close, for nodules on the pleura) and its holes filled.
/// --method tutorial reproduces the tutorial's segment_lung_mask voxel for voxel.
///
/// Examples:
///   lung-seg hu_1mm.nii.gz -o lungs.nii.gz -v
///   lung-seg hu_1mm.nii.gz --labels --dilate 5 -o lungs.nii.gz --json
///   lung-seg hu_1mm.nii.gz --method tutorial --fill -o tutorial_mask.nii.gz
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment, mut_arg("json", |a| a.help("Print the QC report as JSON on stdout (needs -o FILE)")))]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    /// robust (default) or tutorial
    #[arg(long, value_name = "METHOD", value_enum, default_value_t = MethodArg::Robust)]
    pub method: MethodArg,
    /// Tutorial method: fill each slice's lung structures (fill_lung_structures=True)
    #[arg(long, overrides_with = "no_fill")]
    pub fill: bool,
    /// Tutorial method: do not fill (the default of the tutorial's first call)
    #[arg(long, overrides_with = "fill")]
    pub no_fill: bool,
    /// Write labels 1 = right lung, 2 = left lung (when they separate) instead of 0/1
    #[arg(long)]
    pub labels: bool,
    /// Keep the trachea and main bronchi
    #[arg(long)]
    pub keep_airways: bool,
    /// Closing radius in mm per lung (includes nodules on the pleura); 0 = none
    #[arg(long, value_name = "MM", default_value_t = 10.0, value_parser = crate::args::radius_mm)]
    pub close: f64,
    /// Dilate the final mask by a ball of this radius in mm (the tutorial's advice)
    #[arg(long, value_name = "MM", default_value_t = 0.0, value_parser = crate::args::radius_mm)]
    pub dilate: f64,
    /// Also write the CT, with everything outside the mask set to --outside, to this new file
    #[arg(long, value_name = "FILE")]
    pub write_masked: Option<String>,
    /// Renamed --write-masked (it writes FILE, never reads it)
    #[arg(long, value_name = "FILE", hide = true)]
    pub apply: Option<String>,
    /// Value outside the mask for --write-masked (in the input's units)
    #[arg(long, value_name = "V", default_value_t = -1024.0, allow_negative_numbers = true, value_parser = crate::args::finite)]
    pub outside: f64,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Robust,
    Tutorial,
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    if let Some(f) = &args.apply {
        return Err(usage_error(
            format!("--apply is now --write-masked: it writes '{f}' (the masked CT), it does not read it"),
            format!("to write the masked CT: --write-masked NEW.nii.gz; to mask a CT with an existing mask: vol-normalize CT --mask {f}"),
        ));
    }
    args.out.check(args.input.path_str().as_slice(), args.write_masked.as_deref().as_slice())?;
    let vol = args.input.read(cx)?;
    let method = match args.method {
        MethodArg::Robust => Method::Robust,
        MethodArg::Tutorial => Method::Tutorial { fill: args.fill && !args.no_fill },
    };
    let opts = LungOptions { remove_airways: !args.keep_airways, close_mm: args.close, dilate_mm: args.dilate };
    let t0 = std::time::Instant::now();
    let (mut mask, qc) = segment(&vol, method, &opts, args.labels)?;
    cx.time_in_memory(t0.elapsed(), "segmentation alone");
    if method == Method::Robust {
        cx.verbose(format!(
            "lungs: {} found, total {:.1} mL (right {:.1}, left {:.1}), {:.1}% of the body, mean {:.0} HU, {} airway voxels removed",
            qc.lungs_found,
            qc.total_ml,
            qc.right_ml,
            qc.left_ml,
            100.0 * qc.body_fraction,
            qc.mean_hu,
            qc.airway_voxels_removed
        ));
        if qc.rejoined_ml > 0.0 || qc.adjacent_air_left_out_ml > 0.0 || qc.costal_dents_filled_ml > 0.0 {
            cx.verbose(format!(
                "joined back {:.1} mL of lung the opening had cut off; left out {:.1} mL of gas touching the lungs; filled {:.1} mL of dents on the costal pleura",
                qc.rejoined_ml, qc.adjacent_air_left_out_ml, qc.costal_dents_filled_ml
            ));
        }
    } else {
        // The tutorial's method finds one air pocket and knows nothing of sides, body or airways.
        cx.verbose(format!("largest air pocket: {:.1} mL, mean {:.0} HU", qc.total_ml, qc.mean_hu));
    }
    if let Some(b) = qc.bbox_lps_mm {
        cx.verbose(format!(
            "bounding box (LPS mm): x {:.1}..{:.1}, y {:.1}..{:.1}, z {:.1}..{:.1}",
            b[0][0], b[0][1], b[1][0], b[1][1], b[2][0], b[2][1]
        ));
    }
    if let Some(f) = &qc.fallback {
        cx.warn(f);
    }
    for w in &qc.warnings {
        cx.warn(w);
    }
    if qc.total_ml <= 0.0 {
        return Err(ctprep_core::Error::empty(format!("no lungs found in '{}'", args.input.input))
            .with_hint("check that the input is a chest CT in HU (hu-convert output); try --method tutorial or --close 0")
            .into());
    }
    cx.stamp(&mut mask.meta);
    args.out.write(cx, &mask)?;
    if let Some(path) = &args.write_masked {
        let mut ct = vol.clone();
        let bin = match &mask.data {
            ctprep_core::VolumeData::U8(a) => a.mapv(|v| u8::from(v != 0)),
            _ => unreachable!("masks are u8"),
        };
        // --outside is in real units (HU); a stored-value volume needs it in stored units.
        let outside = ct.meta.rescale.map(|r| (args.outside - r.intercept) / r.slope).unwrap_or(args.outside);
        apply_outside(&mut ct, &bin, outside)?;
        cx.stamp(&mut ct.meta);
        let o = crate::args::OutputArgs { output: path.clone(), format: None, ..args.out.clone() };
        o.write(cx, &ct)?;
    }
    args.out.summary(|| &qc)?;
    Ok(Exit::Ok)
}
