//! The tutorial's steps as Python functions. Each one checks its arguments, releases the GIL for
//! the work, turns core warnings into Python warnings and core errors into exceptions, and
//! records itself in the result's provenance as the tools do.

use crate::errors::{IntoPy, usage, warn_all};
use crate::volume::PyVolume;
use ctprep_core::dicom::files::{collect_files, scan};
use ctprep_core::dicom::{GapPolicy, SeriesSelect, StackOptions, TiltPolicy, group_series, select_series, stack_series};
use ctprep_core::geometry::xyz_from_zyx;
use ctprep_core::hu::{HuOptions, to_hu as core_to_hu};
use ctprep_core::io::{ReadOptions, Sink, Source, WriteOptions, read_volume, write_file_atomic, write_volume};
use ctprep_core::mesh::{Mesh, Space, isosurface};
use ctprep_core::normalize::{NormalizeOptions, OtherGrid, apply_outside, mask_on_grid, normalize as core_normalize};
use ctprep_core::resample::{GridMode, Interp, ResampleOptions, Target, resample as core_resample};
use ctprep_core::seg::{LungOptions, Method, segment};
use ctprep_core::volume::DType;
use ctprep_core::{Error, Meta, Volume};
use numpy::{PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;
use std::path::PathBuf;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn stamp(meta: &mut Meta, step: &str, args: Vec<String>) {
    meta.push_step(&format!("ctprep.{step} (python)"), VERSION, args);
}

/// A path or a list of paths.
fn paths_of(py: Python<'_>, p: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if let Ok(one) = p.extract::<PathBuf>() {
        return Ok(vec![one]);
    }
    p.extract::<Vec<PathBuf>>().map_err(|_| {
        usage(py, "expected a path (str or os.PathLike) or a list of paths", "pass the series folder, e.g. load_series('patient/ct')")
    })
}

/// A spacing in mm: one number for all axes, or ``(z, y, x)``; returned as (x, y, z).
fn spacing_xyz(py: Python<'_>, s: &Bound<'_, PyAny>) -> PyResult<[f64; 3]> {
    let zyx = if let Ok(v) = s.extract::<f64>() {
        [v; 3]
    } else {
        s.extract::<[f64; 3]>()
            .map_err(|_| usage(py, "spacing is one number or (z, y, x)", "e.g. spacing=1 or spacing=(1.25, 0.7, 0.7)"))?
    };
    if zyx.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return Err(usage(py, format!("spacing {zyx:?} must be positive numbers (mm)"), "e.g. spacing=1 for 1 x 1 x 1 mm"));
    }
    Ok(xyz_from_zyx(zyx))
}

fn choice<T: Copy>(py: Python<'_>, what: &str, value: &str, options: &[(&str, T)]) -> PyResult<T> {
    options.iter().find(|(n, _)| *n == value).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        usage(py, format!("unknown {what} '{value}'"), format!("use one of: {}", names.join(", ")))
    })
}

/// load_series(path, series="largest", on_gap="resample", tilt="correct") -> Volume
///
/// Stack one DICOM series (a folder, files, or a list of both) into a volume of stored values,
/// as dcm-stack does: localizers, junk and other series are left out, slices ordered by
/// position, spacing from ImagePositionPatient, gaps and gantry tilt handled by the policies.
/// ``meta["slices"]`` says which file each slice came from; ``meta["extra"]["series_choice"]`` why this
/// series was taken. Candidates of several patients or studies, ties and a non-axial series
/// are warned about; ``axial_only=True`` refuses a non-axial one.
#[pyfunction]
#[pyo3(signature = (path, series = "largest", on_gap = "resample", tilt = "correct", axial_only = false))]
fn load_series(py: Python<'_>, path: &Bound<'_, PyAny>, series: &str, on_gap: &str, tilt: &str, axial_only: bool) -> PyResult<PyVolume> {
    let paths = paths_of(py, path)?;
    let opts = StackOptions {
        select: SeriesSelect::parse(series),
        on_gap: choice(
            py,
            "on_gap policy",
            on_gap,
            &[("resample", GapPolicy::Resample), ("keep", GapPolicy::Keep), ("error", GapPolicy::Error)],
        )?,
        tilt: choice(py, "tilt policy", tilt, &[("correct", TiltPolicy::Correct), ("keep", TiltPolicy::Keep)])?,
        axial_only,
    };
    let (stacked, chosen, failed) = py
        .detach(|| -> ctprep_core::Result<_> {
            let files = collect_files(&paths)?;
            let scanned = scan(&files);
            let failed: Vec<String> = scanned.failed.iter().map(|e| format!("{e} (file left out)")).collect();
            let all = group_series(scanned.headers);
            let chosen = select_series(&all, &opts.select, opts.axial_only).map_err(|e| match paths.as_slice() {
                [one] => e.with_path(one),
                _ => e,
            })?;
            Ok((stack_series(&all[chosen.index], &opts)?, chosen, failed))
        })
        .py_err(py)?;
    warn_all(py, &failed)?;
    warn_all(py, &chosen.warnings)?;
    warn_all(py, &stacked.warnings)?;
    let mut vol = stacked.volume;
    vol.meta.extra.insert("series_choice".into(), serde_json::json!({ "why": chosen.why, "notes": stacked.notes }));
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    stamp(&mut vol.meta, "load_series", shown);
    Ok(PyVolume::wrap(vol))
}

/// to_hu(vol, air=-1024, dtype=None, clamp=None, floor=-1024) -> Volume
///
/// Stored values to Hounsfield units (RescaleSlope/Intercept), padding outside the field of
/// view to ``air``, as hu-convert does. ``dtype``: "int16", "int32" or "float32" (default int16
/// when slope and intercept are integers); ``clamp=(min, max)``; values below ``floor`` HU are
/// outside the field of view too (``floor=None`` keeps them).
#[pyfunction]
#[pyo3(signature = (vol, air = -1024.0, dtype = None, clamp = None, floor = Some(-1024.0)))]
fn to_hu(
    py: Python<'_>,
    vol: &PyVolume,
    air: f64,
    dtype: Option<&str>,
    clamp: Option<(f64, f64)>,
    floor: Option<f64>,
) -> PyResult<PyVolume> {
    let dtype = match dtype {
        Some(d) => Some(choice(py, "dtype", d, &[("int16", DType::I16), ("int32", DType::I32), ("float32", DType::F32)])?),
        None => None,
    };
    let opts = HuOptions { air, dtype, clamp, floor, fov_mask: false };
    let inner = &vol.inner;
    let r = py.detach(|| core_to_hu(inner, &opts)).py_err(py)?;
    warn_all(py, &r.warnings)?;
    let mut out = r.volume;
    stamp(&mut out.meta, "to_hu", vec![format!("air={air}")]);
    Ok(PyVolume::wrap(out))
}

/// resample(vol, spacing=1, interp=None, grid="physical", like=None, antialias=True, exact=False) -> Volume
///
/// Onto a new grid, as vol-resample does: ``spacing`` in mm (one number, or ``(z, y, x)``), or
/// the grid of volume ``like``. ``interp``: "linear", "cubic" (B-spline, scipy's order 3) or
/// "nearest"; default linear for images and nearest for masks. ``grid="corners"`` puts the
/// first and last voxel centres where the input's are (scipy ``zoom``, the tutorial's
/// ``resample``); "physical" keeps the box (SimpleITK).
#[pyfunction]
#[pyo3(signature = (vol, spacing = None, interp = None, grid = "physical", like = None, antialias = true, exact = false))]
fn resample(
    py: Python<'_>,
    vol: &PyVolume,
    spacing: Option<&Bound<'_, PyAny>>,
    interp: Option<&str>,
    grid: &str,
    like: Option<&PyVolume>,
    antialias: bool,
    exact: bool,
) -> PyResult<PyVolume> {
    let target = match (spacing, like) {
        (Some(_), Some(_)) => {
            return Err(usage(py, "both spacing and like given", "pass one: the new spacing, or the volume whose grid to take"));
        }
        (_, Some(l)) => Target::Like { geometry: l.inner.geometry.clone(), shape: l.inner.shape() },
        (Some(s), None) => Target::Spacing { spacing: spacing_xyz(py, s)?, exact },
        (None, None) => Target::Spacing { spacing: [1.0; 3], exact },
    };
    let interp = match interp {
        Some(i) => Some(choice(py, "interp", i, &[("linear", Interp::Linear), ("cubic", Interp::Cubic), ("nearest", Interp::Nearest)])?),
        None => None,
    };
    let grid = choice(py, "grid", grid, &[("physical", GridMode::Physical), ("corners", GridMode::Corners)])?;
    let opts = ResampleOptions { target, interp, grid, antialias, ..ResampleOptions::default() };
    let inner = &vol.inner;
    let r = py.detach(|| core_resample(inner, &opts)).py_err(py)?;
    let mut out = r.volume;
    stamp(&mut out.meta, "resample", vec![format!("interp={}", r.interp.name())]);
    Ok(PyVolume::wrap(out))
}

/// lung_mask(vol, method="robust", fill=True, dilate_mm=0, labels=False, close_mm=10, keep_airways=False) -> (Volume, dict)
///
/// The lungs of an HU volume, as lung-seg does, and its QC numbers (right/left/total mL, body
/// fraction, components, fallback, warnings). ``method="tutorial"`` is the tutorial's
/// ``segment_lung_mask(image, fill)`` exactly; "robust" finds the body, removes the airways and
/// separates the lungs (``labels=True``: 1 right, 2 left). Raises EmptyResultError when no lung
/// is found. QC warnings are also issued as Python warnings.
#[pyfunction]
#[pyo3(signature = (vol, method = "robust", fill = true, dilate_mm = 0.0, labels = false, close_mm = 10.0, keep_airways = false))]
fn lung_mask<'py>(
    py: Python<'py>,
    vol: &PyVolume,
    method: &str,
    fill: bool,
    dilate_mm: f64,
    labels: bool,
    close_mm: f64,
    keep_airways: bool,
) -> PyResult<(PyVolume, Bound<'py, PyAny>)> {
    let method = choice(py, "method", method, &[("robust", Method::Robust), ("tutorial", Method::Tutorial { fill })])?;
    for (name, v) in [("dilate_mm", dilate_mm), ("close_mm", close_mm)] {
        if !v.is_finite() || v < 0.0 {
            return Err(usage(py, format!("{name}={v} must be 0 or a positive radius in mm"), format!("e.g. {name}=5")));
        }
    }
    let opts = LungOptions { remove_airways: !keep_airways, close_mm, dilate_mm };
    let inner = &vol.inner;
    let (mut mask, qc) = py.detach(|| segment(inner, method, &opts, labels)).py_err(py)?;
    let mut warnings: Vec<String> = qc.fallback.iter().cloned().collect();
    warnings.extend(qc.warnings.iter().cloned());
    warn_all(py, &warnings)?;
    if qc.total_ml <= 0.0 {
        let e = Error::empty("no lungs found in this volume")
            .with_hint("check that the input is a chest CT in HU (to_hu's output); try method='tutorial' or close_mm=0");
        return Err(crate::errors::to_py(py, e));
    }
    stamp(&mut mask.meta, "lung_mask", vec![format!("{method:?}"), format!("dilate_mm={dilate_mm}")]);
    Ok((PyVolume::wrap(mask), crate::to_python(py, &qc)?))
}

/// normalize(vol, range=(-1000, 400), mean=0.25, mask=None, outside=0.0) -> Volume
///
/// Clip to ``range`` (HU) and scale to [0, 1], then subtract ``mean`` (the tutorial's
/// ``normalize`` and ``zero_center``; ``mean=None`` skips centering), as vol-normalize does.
/// ``mask`` (a Volume on the same grid): voxels outside it become ``outside``.
#[pyfunction]
#[pyo3(signature = (vol, range = (-1000.0, 400.0), mean = Some(0.25), mask = None, outside = 0.0))]
fn normalize(
    py: Python<'_>,
    vol: &PyVolume,
    range: (f64, f64),
    mean: Option<f64>,
    mask: Option<&PyVolume>,
    outside: f64,
) -> PyResult<PyVolume> {
    if !(range.0.is_finite() && range.1.is_finite() && range.0 < range.1) {
        return Err(usage(py, format!("range {range:?} is empty or not finite"), "pass (min, max) with min < max, e.g. (-1000, 400)"));
    }
    let opts = NormalizeOptions { min: range.0, max: range.1, mean };
    let inner = &vol.inner;
    let mask = mask.map(|m| &m.inner);
    let mut out = py
        .detach(|| -> ctprep_core::Result<Volume> {
            let on_grid = mask.map(|m| mask_on_grid(inner, m, true, OtherGrid::Refuse)).transpose()?;
            let mut out = core_normalize(inner, &opts)?;
            if let Some((m, _)) = on_grid {
                apply_outside(&mut out, &m, outside)?;
            }
            Ok(out)
        })
        .py_err(py)?;
    stamp(&mut out.meta, "normalize", vec![format!("range={range:?}"), format!("mean={mean:?}")]);
    Ok(PyVolume::wrap(out))
}

fn space_named(py: Python<'_>, space: &str) -> PyResult<Space> {
    choice(py, "space", space, &[("lps", Space::Lps), ("ras", Space::Ras), ("voxel", Space::Voxel)])
}

/// mesh(vol, level=400, step=1, sigma_mm=0, space="lps") -> (verts, faces)
///
/// The isosurface at ``level`` (real units: HU for CT) by marching cubes, as vol-mesh does:
/// watertight, ``verts`` float32 ``(n, 3)`` in LPS mm (or "ras" mm, or "voxel" indices x, y, z),
/// ``faces`` uint32 ``(m, 3)``, outward normals. ``sigma_mm`` smooths the volume first.
#[pyfunction]
#[pyo3(signature = (vol, level = 400.0, step = 1, sigma_mm = 0.0, space = "lps"))]
fn mesh<'py>(
    py: Python<'py>,
    vol: &PyVolume,
    level: f64,
    step: usize,
    sigma_mm: f64,
    space: &str,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<u32>>)> {
    let space = space_named(py, space)?;
    if step == 0 {
        return Err(usage(py, "step=0", "step is 1 (every voxel) or more"));
    }
    let inner = &vol.inner;
    let m = py.detach(|| isosurface(inner, level, step, sigma_mm, space)).py_err(py)?;
    let verts = ndarray::Array2::from_shape_vec((m.vertices.len(), 3), m.vertices.into_iter().flatten().collect()).expect("n x 3");
    let faces = ndarray::Array2::from_shape_vec((m.triangles.len(), 3), m.triangles.into_iter().flatten().collect()).expect("m x 3");
    Ok((PyArray2::from_owned_array(py, verts), PyArray2::from_owned_array(py, faces)))
}

/// Vertices and faces from numpy, faces checked against the vertex count.
fn mesh_from(py: Python<'_>, verts: &Bound<'_, PyAny>, faces: &Bound<'_, PyAny>) -> PyResult<Mesh> {
    let np = py.import("numpy")?;
    let v = np.call_method1("ascontiguousarray", (verts, "float32"))?;
    let f = np.call_method1("ascontiguousarray", (faces, "uint32"))?;
    let v: PyReadonlyArray2<f32> = v.extract().map_err(|_| usage(py, "verts must be an (n, 3) array", "pass mesh()'s verts"))?;
    let f: PyReadonlyArray2<u32> = f.extract().map_err(|_| usage(py, "faces must be an (m, 3) array", "pass mesh()'s faces"))?;
    let (v, f) = (v.as_array(), f.as_array());
    if v.ncols() != 3 || f.ncols() != 3 {
        return Err(usage(
            py,
            format!("verts are {:?} and faces {:?}: both need 3 columns", v.dim(), f.dim()),
            "pass mesh()'s verts and faces",
        ));
    }
    let n = v.nrows();
    if let Some(bad) = f.iter().find(|&&i| i as usize >= n) {
        return Err(usage(py, format!("a face uses vertex {bad}, there are {n}"), "faces index the rows of verts, from 0"));
    }
    Ok(Mesh {
        vertices: v.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect(),
        triangles: f.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect(),
    })
}

/// write_stl(path, verts, faces, space="lps", ascii=False)
///
/// A binary (or ASCII) STL, written atomically; ``space`` names the vertices' coordinates in
/// the header (3D Slicer reads it: "lps" lands on the CT).
#[pyfunction]
#[pyo3(signature = (path, verts, faces, space = "lps", ascii = false))]
fn write_stl(py: Python<'_>, path: PathBuf, verts: &Bound<'_, PyAny>, faces: &Bound<'_, PyAny>, space: &str, ascii: bool) -> PyResult<()> {
    let space = space_named(py, space)?;
    let m = mesh_from(py, verts, faces)?;
    py.detach(|| write_file_atomic(&path, |w| if ascii { m.write_stl_ascii(w, space) } else { m.write_stl_binary(w, space) })).py_err(py)
}

/// write_obj(path, verts, faces, space="lps")
///
/// A Wavefront OBJ with vertex normals, written atomically.
#[pyfunction]
#[pyo3(signature = (path, verts, faces, space = "lps"))]
fn write_obj(py: Python<'_>, path: PathBuf, verts: &Bound<'_, PyAny>, faces: &Bound<'_, PyAny>, space: &str) -> PyResult<()> {
    let space = space_named(py, space)?;
    let m = mesh_from(py, verts, faces)?;
    py.detach(|| write_file_atomic(&path, |w| m.write_obj(w, space))).py_err(py)
}

/// read(path, spacing=None) -> Volume
///
/// A NIfTI (.nii, .nii.gz) or NPY volume, with its geometry (sform/qform, or the NPY's .json
/// sidecar) and ctprep metadata. ``spacing`` ``(z, y, x)`` is assumed for an NPY without sidecar.
#[pyfunction]
#[pyo3(signature = (path, spacing = None))]
fn read(py: Python<'_>, path: PathBuf, spacing: Option<&Bound<'_, PyAny>>) -> PyResult<PyVolume> {
    let opts = ReadOptions { npy_spacing: spacing.map(|s| spacing_xyz(py, s)).transpose()? };
    let src = Source::Path(path);
    let loaded = py.detach(|| read_volume(&src, &opts)).py_err(py)?;
    warn_all(py, &loaded.warnings)?;
    Ok(PyVolume::wrap(loaded.volume))
}

/// write(vol, path, sidecar=True, keep_phi=False, gzip_level=1, float16=False)
///
/// NIfTI (.nii, .nii.gz) or NPY (.npy, with a .json sidecar for its geometry), atomically, as
/// the tools write: identifying data removed unless ``keep_phi``.
#[pyfunction]
#[pyo3(signature = (vol, path, sidecar = true, keep_phi = false, gzip_level = 1, float16 = false))]
fn write(py: Python<'_>, vol: &PyVolume, path: PathBuf, sidecar: bool, keep_phi: bool, gzip_level: u32, float16: bool) -> PyResult<()> {
    if gzip_level > 9 {
        return Err(usage(py, format!("gzip_level={gzip_level}"), "use 0 (fastest) to 9 (smallest)"));
    }
    let opts = WriteOptions { format: None, gzip_level, sidecar, npy_f16: float16, keep_phi };
    let inner = &vol.inner;
    let sink = Sink::Path(path);
    py.detach(|| write_volume(inner, &sink, &opts)).py_err(py)?;
    Ok(())
}

/// inspect(path, tags=None) -> dict
///
/// DICOM tags of one file as ``{name: value}`` (DICOM JSON values: strings, numbers, lists).
/// ``tags``: keywords (``"PatientID"``), ``"(0010,0020)"`` or paths into sequences
/// (``"ReferencedImageSequence[0].ReferencedSOPInstanceUID"``); tags the file does not hold
/// are left out. Without ``tags``: every top-level element but the pixel data, by keyword.
#[pyfunction]
#[pyo3(signature = (path, tags = None))]
fn inspect<'py>(py: Python<'py>, path: PathBuf, tags: Option<Vec<String>>) -> PyResult<Bound<'py, PyAny>> {
    use ctprep_core::dicom::inspect as ins;
    use dicom_core::header::Header;
    let steps: Vec<(String, Vec<ins::PathStep>)> = tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| ins::parse_tag_path(&t).map(|s| (t, s)))
        .collect::<ctprep_core::Result<_>>()
        .py_err(py)?;
    let json = py
        .detach(|| -> ctprep_core::Result<serde_json::Map<String, serde_json::Value>> {
            let mut obj = ctprep_core::dicom::open_until_pixels(&path)?;
            ins::merge_meta(&mut obj);
            ins::restore_padding_vr(&mut obj, &ins::file_head(&path));
            let mut out = serde_json::Map::new();
            if steps.is_empty() {
                for e in obj.iter().filter(|e| e.tag() != ctprep_core::dicom::PIXEL_DATA) {
                    out.insert(ins::keyword(e.tag()), ins::value_json(e));
                }
            }
            for (name, s) in &steps {
                if let Some(e) = ins::resolve(&obj, s) {
                    out.insert(name.clone(), ins::value_json(e));
                }
            }
            Ok(out)
        })
        .py_err(py)?;
    crate::to_python(py, &json)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_series, m)?)?;
    m.add_function(wrap_pyfunction!(to_hu, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add_function(wrap_pyfunction!(lung_mask, m)?)?;
    m.add_function(wrap_pyfunction!(normalize, m)?)?;
    m.add_function(wrap_pyfunction!(mesh, m)?)?;
    m.add_function(wrap_pyfunction!(write_stl, m)?)?;
    m.add_function(wrap_pyfunction!(write_obj, m)?)?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(write, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    Ok(())
}
