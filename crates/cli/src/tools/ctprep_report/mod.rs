//! ctprep-report: one HTML page to check a whole dataset before training on it.

mod gather;
mod html;

use crate::args::CommonArgs;
use crate::{Cx, Exit};
use anyhow::Result;
use clap::Parser;
use ctprep_core::Error;
use gather::Patient;
use std::path::{Path, PathBuf};

/// Write a static HTML QC report of a dataset processed by workflow/Snakefile or ctprep.mk.
///
/// One row per patient: axial and coronal thumbnails with the lung mask, the lung QC numbers
/// (right/left/total mL, fraction of the body, air components, fallback), the series facts
/// (slices, spacing, tilt, gaps, the series chosen and why), warnings and flags; every column
/// sorts by a click. On top: counts, the failed patients with their error lines, a histogram of
/// lung volumes and the fitted dataset mean. The page needs no network: CSS and script are
/// inline; the thumbnails are linked relative to the page (--embed puts them inside it).
///
/// Examples:
///   ctprep-report out/ -o out/report.html
///   ctprep-report out/ --patients patients/ --embed -o qc.html
///   ctprep-report out/ -o out/report.html --json | jq '.flagged'
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    /// The output folder of the workflow or of ctprep.mk (one folder per patient)
    #[arg(value_name = "OUT")]
    pub dataset: PathBuf,
    /// The input folder of patient folders: a patient there with no output is listed as failed
    #[arg(long, value_name = "DIR")]
    pub patients: Option<PathBuf>,
    /// Output HTML file
    #[arg(short, long, value_name = "HTML")]
    pub output: PathBuf,
    /// Put the thumbnails inside the page (one portable file; large for big datasets)
    #[arg(long)]
    pub embed: bool,
    /// Flag total lung volumes below this (mL)
    #[arg(long, value_name = "ML", default_value_t = 1500.0)]
    pub min_lung_ml: f64,
    /// Flag total lung volumes above this (mL)
    #[arg(long, value_name = "ML", default_value_t = 9000.0)]
    pub max_lung_ml: f64,
    /// Flag a right/left volume ratio outside [1/R, R] (the right lung is normally ~1.1x the left)
    #[arg(long, value_name = "R", default_value_t = 2.0)]
    pub max_lr_ratio: f64,
    /// Flag slices thicker than this (mm): thin structures are lost before resampling
    #[arg(long, value_name = "MM", default_value_t = 3.0)]
    pub max_slice_mm: f64,
    /// Print the rows and the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    let outputs = subfolders(&args.dataset, "give the output folder of the workflow or of ctprep.mk (it holds one folder per patient)")?;
    // With the input folder, its patients are the rows: one that made nothing is a failure.
    let (names, expected) = match &args.patients {
        Some(dir) => (subfolders(dir, "--patients takes the workflow's input folder of patient folders")?, true),
        None => (outputs, false),
    };
    let mut rows: Vec<Patient> = names
        .iter()
        .map(|n| gather::patient(&args.dataset.join(n), n, expected))
        .filter(|p| expected || p.failure.is_some() || p.series.slices.is_some() || p.lungs.is_some())
        .collect();
    if rows.is_empty() {
        return Err(Error::empty("no patient outputs found")
            .with_path(&args.dataset)
            .with_hint("run the workflow first, or give --patients to list the patients that made nothing")
            .into());
    }
    flag(&mut rows, &args);
    let stats = gather::stats(&args.dataset);
    let page_dir = args.output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let page = html::page(&rows, stats, &html::Images { embed: args.embed, page_dir })?;
    ctprep_core::io::write_file_atomic(&args.output, |w| w.write_all(page.as_bytes()))?;
    let failed: Vec<&str> = rows.iter().filter(|p| p.failure.is_some()).map(|p| p.name.as_str()).collect();
    let flagged: Vec<&str> = rows.iter().filter(|p| !p.flags.is_empty()).map(|p| p.name.as_str()).collect();
    cx.info(format!("wrote {}: {} patients, {} failed, {} flagged", args.output.display(), rows.len(), failed.len(), flagged.len()));
    if args.json {
        use std::io::Write;
        let summary = serde_json::json!({
            "report": args.output,
            "patients": rows.len(),
            "failed": failed,
            "flagged": flagged,
            "mean": stats.map(|s| s.0),
            "rows": rows,
        });
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(Exit::Ok)
}

/// The sorted names of `dir`'s folders (hidden ones left out); `hint` if `dir` is not a folder.
fn subfolders(dir: &Path, hint: &str) -> Result<Vec<String>> {
    if !dir.is_dir() {
        let what = if dir.exists() { "is not a folder" } else { "no such folder" };
        return Err(Error::bad_input(what).with_path(dir).with_hint(hint).into());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read folder", dir, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Why a person should look at each patient. The thresholds are options; the dataset outlier
/// test (median +- 3.5 scaled MADs of the total volume, as in Iglewicz and Hoaglin) needs 5 rows.
fn flag(rows: &mut [Patient], args: &Args) {
    let totals: Vec<f64> = rows.iter().filter_map(|p| p.lungs.as_ref()?.total_ml).collect();
    let robust = (totals.len() >= 5).then(|| {
        let med = median(&totals);
        let mad = median(&totals.iter().map(|t| (t - med).abs()).collect::<Vec<_>>()) * 1.4826;
        (med, mad)
    });
    for p in rows.iter_mut() {
        let mut flags = Vec::new();
        if let Some(f) = &p.failure {
            flags.push(format!("failed at {}", f.step));
        }
        if let Some(q) = &p.lungs {
            if let Some(t) = q.total_ml {
                if t < args.min_lung_ml || t > args.max_lung_ml {
                    flags.push(format!("lung volume {t:.0} mL outside {:.0}-{:.0}", args.min_lung_ml, args.max_lung_ml));
                }
                if let Some((med, mad)) = robust {
                    if mad > 0.0 && ((t - med) / mad).abs() > 3.5 {
                        flags.push(format!("lung volume outlier ({t:.0} mL; dataset median {med:.0})"));
                    }
                }
            }
            match (q.right_ml, q.left_ml) {
                (Some(r), Some(l)) if r > 0.0 && l > 0.0 => {
                    let ratio = r / l;
                    if ratio > args.max_lr_ratio || ratio < 1.0 / args.max_lr_ratio {
                        flags.push(format!("right/left ratio {ratio:.2}"));
                    }
                }
                _ if q.lungs_found.is_some_and(|n| n < 2) => flags.push("one lung only".into()),
                _ => {}
            }
            if let Some(f) = &q.fallback {
                flags.push(format!("fallback: {f}"));
            }
        }
        if p.series.slice_spacing_mm.is_some_and(|s| s > args.max_slice_mm) {
            flags.push(format!("thick slices ({:.1} mm)", p.series.slice_spacing_mm.unwrap_or_default()));
        }
        if !p.warnings.is_empty() {
            flags.push(format!("{} warning(s)", p.warnings.len()));
        }
        p.flags = flags;
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gather::LungQc;

    fn row(name: &str, right: f64, left: f64, found: u64) -> Patient {
        let lungs = LungQc {
            right_ml: Some(right),
            left_ml: Some(left),
            total_ml: Some(right + left),
            lungs_found: Some(found),
            ..Default::default()
        };
        Patient { name: name.into(), lungs: Some(lungs), ..Default::default() }
    }

    #[test]
    fn a_dataset_outlier_and_a_single_lung_are_flagged() {
        let args = Args::parse_from(["ctprep-report", "out", "-o", "r.html"]);
        // Five ordinary patients around 5 L, one at 8 L (inside the absolute 1.5-9 L), one lung.
        let mut rows: Vec<Patient> =
            [2600.0, 2500.0, 2550.0, 2450.0, 2520.0].iter().enumerate().map(|(i, &r)| row(&format!("p{i}"), r, r * 0.9, 2)).collect();
        rows.push(row("big", 4200.0, 3800.0, 2));
        rows.push(row("one", 2500.0, 0.0, 1));
        flag(&mut rows, &args);
        assert!(rows[..5].iter().all(|p| p.flags.is_empty()), "{:?}", rows[..5].iter().map(|p| &p.flags).collect::<Vec<_>>());
        assert_eq!(rows[5].flags, ["lung volume outlier (8000 mL; dataset median 4788)"]);
        assert!(rows[6].flags.contains(&"one lung only".to_string()), "{:?}", rows[6].flags);
        // Fewer than five patients: no outlier test.
        let mut few = vec![row("a", 2500.0, 2250.0, 2), row("b", 4200.0, 3800.0, 2)];
        flag(&mut few, &args);
        assert!(few.iter().all(|p| p.flags.is_empty()));
    }
}
