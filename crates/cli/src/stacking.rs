//! From the DICOM paths a user names to one stacked series, logging every choice on stderr:
//! shared by dcm-stack and hu-convert (which takes a DICOM folder directly).

use crate::Cx;
use crate::args::StackArgs;
use anyhow::Result;
use ctprep_core::dicom::files::{collect_files, scan};
use ctprep_core::dicom::{Stacked, group_series, select_series, stack_series};
use std::io::BufRead;
use std::path::PathBuf;

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
    Ok(collect_files(&paths)?)
}

/// Scan, choose and stack, logging every choice on stderr.
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
    let opts = stack.options();
    // One folder or file named: the error names it (a dataset run's log says which patient).
    let named = match inputs {
        [one] if one != "-" => Some(one),
        _ => None,
    };
    let chosen = select_series(&series, &opts.select, opts.axial_only).map_err(|e| match named {
        Some(p) => e.with_path(p),
        None => e,
    })?;
    cx.info(chosen.why);
    for w in &chosen.warnings {
        cx.warn(w);
    }
    let stacked = stack_series(&series[chosen.index], &opts)?;
    for n in &stacked.notes {
        cx.verbose(n);
    }
    for w in &stacked.warnings {
        cx.warn(w);
    }
    Ok(stacked)
}
