//! dcm-stack: a folder of DICOM files to one correctly ordered, correctly placed volume.

use crate::args::{CommonArgs, OutputArgs, StackArgs};
use crate::stacking::{input_files, stack_inputs};
use crate::{Cx, Exit};
use anyhow::Result;
use clap::Parser;
use ctprep_core::dicom::files::scan;
use ctprep_core::dicom::group_series;
use std::io::Write;

/// Stack a DICOM series into a 3-D volume (NIfTI or NPY) of stored values.
///
/// Slices are ordered by ImagePositionPatient projected on the slice normal; the slice spacing is
/// measured from the positions (SliceThickness is only reported). Irregular spacing and gantry tilt
/// are fixed by default. Output: int16/uint16 stored values with the rescale in NIfTI
/// scl_slope/scl_inter (HU for any NIfTI reader), or float32 real values when the rescale varies.
///
/// Examples:
///   dcm-stack patient01/ -o ct.nii.gz
///   find scans -name '*.dcm' | dcm-stack - | hu-convert -o hu.nii
///   dcm-stack --list patient01/
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    /// DICOM folders or files; `-` reads file names from stdin, one per line
    #[arg(value_name = "PATH", required = true)]
    pub inputs: Vec<String>,
    /// List the series found (one per line) and exit
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    if args.list {
        return list(&args, cx);
    }
    args.out.check(&[], &[])?;
    let mut stacked = stack_inputs(&args.inputs, &args.stack, cx)?;
    cx.stamp(&mut stacked.volume.meta);
    args.out.write(cx, &stacked.volume)?;
    args.out.summary(|| {
        let v = &stacked.volume;
        serde_json::json!({
            "output": args.out.output,
            "shape_zyx": v.shape(),
            "dtype": v.data.dtype().name(),
            "spacing_xyz_mm": v.geometry.spacing,
            "origin_lps_mm": v.geometry.origin,
            "affine_ras": v.geometry.affine_ras(),
            "series": v.meta.series,
            "notes": stacked.notes,
            "warnings": stacked.warnings,
        })
    })?;
    Ok(Exit::Ok)
}

fn list(args: &Args, cx: &Cx) -> Result<Exit> {
    let files = input_files(&args.inputs)?;
    let scanned = scan(&files);
    for e in &scanned.failed {
        cx.warn(e.to_string());
    }
    let series = group_series(scanned.headers);
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(out, "number\tslices\tsize\tplane\tdescription\tstatus\tpatient_id\tstudy_date\tstudy_uid\tseries_uid")?;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for s in &series {
        let f = s.first();
        writeln!(
            out,
            "{}\t{}\t{}x{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            f.series_number.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            s.slices.len(),
            f.rows,
            f.columns,
            s.plane(),
            f.series_description.clone().unwrap_or_default(),
            s.rejection().unwrap_or_else(|| "usable".into()),
            dash(&f.patient_id),
            dash(&f.study_date),
            dash(&f.study_instance_uid),
            s.uid()
        )?;
    }
    Ok(if series.is_empty() { Exit::Empty } else { Exit::Ok })
}
