//! vol-normalize: the tutorial's normalization and zero-centering, with the dataset mean fitted.

use crate::args::{CommonArgs, InputArgs, OutputArgs, parse_range};
use crate::{Cx, Exit, usage_error};
use anyhow::Result;
use clap::Parser;
use ctprep_core::io::{ReadOptions, Source, read_volume};
use ctprep_core::normalize::{
    DatasetStats, LUNA16_MEAN, MAX_BOUND, MIN_BOUND, NormalizeOptions, OtherGrid, apply_outside_planes, fit_part, mask_on_grid,
    normalize_planes, normalized_meta, window_preset,
};
use ctprep_core::volume::Header;
use rayon::prelude::*;
use std::io::Write;

/// Clip HU to [MIN, MAX], scale to [0, 1], subtract the dataset mean: the tutorial's last two steps.
///
/// Defaults are the tutorial's: --range -1000:400 and --mean 0.25 (its LUNA16 value). Better: fit
/// the mean over your dataset with --fit, then apply it with --stats. Per-image centering is refused:
/// as the tutorial says, "CT scanners are calibrated to return accurate HU measurements. There is
/// no such thing as an image with lower contrast or brightness like in normal pictures."
///
/// Windows (centre, width) for --window: lung (-600,1500), mediastinum (40,400), bone (400,1800),
/// tutorial (-300,1400) = [-1000, 400].
///
/// Examples:
///   vol-normalize hu_1mm.nii.gz -o input.npy
///   vol-normalize --fit out/*/hu_1mm.nii.gz -o stats.json
///   vol-normalize --fit out/*/fit.json -o stats.json
///   vol-normalize hu_1mm.nii.gz --stats stats.json --mask lung.nii.gz --outside 0 -o input.npy
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    /// Input HU volume (file or `-`); with --fit, any number of volumes, and earlier --fit
    /// statistics files (.json), which are merged: fit each patient apart, then merge the parts
    #[arg(value_name = "IN", num_args = 0.., default_value = "-")]
    pub inputs: Vec<String>,
    /// Fit dataset statistics over all inputs and write them (JSON) to -o
    #[arg(long)]
    pub fit: bool,
    /// With --fit: only count voxels inside masks named like the volume plus this suffix
    /// (vol.nii.gz -> vol<SUFFIX>), e.g. --mask-suffix _lung.nii.gz
    #[arg(long, value_name = "SUFFIX", requires = "fit")]
    pub mask_suffix: Option<String>,
    /// Clip range in HU
    #[arg(long, value_name = "MIN:MAX", value_parser = parse_range, allow_hyphen_values = true, conflicts_with = "window")]
    pub range: Option<(f64, f64)>,
    /// Clip range from a window: lung, mediastinum, bone, tutorial, or C,W
    #[arg(long, value_name = "NAME|C,W", allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Mean to subtract after scaling (default 0.25, the tutorial's LUNA16 value)
    #[arg(long, value_name = "M", allow_negative_numbers = true, conflicts_with_all = ["stats", "no_center"], value_parser = crate::args::finite)]
    pub mean: Option<f64>,
    /// Take the range and mean from a --fit statistics file
    #[arg(long, value_name = "FILE", conflicts_with = "no_center")]
    pub stats: Option<String>,
    /// Do not subtract a mean (output in [0, 1])
    #[arg(long)]
    pub no_center: bool,
    /// Subtract this image's own mean (refused unless --force: see above)
    #[arg(long)]
    pub per_image_mean: bool,
    /// Allow --per-image-mean anyway
    #[arg(long, requires = "per_image_mean")]
    pub force: bool,
    /// Set voxels outside this mask (e.g. the dilated lung mask) to --outside
    #[arg(long, value_name = "MASK")]
    pub mask: Option<String>,
    /// A --mask (or --mask-suffix mask) on another grid than the volume: resample it onto the
    /// volume's grid (nearest neighbour) instead of refusing it
    #[arg(long)]
    pub mask_resample: bool,
    /// Value for voxels outside --mask, after normalization
    #[arg(long, value_name = "V", default_value_t = 0.0, allow_negative_numbers = true, value_parser = crate::args::finite)]
    pub outside: f64,
    /// Output type: f32, or f16 (NPY only)
    #[arg(long, value_name = "TYPE", value_enum, default_value_t = FloatType::F32)]
    pub dtype: FloatType,
    /// Voxel size x,y,z in mm to assume for an NPY input without a .json sidecar
    #[arg(long, value_name = "X,Y,Z", value_parser = crate::args::parse_spacing3)]
    pub npy_spacing: Option<[f64; 3]>,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FloatType {
    F32,
    F16,
}

impl FloatType {
    fn name(self) -> &'static str {
        match self {
            FloatType::F32 => "f32",
            FloatType::F16 => "f16",
        }
    }
}

impl Args {
    /// What to do with a mask on another grid than its volume.
    fn mask_policy(&self) -> OtherGrid {
        if self.mask_resample { OtherGrid::Resample } else { OtherGrid::Refuse }
    }
}

fn bounds(args: &Args) -> Result<(f64, f64)> {
    if let Some(r) = args.range {
        return Ok(r);
    }
    if let Some(w) = &args.window {
        let (c, wd) = match window_preset(w) {
            Some(p) => p,
            None => {
                let v: Vec<f64> = w.split(',').filter_map(|s| s.trim().parse().ok()).collect();
                match v.as_slice() {
                    [c, wd] if *wd > 0.0 => (*c, *wd),
                    _ => {
                        return Err(usage_error(
                            format!("unknown window '{w}'"),
                            "use lung, mediastinum, bone, tutorial, or C,W such as -600,1500",
                        ));
                    }
                }
            }
        };
        return Ok((c - wd / 2.0, c + wd / 2.0));
    }
    Ok((MIN_BOUND, MAX_BOUND))
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    if args.fit {
        return fit(&args, cx);
    }
    if args.inputs.len() != 1 {
        return Err(usage_error("give one input volume (or --fit for many)", "e.g. `vol-normalize hu.nii.gz -o input.npy`"));
    }
    if args.per_image_mean && !args.force {
        return Err(usage_error(
            "refusing to zero-center per image",
            "the tutorial: \"CT scanners are calibrated to return accurate HU measurements\"; fit a dataset mean with --fit, or add --force",
        ));
    }
    let input = InputArgs { input: args.inputs[0].clone(), npy_spacing: args.npy_spacing };
    let inputs: Vec<&str> = input.path_str().into_iter().chain(args.mask.as_deref()).chain(args.stats.as_deref()).collect();
    args.out.check(&inputs, &[])?;
    let vol = input.read(cx)?;
    let (mut min, mut max) = bounds(&args)?;
    let mut mean = if args.no_center { None } else { Some(args.mean.unwrap_or(LUNA16_MEAN)) };
    if let Some(s) = &args.stats {
        let st = read_stats(s)?;
        (min, max, mean) = (st.min_bound, st.max_bound, Some(st.mean));
        cx.verbose(format!("using fitted statistics from {s}: range {min}:{max}, mean {:.6}", st.mean));
    }
    if args.per_image_mean {
        let p = fit_part("input", &vol, None, min, max)?;
        mean = Some(p.sum / p.count.max(1) as f64);
        cx.warn(format!("per-image mean {:.6} subtracted (--force)", mean.unwrap_or(0.0)));
    }
    let policy = args.mask_policy();
    let mask = match &args.mask {
        Some(m) => {
            let (mask, note) = read_mask(m, &vol, policy)?;
            if let Some(n) = note {
                cx.warn(n);
            }
            Some(mask)
        }
        None => None,
    };
    let o = NormalizeOptions { min, max, mean };
    let mut meta = normalized_meta(&vol, &o)?;
    cx.stamp(&mut meta);
    let header = Header { meta: &meta, ..vol.header() };
    let mut wo = args.out.options();
    wo.npy_f16 = args.dtype == FloatType::F16;
    // The output goes out a few planes at a time as it is computed: it never exists whole in
    // memory, and its pages are the writer's buffer over and over instead of 160 MB of fresh ones.
    let (mut sum, mut work) = (0.0f64, std::time::Duration::ZERO);
    let fmt = ctprep_core::io::write_f32_planes(&header, &args.out.sink(), &wo, |z, planes| {
        let t = std::time::Instant::now();
        normalize_planes(&vol, &o, z, planes);
        if let Some(m) = &mask {
            apply_outside_planes(&m.view(), args.outside, z, planes);
        }
        if args.out.json {
            sum += planes.par_iter().map(|&v| f64::from(v)).sum::<f64>();
        }
        work += t.elapsed();
        Ok(())
    })?;
    cx.time_in_memory(work, "normalization alone");
    if let Some(m) = &args.mask {
        cx.verbose(format!("voxels outside {m} set to {}", args.outside));
    }
    let centred = mean.map_or("not centred".to_string(), |m| format!("mean {m} subtracted"));
    cx.verbose(format!("wrote {} ({}, range {min}:{max} HU, {centred})", args.out.output, fmt.name()));
    args.out.summary(|| {
        let output_mean = sum / vol.data.len().max(1) as f64;
        serde_json::json!({"output": args.out.output, "min_bound": min, "max_bound": max, "mean_subtracted": mean, "output_mean": output_mean, "dtype": args.dtype.name()})
    })?;
    Ok(Exit::Ok)
}

/// A statistics file written by `--fit`.
fn read_stats(path: &str) -> Result<DatasetStats> {
    let text = std::fs::read_to_string(path).map_err(|e| ctprep_core::Error::io("cannot read", std::path::Path::new(path), e))?;
    serde_json::from_str(&text).map_err(|e| {
        usage_error(format!("'{path}' is not a --fit statistics file: {e}"), "create it with `vol-normalize --fit VOL... -o stats.json`")
    })
}

fn fit(args: &Args, cx: &Cx) -> Result<Exit> {
    let (min, max) = bounds(args)?;
    crate::args::check_output_name(&args.out.output, &[".json"], "--fit -o")?;
    let masks: Vec<String> = match &args.mask_suffix {
        Some(suf) => args.inputs.iter().map(|n| mask_for(n, suf)).collect(),
        None => Vec::new(),
    };
    let inputs: Vec<&str> = args.inputs.iter().chain(&masks).map(String::as_str).collect();
    crate::args::no_clobber(&inputs, &[&args.out.output])?;
    if args.inputs.iter().any(|i| i == "-") {
        return Err(usage_error("--fit reads files, not stdin", "list the volumes: `vol-normalize --fit out/*/hu.nii.gz -o stats.json`"));
    }
    // Earlier fits (`.json`) are merged; volumes are fitted.
    let (earlier, volumes): (Vec<&String>, Vec<&String>) = args.inputs.iter().partition(|n| n.ends_with(".json"));
    let mut fits = earlier.iter().map(|n| read_stats(n)).collect::<Result<Vec<_>>>()?;
    let policy = args.mask_policy();
    // Volumes are read one per thread at a time: memory stays at about two volumes.
    let _progress = ctprep_core::progress::task("fitting (volumes)", volumes.len() as u64);
    let parts: Vec<Result<(ctprep_core::normalize::Part, Option<String>)>> = volumes
        .par_iter()
        .map(|name| -> Result<_> {
            let _done = Advance;
            let v = read_volume(&Source::parse(name), &ReadOptions { npy_spacing: args.npy_spacing })?.volume;
            let (mask, note) = match &args.mask_suffix {
                Some(suf) => {
                    let (m, note) = read_mask(&mask_for(name, suf), &v, policy)?;
                    (Some(m), note)
                }
                None => (None, None),
            };
            Ok((fit_part(name, &v, mask.as_ref(), min, max)?, note))
        })
        .collect();
    let parts = parts
        .into_iter()
        .map(|p| {
            let (mut part, note) = p?;
            if let Some(n) = note {
                cx.warn(n);
            }
            // Folder names in a dataset are often patients' names or IDs (docs/formats.md).
            if !args.out.keep_phi {
                part.name = ctprep_core::meta::anonymize_path(&part.name, false);
            }
            Ok(part)
        })
        .collect::<Result<Vec<_>>>()?;
    if !parts.is_empty() {
        fits.push(DatasetStats::from_parts(&parts, min, max, args.mask_suffix.is_some())?);
    }
    let stats = DatasetStats::merge(&fits)?;
    let asked = args.range.is_some() || args.window.is_some();
    if asked && (stats.min_bound, stats.max_bound) != (min, max) {
        return Err(usage_error(
            format!("the statistics files were fitted over {}:{} HU, not the {min}:{max} asked for", stats.min_bound, stats.max_bound),
            "fit the volumes again with this --range, or leave --range out to merge them as they are",
        ));
    }
    cx.info(format!("fitted {} volume(s), {} voxels: mean {:.6}, std {:.6}", stats.volumes.len(), stats.count, stats.mean, stats.std));
    let json = serde_json::to_string_pretty(&stats)? + "\n";
    match args.out.sink() {
        ctprep_core::io::Sink::Stdout => std::io::stdout().write_all(json.as_bytes())?,
        ctprep_core::io::Sink::Path(p) => {
            ctprep_core::io::write_file_atomic(&p, |w| w.write_all(json.as_bytes()))?;
        }
    }
    Ok(Exit::Ok)
}

/// Counts one unit of progress when dropped, so failed volumes count too.
struct Advance;
impl Drop for Advance {
    fn drop(&mut self) {
        ctprep_core::progress::advance(1);
    }
}

/// The mask of volume `name` under --mask-suffix: `vol.nii.gz` -> `vol<suffix>`.
fn mask_for(name: &str, suffix: &str) -> String {
    let stem = ["nii.gz", "nii", "npy"].iter().find_map(|e| name.strip_suffix(&format!(".{e}"))).unwrap_or(name);
    format!("{stem}{suffix}")
}

/// A mask file as 0/nonzero bytes on `vol`'s grid (any nonzero voxel is inside), checked in
/// world space and refused or resampled when it lies on another grid.
/// The second value is what was assumed or done (for a warning).
fn read_mask(path: &str, vol: &ctprep_core::Volume, policy: OtherGrid) -> Result<(ndarray::Array3<u8>, Option<String>)> {
    let loaded = read_volume(&Source::parse(path), &ReadOptions::default())?;
    let (mask, note) = mask_on_grid(vol, &loaded.volume, loaded.geometry_known, policy).map_err(|e| e.with_path(path))?;
    Ok((mask, note.map(|n| format!("{path}: {n}"))))
}
