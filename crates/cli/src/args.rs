//! Argument groups shared by the tools: input, output, verbosity, DICOM stacking.

use crate::{Cx, usage_error};
use anyhow::Result;
use clap::{Args, ValueEnum};
use ctprep_core::dicom::SeriesSelect;
use ctprep_core::dicom::{GapPolicy, StackOptions, TiltPolicy};
use ctprep_core::io::{Format, Loaded, ReadOptions, Sink, Source, WriteOptions};
use ctprep_core::volume::{DType, Volume};
use std::io::IsTerminal;

/// -q / -v and the hidden --generate.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Print nothing on stderr but errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Explain what was inferred and chosen (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Generate a man page or shell completion script on stdout (man, bash, zsh, fish, elvish, powershell)
    #[arg(long, hide = true, value_name = "WHAT")]
    pub generate: Option<String>,
}

impl CommonArgs {
    pub fn verbosity(&self) -> i8 {
        if self.quiet { -1 } else { self.verbose.min(3) as i8 }
    }
}

/// Where the output volume goes and in which format.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output file (.nii, .nii.gz or .npy); `-` or absent writes NIfTI to stdout
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: String,
    /// Output format, overriding the file name: nii, nii.gz, npy
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<Format>,
    /// gzip level for .nii.gz (0-9; 1 is fast and compresses CT well)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip_level: u32,
    /// Do not write the .json sidecar next to a NIfTI file output
    #[arg(long)]
    pub no_sidecar: bool,
    /// Keep PatientID, DICOM UIDs and folder paths in the output's metadata (by default they
    /// are removed or hashed, as dcm2niix does)
    #[arg(long)]
    pub keep_phi: bool,
    /// Print a JSON summary on stdout (needs -o FILE)
    #[arg(long)]
    pub json: bool,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("unknown format '{s}' (nii, nii.gz, npy)"))
}

impl OutputArgs {
    pub fn sink(&self) -> Sink {
        Sink::parse(&self.output)
    }
    pub fn options(&self) -> WriteOptions {
        WriteOptions {
            format: self.format,
            gzip_level: self.gzip_level,
            sidecar: !self.no_sidecar,
            npy_f16: false,
            keep_phi: self.keep_phi,
        }
    }
    /// Before any work: refuse binary output to a terminal, an output (or one of `also`, the
    /// tool's other outputs) that would replace one of `inputs`, a name that asks for no format,
    /// and --json with the output on stdout.
    pub fn check(&self, inputs: &[&str], also: &[&str]) -> Result<()> {
        let sink = self.sink();
        if sink == Sink::Stdout && std::io::stdout().is_terminal() {
            return Err(usage_error(
                "refusing to write a binary volume to a terminal",
                "redirect with `> out.nii`, pipe into the next tool, or pass -o out.nii.gz",
            ));
        }
        if self.json && sink == Sink::Stdout {
            return Err(usage_error("--json needs the output in a file", "add -o FILE; stdout then carries the JSON summary"));
        }
        let outputs: Vec<&str> = std::iter::once(self.output.as_str()).chain(also.iter().copied()).collect();
        no_clobber(inputs, &outputs)?;
        ctprep_core::io::output_format(&sink, &self.options())?;
        Ok(())
    }
    /// With --json, the run's summary on stdout (built only then).
    pub fn summary<S: serde::Serialize>(&self, make: impl FnOnce() -> S) -> Result<()> {
        if self.json {
            use std::io::Write;
            writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&make())?)?;
        }
        Ok(())
    }
    /// Write the volume, log where it went.
    pub fn write(&self, cx: &Cx, vol: &Volume) -> Result<()> {
        let sink = self.sink();
        let fmt = ctprep_core::io::write_volume(vol, &sink, &self.options())?;
        if fmt == Format::Npy && sink == Sink::Stdout {
            cx.warn("NPY on stdout carries no geometry; use NIfTI on pipes or -o FILE.npy for a sidecar");
        }
        let [z, y, x] = vol.shape();
        cx.verbose(format!(
            "wrote {} ({}x{}x{} z,y,x, {}, spacing x,y,z {:.4?} mm)",
            sink.name().display(),
            z,
            y,
            x,
            vol.data.dtype().name(),
            vol.geometry.spacing
        ));
        Ok(())
    }
}

/// The input volume (file or stdin).
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Input volume (.nii, .nii.gz or .npy, recognised by content); `-` or absent reads stdin
    #[arg(value_name = "IN", default_value = "-")]
    pub input: String,
    /// Voxel size x,y,z in mm to assume for an NPY input without a .json sidecar
    #[arg(long, value_name = "X,Y,Z", value_parser = parse_spacing3)]
    pub npy_spacing: Option<[f64; 3]>,
}

impl InputArgs {
    pub fn source(&self) -> Source {
        Source::parse(&self.input)
    }
    /// Read the input volume, printing the reader's warnings.
    pub fn read(&self, cx: &Cx) -> Result<Volume> {
        let src = self.source();
        if src == Source::Stdin && std::io::stdin().is_terminal() {
            return Err(usage_error(
                "no input: standard input is a terminal",
                format!("pass a file, or pipe a volume in (`dcm-stack DIR | {}`)", cx.tool),
            ));
        }
        let Loaded { volume, warnings, .. } = ctprep_core::io::read_volume(&src, &ReadOptions { npy_spacing: self.npy_spacing })?;
        for w in warnings {
            cx.warn(w);
        }
        let [z, y, x] = volume.shape();
        cx.verbose(format!(
            "read {} ({}x{}x{} z,y,x, {}, {})",
            src.name().display(),
            z,
            y,
            x,
            volume.data.dtype().name(),
            volume.meta.kind.name()
        ));
        Ok(volume)
    }
    pub fn path_str(&self) -> Option<&str> {
        (self.input != "-").then_some(self.input.as_str())
    }
}

/// What a path names on disk, for comparing an output with the inputs: the file itself (device
/// and inode: symlinks and hard links included) when it exists, else its absolute name.
#[derive(PartialEq)]
enum FileId {
    Inode(u64, u64),
    Name(std::path::PathBuf),
}

fn file_id(p: &std::path::Path) -> Option<FileId> {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(p) {
        use std::os::unix::fs::MetadataExt;
        return Some(FileId::Inode(m.dev(), m.ino()));
    }
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    Some(FileId::Name(std::fs::canonicalize(parent).ok()?.join(p.file_name()?)))
}

/// A volume file and the `.json` sidecar that travels with it (written or read beside it).
fn with_sidecar(p: &str) -> Vec<std::path::PathBuf> {
    let path = std::path::PathBuf::from(p);
    let mut v = vec![path.clone()];
    if ctprep_core::io::Format::from_name(&path).is_some() {
        v.push(ctprep_core::io::sidecar_path(&path));
    }
    v
}

/// Refuse a run in which any output (a volume's sidecar included) is an input (or an input's
/// sidecar), or another output: by inode, so symlinks and hard links count too. Devices and
/// `-` are never in conflict.
pub fn no_clobber(inputs: &[&str], outputs: &[&str]) -> Result<()> {
    let real = |p: &str| p != "-" && !ctprep_core::io::is_special_file(std::path::Path::new(p));
    let ins: Vec<(std::path::PathBuf, FileId)> = inputs
        .iter()
        .filter(|p| real(p))
        .flat_map(|p| with_sidecar(p))
        .filter(|p| p.exists())
        .filter_map(|p| Some((p.clone(), file_id(&p)?)))
        .collect();
    let mut seen: Vec<(std::path::PathBuf, FileId)> = Vec::new();
    for out in outputs.iter().filter(|p| real(p)) {
        for p in with_sidecar(out) {
            let Some(id) = file_id(&p) else { continue };
            if let Some((inp, _)) = ins.iter().find(|(_, i)| *i == id) {
                let hint = if p.as_path() != std::path::Path::new(out) {
                    format!("'{out}' and the input share the sidecar '{}': give the output another stem", p.display())
                } else {
                    "write to a new file; ctprep never overwrites its inputs".to_string()
                };
                return Err(usage_error(format!("output '{}' would overwrite the input '{}'", p.display(), inp.display()), hint));
            }
            if let Some((other, _)) = seen.iter().find(|(_, i)| *i == id) {
                return Err(usage_error(
                    format!("two outputs go to the same file '{}' ({})", p.display(), other.display()),
                    "give each output its own name",
                ));
            }
            seen.push((p, id));
        }
    }
    Ok(())
}

/// Refuse an output file whose name says another format than what goes into it (`-o stats.npy`
/// for JSON, `--preview in.nii` for a PNG): a later reader goes by the name. `-` and devices pass.
pub fn check_output_name(path: &str, endings: &[&str], flag: &str) -> Result<()> {
    let lower = path.to_ascii_lowercase();
    if path == "-" || ctprep_core::io::is_special_file(std::path::Path::new(path)) || endings.iter().any(|e| lower.ends_with(e)) {
        return Ok(());
    }
    Err(usage_error(
        format!("{flag} '{path}' does not end in {}: the file would hold another format than its name says", endings.join(" or ")),
        format!("name it {}", endings.iter().map(|e| format!("NAME{e}")).collect::<Vec<_>>().join(" or ")),
    ))
}

/// Parse `A` or `X,Y,Z` (mm) into (x, y, z).
pub fn parse_spacing3(s: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> =
        s.split(',').map(|t| t.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|_| format!("'{s}' is not a number or X,Y,Z"))?;
    let a = match v.as_slice() {
        [a] => [*a; 3],
        [x, y, z] => [*x, *y, *z],
        _ => return Err(format!("'{s}': give one value or three (x,y,z)")),
    };
    if a.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err(format!("'{s}': spacing must be positive millimetres"));
    }
    Ok(a)
}

/// A finite number (clap's own f64 parser takes "nan" and "inf").
pub fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a finite number")),
    }
}

/// A radius in mm from 0 to 100 (a ball larger than a lung is a typo, and costs minutes).
pub fn radius_mm(s: &str) -> Result<f64, String> {
    match finite(s) {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}': give a radius in mm from 0 to 100")),
    }
}

/// Parse `MIN:MAX`.
pub fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(':').ok_or_else(|| format!("'{s}': expected MIN:MAX, e.g. -1000:400"))?;
    let (a, b) = (
        a.trim().parse::<f64>().map_err(|_| format!("'{a}' is not a number"))?,
        b.trim().parse::<f64>().map_err(|_| format!("'{b}' is not a number"))?,
    );
    if a >= b || a.is_nan() || b.is_nan() {
        return Err(format!("'{s}': MIN must be below MAX"));
    }
    Ok((a, b))
}

/// How to turn a DICOM folder into one volume (dcm-stack, and hu-convert on a folder).
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Which series: `largest` (the largest axial CT series), a SeriesNumber, or a SeriesInstanceUID
    #[arg(long, value_name = "WHICH", default_value = "largest")]
    pub series: String,
    /// Irregular spacing or missing slices: resample (to the median spacing), keep, or error
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = OnGap::Resample)]
    pub on_gap: OnGap,
    /// Gantry tilt: correct (shift slices onto an orthogonal grid) or keep (sheared geometry)
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = Tilt::Correct)]
    pub tilt: Tilt,
    /// Refuse sagittal, coronal and oblique series (reformats); by default they are stacked
    /// with a warning when no axial series is there
    #[arg(long)]
    pub axial_only: bool,
}

impl StackArgs {
    pub fn options(&self) -> StackOptions {
        StackOptions {
            select: SeriesSelect::parse(&self.series),
            on_gap: match self.on_gap {
                OnGap::Resample => GapPolicy::Resample,
                OnGap::Keep => GapPolicy::Keep,
                OnGap::Error => GapPolicy::Error,
            },
            tilt: match self.tilt {
                Tilt::Correct => TiltPolicy::Correct,
                Tilt::Keep => TiltPolicy::Keep,
            },
            axial_only: self.axial_only,
        }
    }
}

/// `--on-gap`: what to do with irregular spacing or missing slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnGap {
    Resample,
    Keep,
    Error,
}

/// `--tilt`: what to do with a gantry tilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tilt {
    Correct,
    Keep,
}

/// `--dtype` of a volume output; each tool lists the ones it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutDType {
    U8,
    I16,
    U16,
    I32,
    F32,
    F64,
}

impl From<OutDType> for DType {
    fn from(d: OutDType) -> DType {
        match d {
            OutDType::U8 => DType::U8,
            OutDType::I16 => DType::I16,
            OutDType::U16 => DType::U16,
            OutDType::I32 => DType::I32,
            OutDType::F32 => DType::F32,
            OutDType::F64 => DType::F64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_parser() {
        assert_eq!(parse_spacing3("1").unwrap(), [1.0; 3]);
        assert_eq!(parse_spacing3("0.7,0.7,1.25").unwrap(), [0.7, 0.7, 1.25]);
        assert!(parse_spacing3("0").is_err());
        assert!(parse_spacing3("1,2").is_err());
        assert!(parse_spacing3("x").is_err());
    }

    #[test]
    fn range_parser() {
        assert_eq!(parse_range("-1000:400").unwrap(), (-1000.0, 400.0));
        assert!(parse_range("400:-1000").is_err());
        assert!(parse_range("5").is_err());
    }
}
