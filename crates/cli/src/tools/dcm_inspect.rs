//! dcm-inspect: DICOM tags like pydicom and dcmdump, for one file or whole folders.

use crate::args::CommonArgs;
use crate::{Cx, Exit, usage_error};
use anyhow::Result;
use clap::Parser;
use ctprep_core::dicom::files::{collect_files, scan};
use ctprep_core::dicom::inspect::{self, PathStep};
use ctprep_core::dicom::{group_series, open_full, open_until_pixels};
use rayon::prelude::*;
use std::io::Write;
use std::path::PathBuf;

/// Read DICOM tags: one file like pydicom's `print(ds)`, or a table over whole folders.
///
/// Examples:
///   dcm-inspect slice.dcm                          every element, one per line
///   dcm-inspect slice.dcm --tag PatientID          just the value (keyword, (0010,0020) or a path)
///   dcm-inspect slice.dcm --keywords Patient       like ds.dir('Patient')
///   dcm-inspect DIR --tag PatientID --tag SliceThickness --format csv
///   dcm-inspect --series DIR                       pre-flight check of every series
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    /// DICOM files or folders (folders are walked recursively)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print only this tag's value: a keyword (PatientID), a tag ((0010,0020) or 0010,0020) or a
    /// sequence path (SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing); repeatable
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Print the whole element line (tag, keyword, VR, value), like ds.data_element(); repeatable
    #[arg(long, value_name = "TAG")]
    pub element: Vec<String>,
    /// List the dataset's keywords, optionally only those containing FILTER (case-insensitive)
    #[arg(long, value_name = "FILTER", num_args = 0..=1, default_missing_value = "")]
    pub keywords: Option<String>,
    /// Decode the pixel data and print its size, format and stored/HU statistics
    #[arg(long)]
    pub pixels: bool,
    /// One row per series: slices, spacing (min/median/max), gaps, tilt, rescale, padding, warnings
    #[arg(long)]
    pub series: bool,
    /// JSON output: the DICOM JSON model (PS3.18 F) of a file, or an object of the requested tags
    #[arg(long)]
    pub json: bool,
    /// With --json on a file: include the pixel data (base64), omitted by default
    #[arg(long)]
    pub include_pixels: bool,
    /// Table format over many files: tsv, csv, jsonl, json
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = TableFormat::Tsv)]
    pub format: TableFormat,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    Tsv,
    Csv,
    Jsonl,
    Json,
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    let mut tags: Vec<(String, Vec<PathStep>)> = Vec::new();
    for t in args.tag.iter().chain(args.element.iter()) {
        let path = inspect::parse_tag_path(t)?;
        tags.push((t.clone(), path));
    }
    let single_file = args.paths.len() == 1 && args.paths[0].is_file();
    if args.series {
        return series(&args, cx);
    }
    if single_file && (args.format == TableFormat::Tsv || !args.tag.is_empty() || !args.element.is_empty()) {
        return one_file(&args, cx, &tags);
    }
    if tags.is_empty() {
        if args.keywords.is_some() || args.pixels {
            return Err(usage_error(
                "--keywords and --pixels work on one file",
                "name one DICOM file, e.g. `dcm-inspect DIR/IM0001 --pixels`",
            ));
        }
        cx.verbose("no --tag given for a folder: showing the series pre-flight check (--series)");
        return series(&args, cx);
    }
    table(&args, cx, &tags)
}

/// The file head when a requested tag is a padding tag (whose raw US is read from it), else nothing
/// (a table over thousands of files reads no more than it needs).
fn head_for(path: &std::path::Path, tags: &[(String, Vec<PathStep>)]) -> Vec<u8> {
    let wants_raw = tags.iter().any(|(_, s)| s.len() == 1 && inspect::is_padding_tag(s[0].tag));
    if wants_raw { inspect::file_head(path) } else { Vec::new() }
}

/// Signed meaning of a PixelPaddingValue written as US with signed pixels.
fn padding_note(obj: &dicom_object::InMemDicomObject, e: &dicom_object::mem::InMemElement) -> Option<String> {
    use dicom_core::header::Header;
    if !inspect::is_padding_tag(e.tag()) {
        return None;
    }
    let pr = obj.get(dicom_dictionary_std::tags::PIXEL_REPRESENTATION)?.to_int::<u16>().ok()?;
    let v = e.to_float64().ok()?;
    (pr == 1 && (32768.0..65536.0).contains(&v))
        .then(|| format!("= {} as signed (PixelRepresentation 1): the stored padding code", v - 65536.0))
}

fn one_file(args: &Args, cx: &Cx, tags: &[(String, Vec<PathStep>)]) -> Result<Exit> {
    let path = &args.paths[0];
    let mut obj = if args.pixels || (args.json && args.include_pixels) {
        open_full(path)
    } else {
        open_full(path).or_else(|_| open_until_pixels(path))
    }?;
    inspect::restore_padding_vr(&mut obj, &inspect::file_head(path));
    let out = std::io::stdout();
    let mut out = out.lock();
    if let Some(filter) = &args.keywords {
        let kws = inspect::keywords(&obj, (!filter.is_empty()).then_some(filter.as_str()));
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&kws)?)?;
        } else {
            for k in &kws {
                writeln!(out, "{k}")?;
            }
        }
        return Ok(if kws.is_empty() { Exit::Empty } else { Exit::Ok });
    }
    if args.pixels {
        let stats = ctprep_core::dicom::single::pixel_stats(path)?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
        } else {
            for line in stats.lines() {
                writeln!(out, "{line}")?;
            }
        }
        return Ok(Exit::Ok);
    }
    if !tags.is_empty() {
        let mut obj = obj;
        inspect::merge_meta(&mut obj);
        let mut found = 0;
        let mut json = serde_json::Map::new();
        for (i, (name, path_steps)) in tags.iter().enumerate() {
            let is_element = i >= args.tag.len();
            match inspect::resolve(&obj, path_steps) {
                Some(e) => {
                    found += 1;
                    if let Some(n) = padding_note(&obj, e) {
                        cx.verbose(format!("{name}: {n}"));
                    }
                    if args.json {
                        json.insert(name.clone(), inspect::value_json(e));
                    } else if is_element {
                        writeln!(out, "{}", inspect::element_line(e, 0))?;
                    } else {
                        writeln!(out, "{}", inspect::value_string(e))?;
                    }
                }
                None => cx.verbose(format!("{}: no {name}", path.display())),
            }
        }
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        return Ok(if found == 0 { Exit::Empty } else { Exit::Ok });
    }
    if args.json {
        let mut ds = (*obj).clone();
        if !args.include_pixels {
            ds.remove_element(ctprep_core::dicom::PIXEL_DATA);
        }
        serde_json::to_writer_pretty(&mut out, &dicom_json::DicomJson::from(&ds))?;
        writeln!(out)?;
        return Ok(Exit::Ok);
    }
    for line in inspect::dump_lines(&obj, &|e| padding_note(&obj, e)) {
        writeln!(out, "{line}")?;
    }
    Ok(Exit::Ok)
}

fn table(args: &Args, cx: &Cx, tags: &[(String, Vec<PathStep>)]) -> Result<Exit> {
    let files = collect_files(&args.paths)?;
    let rows: Vec<(PathBuf, std::result::Result<Vec<Option<serde_json::Value>>, ctprep_core::Error>)> = files
        .par_iter()
        .map(|p| {
            let r = open_until_pixels(p).map(|mut obj| {
                inspect::merge_meta(&mut obj);
                inspect::restore_padding_vr(&mut obj, &head_for(p, tags));
                tags.iter().map(|(_, steps)| inspect::resolve(&obj, steps).map(|e| tag_cell(e, args))).collect()
            });
            (p.clone(), r)
        })
        .collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    let names: Vec<&str> = tags.iter().map(|(n, _)| n.as_str()).collect();
    let sep = if args.format == TableFormat::Csv { "," } else { "\t" };
    if matches!(args.format, TableFormat::Tsv | TableFormat::Csv) {
        let header: Vec<String> = std::iter::once("file").chain(names.iter().copied()).map(|s| cell(s, args.format)).collect();
        writeln!(out, "{}", header.join(sep))?;
    }
    let (mut skipped, mut failed, mut any_found) = (0usize, 0usize, false);
    let mut json_rows = Vec::new();
    for (p, r) in rows {
        match r {
            Ok(values) => {
                if values.iter().all(|v| v.is_none()) {
                    cx.verbose(format!("{}: none of the requested tags", p.display()));
                } else {
                    any_found = true;
                }
                match args.format {
                    TableFormat::Tsv | TableFormat::Csv => {
                        let cells: Vec<String> = std::iter::once(cell(&p.display().to_string(), args.format))
                            .chain(values.iter().map(|v| cell(&v.as_ref().map(json_text).unwrap_or_default(), args.format)))
                            .collect();
                        writeln!(out, "{}", cells.join(sep))?;
                    }
                    _ => {
                        let mut m = serde_json::Map::new();
                        m.insert("file".into(), serde_json::Value::String(p.display().to_string()));
                        for (n, v) in names.iter().zip(values) {
                            m.insert(n.to_string(), v.unwrap_or(serde_json::Value::Null));
                        }
                        if args.format == TableFormat::Jsonl {
                            writeln!(out, "{}", serde_json::Value::Object(m))?;
                        } else {
                            json_rows.push(serde_json::Value::Object(m));
                        }
                    }
                }
            }
            Err(e) => {
                if ctprep_core::dicom::looks_like_dicom(&p) {
                    failed += 1;
                    eprintln!("{}: error: {}", cx.tool, e);
                } else {
                    skipped += 1;
                    cx.verbose(format!("{}: not DICOM, skipped", p.display()));
                }
            }
        }
    }
    if args.format == TableFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json_rows)?)?;
    }
    if skipped > 0 {
        cx.info(format!("skipped {skipped} non-DICOM file(s) (-v lists them)"));
    }
    Ok(if failed > 0 {
        Exit::PartialFailure
    } else if !any_found {
        Exit::Empty
    } else {
        Exit::Ok
    })
}

fn tag_cell(e: &dicom_object::mem::InMemElement, args: &Args) -> serde_json::Value {
    if matches!(args.format, TableFormat::Tsv | TableFormat::Csv) {
        serde_json::Value::String(inspect::value_string(e))
    } else {
        inspect::value_json(e)
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cell(s: &str, format: TableFormat) -> String {
    if format == TableFormat::Csv && (s.contains(',') || s.contains('"') || s.contains('\n')) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else if format == TableFormat::Tsv {
        s.replace(['\t', '\n'], " ")
    } else {
        s.to_string()
    }
}

fn series(args: &Args, cx: &Cx) -> Result<Exit> {
    let files = collect_files(&args.paths)?;
    let scanned = scan(&files);
    for s in &scanned.skipped {
        cx.verbose(format!("{}: {}, skipped", s.path.display(), s.reason));
    }
    if !scanned.skipped.is_empty() {
        cx.info(format!("skipped {} non-DICOM file(s) (-v lists them)", scanned.skipped.len()));
    }
    for e in &scanned.failed {
        eprintln!("{}: error: {}", cx.tool, e);
    }
    let reports: Vec<_> = group_series(scanned.headers).iter().map(|s| s.report()).collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json || args.format == TableFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?;
    } else if args.format == TableFormat::Jsonl {
        for r in &reports {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        for (i, r) in reports.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write_report(&mut out, r)?;
        }
    }
    Ok(if !scanned.failed.is_empty() {
        Exit::PartialFailure
    } else if reports.is_empty() {
        cx.warn("no DICOM images found");
        Exit::Empty
    } else {
        Exit::Ok
    })
}

fn write_report(out: &mut dyn Write, r: &ctprep_core::dicom::SeriesReport) -> std::io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let flags: Vec<&str> = [(r.localizer, "LOCALIZER"), (r.derived, "DERIVED/SECONDARY"), (r.secondary_capture, "SECONDARY-CAPTURE")]
        .iter()
        .filter(|(b, _)| *b)
        .map(|(_, s)| *s)
        .collect();
    writeln!(
        out,
        "series {}  #{}  '{}'",
        opt(&r.series_instance_uid),
        r.series_number.map(|n| n.to_string()).unwrap_or("-".into()),
        opt(&r.series_description)
    )?;
    writeln!(
        out,
        "  modality        {}   image type {}{}",
        opt(&r.modality),
        r.image_type,
        if flags.is_empty() { String::new() } else { format!("   [{}]", flags.join(", ")) }
    )?;
    writeln!(
        out,
        "  patient/study   PatientID {}   StudyDate {}   study {}",
        opt(&r.patient_id),
        opt(&r.study_date),
        opt(&r.study_instance_uid)
    )?;
    writeln!(out, "  files/slices    {} / {}   {}x{} (rows x cols), {}", r.files, r.slices, r.rows, r.columns, r.plane)?;
    if let Some(ps) = r.pixel_spacing {
        writeln!(out, "  pixel spacing   {} x {} mm (row, col)", ps[0], ps[1])?;
    }
    match &r.slice_spacing {
        Some(s) => writeln!(
            out,
            "  slice spacing   min {:.4} / median {:.4} / max {:.4} mm ({}); SliceThickness tag {}",
            s.min,
            s.median,
            s.max,
            if s.regular { "regular" } else { "IRREGULAR" },
            r.slice_thickness_tag.map(|t| format!("{t} mm")).unwrap_or_else(|| "absent".into())
        )?,
        None => writeln!(out, "  slice spacing   -")?,
    }
    for g in &r.gaps {
        writeln!(
            out,
            "  gap             after slice {}: {:.3} -> {:.3} mm (about {} missing)",
            g.after_slice, g.from_mm, g.to_mm, g.missing_slices
        )?;
    }
    if r.duplicates > 0 {
        writeln!(out, "  duplicates      {}", r.duplicates)?;
    }
    writeln!(out, "  gantry tilt     {}", r.gantry_tilt_deg.map(|t| format!("{t:.2} deg")).unwrap_or_else(|| "-".into()))?;
    writeln!(
        out,
        "  orientation     {}   {}",
        opt(&r.patient_position),
        r.orientation.map(|o| format!("{o:?}")).unwrap_or_else(|| "-".into())
    )?;
    writeln!(out, "  transfer syntax {}", r.transfer_syntaxes.join("; "))?;
    writeln!(
        out,
        "  rescale         slope {} intercept {}{}",
        r.rescale_slope,
        r.rescale_intercept,
        if r.rescale_varies { " (VARIES per slice)" } else { "" }
    )?;
    writeln!(
        out,
        "  padding         {}",
        match (r.padding_value, &r.padding_raw) {
            (Some(v), Some(raw)) if !raw.ends_with(&format!(" {v}")) => format!("{v} (stored as {raw})"),
            (Some(v), _) => format!("{v}"),
            _ => "absent".into(),
        }
    )?;
    for w in &r.warnings {
        writeln!(out, "  warning: {w}")?;
    }
    Ok(())
}
