//! dcm-stack: a folder of DICOM files to one correctly ordered, correctly placed volume.

use crate::args::{CommonArgs, OutputArgs, StackArgs};
use crate::{Cx, Exit};
use anyhow::Result;
use clap::Parser;
use ctprep_core::dicom::stack::{Stacked, collect_files, scan, select_series};
use ctprep_core::dicom::{group_series, stack_series};
use std::io::{BufRead, Write};
use std::path::PathBuf;

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
    /// Print a JSON summary on stdout (needs -o FILE)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

/// Resolve inputs (`-` = names on stdin) into files.
pub fn input_files(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for i in inputs {
        if i == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let t = line.trim();
                if !t.is_empty() {
                    paths.push(PathBuf::from(t));
                }
            }
        } else {
            paths.push(PathBuf::from(i));
        }
    }
    collect_files(&paths).map_err(crate::core)
}

/// Scan, choose and stack, logging every choice on stderr. Shared with hu-convert.
pub fn stack_inputs(inputs: &[String], stack: &StackArgs, cx: &Cx) -> Result<Stacked> {
    let files = input_files(inputs)?;
    let scanned = scan(&files);
    for s in &scanned.skipped {
        cx.verbose(format!("skipped {}: {}", s.path.display(), s.reason));
    }
    if !scanned.skipped.is_empty() {
        cx.info(format!("skipped {} non-DICOM file(s) (-v lists them)", scanned.skipped.len()));
    }
    for e in &scanned.failed {
        cx.warn(format!("{e} (file left out)"));
    }
    let series = group_series(scanned.headers);
    for s in &series {
        if let Some(why) = s.rejection() {
            cx.verbose(format!("not a candidate: series {} #{}: {}", s.uid(), s.first().series_number.unwrap_or(-1), why));
        }
    }
    let (i, why) = select_series(&series, &stack.options().select).map_err(crate::core)?;
    cx.info(why);
    let stacked = stack_series(&series[i], &stack.options()).map_err(crate::core)?;
    for n in &stacked.notes {
        cx.verbose(n);
    }
    for w in &stacked.warnings {
        cx.warn(w);
    }
    Ok(stacked)
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    if args.list {
        return list(&args, cx);
    }
    args.out.check(&[], &[])?;
    crate::args::json_needs_file(args.json, &args.out.output, "volume")?;
    let mut stacked = stack_inputs(&args.inputs, &args.stack, cx)?;
    cx.stamp(&mut stacked.volume.meta);
    args.out.write(cx, &stacked.volume)?;
    if args.json {
        let v = &stacked.volume;
        let summary = serde_json::json!({
            "output": args.out.output,
            "shape_zyx": v.shape(),
            "dtype": v.data.dtype().name(),
            "spacing_xyz_mm": v.geometry.spacing,
            "origin_lps_mm": v.geometry.origin,
            "affine_ras": v.geometry.affine_ras(),
            "series": v.meta.series,
            "notes": stacked.notes,
            "warnings": stacked.warnings,
        });
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&summary)?)?;
    }
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
    writeln!(out, "number\tslices\tsize\tdescription\tstatus\tseries_uid")?;
    for s in &series {
        let f = s.first();
        writeln!(
            out,
            "{}\t{}\t{}x{}\t{}\t{}\t{}",
            f.series_number.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            s.slices.len(),
            f.rows,
            f.columns,
            f.series_description.clone().unwrap_or_default(),
            s.rejection().unwrap_or_else(|| "usable".into()),
            s.uid()
        )?;
    }
    Ok(if series.is_empty() { Exit::Empty } else { Exit::Ok })
}
