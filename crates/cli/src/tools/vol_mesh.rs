//! vol-mesh: marching cubes to viewer-ready STL/OBJ in patient millimetres, with a preview.

use crate::args::{CommonArgs, InputArgs};
use crate::{Cx, Exit, usage_error};
use anyhow::Result;
use clap::Parser;
use ctprep_core::Kind;
use ctprep_core::mesh::render::{View, png_bytes, render};
use ctprep_core::mesh::{Mesh, Space, isosurface_freeing, voxel_volume_ml};
use ctprep_core::volume::Voxel;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Extract an isosurface as a mesh (binary STL, ASCII STL or OBJ) in patient millimetres.
///
/// Vertices are in DICOM patient space (LPS, what 3D Slicer assumes for STL/OBJ) unless --space
/// ras|voxel; the file says which (SPACE=LPS or SPACE=RAS in the STL header or OBJ comment, as
/// Slicer reads it), so the mesh overlays the source volume in a viewer. Surfaces are closed at the volume
/// border, watertight, with outward normals.
///
/// Examples:
///   vol-mesh hu_1mm.nii.gz --level 400 -o bone.stl --preview bone.png
///   vol-mesh lungs.nii.gz --sigma 1 --smooth 10 -o lungs.obj -v
///   vol-mesh hu_1mm.nii.gz --level 400 --decimate 0.1 -o bone_small.stl
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output mesh: .stl or .obj (`-` = stdout, with --format)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
    /// Mesh format when it cannot be told from the name: stl or obj
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub format: Option<MeshFormat>,
    /// Iso-level in the volume's units (default: 0.5 for masks and 0/1 volumes, 400 HU otherwise: bone)
    #[arg(long, value_name = "V", allow_negative_numbers = true, value_parser = crate::args::finite)]
    pub level: Option<f64>,
    /// Gaussian pre-smoothing in mm (smooth organ surfaces from masks)
    #[arg(long, value_name = "MM", default_value_t = 0.0, value_parser = crate::args::radius_mm)]
    pub sigma: f64,
    /// Sample every Nth voxel (coarser, faster)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub step: u16,
    /// Vertex coordinates: lps (default), ras, or voxel (array indices x,y,z)
    #[arg(long, value_name = "SPACE", value_enum, default_value_t = SpaceArg::Lps)]
    pub space: SpaceArg,
    /// Write ASCII STL instead of binary
    #[arg(long)]
    pub ascii: bool,
    /// Keep only the largest connected component
    #[arg(long)]
    pub largest: bool,
    /// Drop components enclosing less than this volume (mL)
    #[arg(long, value_name = "ML", value_parser = crate::args::finite)]
    pub min_volume: Option<f64>,
    /// Taubin smoothing iterations (volume-preserving)
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=10000))]
    pub smooth: u16,
    /// Keep this fraction of the faces (0 < RATIO <= 1) by quadric error edge collapses, after
    /// smoothing; a closed surface stays closed and manifold
    #[arg(long, value_name = "RATIO", value_parser = parse_ratio)]
    pub decimate: Option<f64>,
    /// Write one file per component: OUT_1.stl, OUT_2.stl, ... (largest first)
    #[arg(long)]
    pub split: bool,
    /// Also render a shaded preview of the mesh to this PNG
    #[arg(long, value_name = "PNG")]
    pub preview: Option<PathBuf>,
    /// Preview direction: anterior, posterior, left, right, superior, inferior
    #[arg(long, value_name = "VIEW", default_value = "anterior")]
    pub view: String,
    /// Preview size in pixels (long side)
    #[arg(long, value_name = "PX", default_value_t = 800)]
    pub preview_size: usize,
    /// Print the QC report as JSON on stdout (needs -o FILE)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

crate::tool_args!(Args);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MeshFormat {
    Stl,
    Obj,
}

impl MeshFormat {
    fn name(self) -> &'static str {
        match self {
            MeshFormat::Stl => "stl",
            MeshFormat::Obj => "obj",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpaceArg {
    Lps,
    Ras,
    Voxel,
}

fn parse_ratio(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(format!("'{s}' is not a fraction of faces to keep in (0, 1], e.g. 0.1")),
    }
}

/// The iso-level when none is given: 0.5 for masks, including a 0/1 (or 0/255) volume from
/// another tool that does not say it is a mask; 400 HU (bone) otherwise.
fn default_level(vol: &ctprep_core::Volume) -> (f64, String) {
    if matches!(vol.meta.kind, Kind::Mask | Kind::Labels) {
        return (0.5, "mask default".into());
    }
    if let Some(top) = binary_top(vol) {
        return (top / 2.0, format!("the volume holds only 0 and {top}: a mask, so half-way"));
    }
    (400.0, "bone default, 400 HU".into())
}

/// `Some(t)` when every voxel is 0 or `t` (1 or 255), in stored values with no rescale.
fn binary_top(vol: &ctprep_core::Volume) -> Option<f64> {
    if !vol.data.dtype().is_integer() || vol.meta.rescale.is_some_and(|r| !r.is_identity()) {
        return None;
    }
    let (lo, hi) = vol.data.min_max()?;
    if lo != 0.0 || !(hi == 1.0 || hi == 255.0) {
        return None;
    }
    let only_two = ctprep_core::with_data!(&vol.data, a => a.iter().all(|v| { let v = v.to_f64(); v == 0.0 || v == hi }));
    only_two.then_some(hi)
}

fn write_mesh(mesh: &Mesh, path: &str, obj: bool, ascii: bool, space: Space) -> Result<()> {
    let enc = |w: &mut dyn Write| -> std::io::Result<()> {
        if obj {
            mesh.write_obj(w, space)
        } else if ascii {
            mesh.write_stl_ascii(w, space)
        } else {
            mesh.write_stl_binary(w, space)
        }
    };
    if path == "-" {
        let out = std::io::stdout();
        let mut w = std::io::BufWriter::new(out.lock());
        enc(&mut w)?;
        w.flush()?;
        return Ok(());
    }
    let p = Path::new(path);
    ctprep_core::io::write_file_atomic(p, enc)?;
    Ok(())
}

pub fn run(args: Args, cx: &mut Cx) -> Result<Exit> {
    let plan = Plan::check(&args)?;
    let vol = args.input.read(cx)?;
    let (level, why) = match args.level {
        Some(l) => (l, "given".to_string()),
        None => default_level(&vol),
    };
    cx.verbose(format!("iso-level {level} ({why})"));
    let space = match args.space {
        SpaceArg::Lps => Space::Lps,
        SpaceArg::Ras => Space::Ras,
        SpaceArg::Voxel => Space::Voxel,
    };
    let wants_qc = args.json || cx.verbosity >= 1;
    // QC's voxel count first: the volume is freed inside the meshing (vol-mesh's peak memory).
    let voxel_ml = wants_qc.then(|| voxel_volume_ml(&vol, level));
    let t0 = std::time::Instant::now();
    let mut mesh = isosurface_freeing(vol, level, args.step as usize, args.sigma, space)?;
    cx.time_in_memory(t0.elapsed(), "marching cubes alone");
    cx.verbose(format!("marching cubes: {} vertices, {} faces", mesh.vertices.len(), mesh.triangles.len()));
    if mesh.triangles.is_empty() {
        cx.warn(format!("nothing above level {level}: the mesh is empty"));
        return Ok(Exit::Empty);
    }
    clean_up(&args, &mut mesh, cx);
    if let Some(p) = &args.preview {
        let view = View::parse(&args.view).ok_or_else(|| {
            usage_error(format!("unknown view '{}'", args.view), "anterior, posterior, left, right, superior or inferior")
        })?;
        // The renderer looks in patient space; voxel-space meshes are rendered as they are.
        let (w, h, rgb) = render(&mesh, view, args.preview_size.clamp(16, 8192), [0.93, 0.89, 0.80]);
        let bytes = png_bytes(w, h, &rgb)?;
        ctprep_core::io::write_file_atomic(p, |wr| wr.write_all(&bytes))?;
        cx.verbose(format!("preview {}x{} written to {}", w, h, p.display()));
    }
    if args.split {
        let (stem, ext) = plan.output.rsplit_once('.').unwrap_or((plan.output.as_str(), if plan.obj { "obj" } else { "stl" }));
        let parts = mesh.split_by_size();
        for (i, part) in parts.iter().enumerate() {
            write_mesh(part, &format!("{stem}_{}.{ext}", i + 1), plan.obj, args.ascii, space)?;
        }
        cx.verbose(format!("wrote {} component files {stem}_N.{ext}", parts.len()));
    } else if !plan.preview_only {
        write_mesh(&mesh, &plan.output, plan.obj, args.ascii, space)?;
    }
    if let Some(voxel_ml) = voxel_ml {
        let mut qc = mesh.qc();
        qc.voxel_ml = voxel_ml;
        cx.verbose(format!(
            "QC: {} vertices, {} faces, {} component(s), watertight {}, manifold {}, Euler {}, area {:.1} mm^2, enclosed {:.2} mL (voxels above level: {:.2} mL)",
            qc.vertices, qc.faces, qc.components, qc.watertight, qc.manifold, qc.euler_characteristic, qc.area_mm2, qc.enclosed_ml, qc.voxel_ml
        ));
        if args.json {
            writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&qc)?)?;
        }
    }
    Ok(Exit::Ok)
}

/// Where the mesh goes and in which format, checked before any work.
struct Plan {
    output: String,
    obj: bool,
    /// Only --preview was asked for: no mesh file.
    preview_only: bool,
}

impl Plan {
    fn check(args: &Args) -> Result<Plan> {
        let output = args.output.clone().unwrap_or_else(|| "-".into());
        let lower = output.to_ascii_lowercase();
        let named = [MeshFormat::Stl, MeshFormat::Obj].into_iter().find(|e| lower.ends_with(&format!(".{}", e.name())));
        if let (Some(n), Some(f)) = (named, args.format) {
            if n != f {
                let (n, f) = (n.name(), f.name());
                return Err(usage_error(
                    format!("the name '{output}' says {n}, --format says {f}"),
                    "drop --format, or name the file after the format",
                ));
            }
        }
        if let Some(p) = &args.preview {
            crate::args::check_output_name(&p.to_string_lossy(), &[".png"], "--preview")?;
        }
        let preview_only = args.preview.is_some() && args.output.is_none();
        let obj = match (args.format, named) {
            (Some(f), _) => f == MeshFormat::Obj,
            (None, Some(n)) => n == MeshFormat::Obj,
            (None, None) if preview_only => false,
            _ => {
                return Err(usage_error(
                    "cannot tell the mesh format from the output name",
                    "name it .stl or .obj, or pass --format stl|obj",
                ));
            }
        };
        let to_stdout = output == "-" && !preview_only;
        if to_stdout && std::io::stdout().is_terminal() && !args.ascii && !obj {
            return Err(usage_error("refusing to write a binary STL to a terminal", "pass -o mesh.stl, or redirect with `> mesh.stl`"));
        }
        if args.json && to_stdout {
            return Err(usage_error("--json needs the mesh in a file", "add -o mesh.stl; stdout then carries the QC report"));
        }
        if args.split && to_stdout {
            return Err(usage_error("--split writes one file per component", "pass -o NAME.stl"));
        }
        let preview = args.preview.as_ref().map(|p| p.to_string_lossy().into_owned());
        let outputs: Vec<&str> =
            [Some(output.as_str()).filter(|_| args.output.is_some()), preview.as_deref()].into_iter().flatten().collect();
        crate::args::no_clobber(args.input.path_str().as_slice(), &outputs)?;
        Ok(Plan { output, obj, preview_only })
    }
}

/// --largest / --min-volume (and --split, which compacts as they do), --smooth, --decimate.
fn clean_up(args: &Args, mesh: &mut Mesh, cx: &Cx) {
    if args.largest || args.min_volume.is_some() || args.split {
        let (n, kept) = mesh.keep_components(args.largest, args.min_volume.unwrap_or(0.0));
        cx.verbose(format!("components: {n}, kept {kept}"));
    }
    if args.smooth > 0 {
        mesh.taubin(usize::from(args.smooth));
    }
    if let Some(keep) = args.decimate {
        let t0 = std::time::Instant::now();
        let d = mesh.decimate(keep);
        cx.verbose(format!(
            "decimated: {} -> {} faces in {:.3} s ({} passes), largest error {:.3} mm",
            d.faces_before,
            d.faces_after,
            t0.elapsed().as_secs_f64(),
            d.passes,
            d.max_error_mm2.sqrt()
        ));
    }
}
