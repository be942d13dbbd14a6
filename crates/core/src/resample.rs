//! Resampling in physical space: nearest, linear, and cubic B-spline (with the prefilter, as
//! `scipy.ndimage.zoom(order=3)`), label-safe modes for masks, anti-aliasing when downsampling,
//! and air (not water) outside the input.
//!
//! When the output grid shares the input's directions (the usual case: a new spacing), each output
//! axis depends on one input axis only, and we resample one output slice at a time: combine the few
//! input slices it needs, then rows, then columns. Memory stays input + output + a slab per thread;
//! cubic makes its B-spline coefficients a slab of planes at a time too (unless it must smooth
//! along z, which takes the whole volume's coefficients). Other grids (`--like` with another
//! orientation, `--orient`) use a general per-voxel path.

use crate::error::{Error, Result};
use crate::filter::gaussian_smooth;
use crate::geometry::{Geometry, Mat3, inv3, xyz_from_zyx, zyx_from_xyz};
use crate::meta::Kind;
use crate::volume::{DType, Volume, VolumeData, Voxel};
use crate::with_data;
use ndarray::{Array2, Array3, ArrayView3, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Interpolation kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    Nearest,
    Linear,
    /// Cubic B-spline with prefilter (scipy `order=3`).
    Cubic,
}

impl Interp {
    pub fn name(self) -> &'static str {
        match self {
            Interp::Nearest => "nearest",
            Interp::Linear => "linear",
            Interp::Cubic => "cubic",
        }
    }
}

/// How output voxels map onto input voxels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GridMode {
    /// Same physical box as the input (voxel edges), ITK/SimpleITK semantics.
    #[default]
    Physical,
    /// First and last voxel centres coincide with the input's (scipy `zoom`, the tutorial).
    Corners,
}

/// What to do with masks (kind Mask or Labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskMode {
    /// Nearest neighbour: labels stay labels.
    #[default]
    Nearest,
    /// Linear interpolation of the 0/1 mask, then threshold at 0.5 (smoother edges; binary masks only).
    LinearThreshold,
}

/// The output grid.
#[derive(Debug, Clone)]
pub enum Target {
    /// New spacing (x, y, z) mm; `exact` keeps it and trims/extends the extent (centred).
    Spacing { spacing: [f64; 3], exact: bool },
    /// Another volume's grid.
    Like { geometry: Geometry, shape: [usize; 3] },
    /// An axis-aligned grid in LPS (`ras = false`) or RAS covering the input, at this spacing.
    Orient { ras: bool, spacing: Option<[f64; 3]> },
}

#[derive(Debug, Clone)]
pub struct ResampleOptions {
    pub target: Target,
    /// `None`: linear for images, `mask_mode` for masks.
    pub interp: Option<Interp>,
    pub mask_mode: MaskMode,
    pub grid: GridMode,
    /// Value outside the input; `None`: -1024 for HU and stored CT, 0 otherwise.
    pub fill: Option<f64>,
    /// Gaussian prefilter when downsampling (images only).
    pub antialias: bool,
    pub dtype: Option<DType>,
}

impl Default for ResampleOptions {
    fn default() -> Self {
        ResampleOptions {
            target: Target::Spacing { spacing: [1.0; 3], exact: false },
            interp: None,
            mask_mode: MaskMode::Nearest,
            grid: GridMode::Physical,
            fill: None,
            antialias: true,
            dtype: None,
        }
    }
}

#[derive(Debug)]
pub struct Resampled {
    pub volume: Volume,
    pub interp: Interp,
    pub notes: Vec<String>,
}

/// The output grid for a target spacing: shape = round(extent / spacing) per axis (as the
/// tutorial), spacing adjusted so the output covers exactly the input's box, unless `exact`.
pub fn spacing_grid(g: &Geometry, shape_zyx: [usize; 3], spacing: [f64; 3], exact: bool, grid: GridMode) -> (Geometry, [usize; 3]) {
    let n = xyz_from_zyx(shape_zyx);
    let mut out = g.clone();
    let mut m = [0usize; 3];
    for a in 0..3 {
        let extent = n[a] as f64 * g.spacing[a];
        m[a] = ((extent / spacing[a]).round() as usize).max(1);
        let s_new = match (exact, grid) {
            (true, _) => spacing[a],
            (false, GridMode::Physical) => extent / m[a] as f64,
            (false, GridMode::Corners) => {
                if m[a] > 1 {
                    g.spacing[a] * (n[a] as f64 - 1.0) / (m[a] as f64 - 1.0)
                } else {
                    g.spacing[a]
                }
            }
        };
        out.spacing[a] = s_new;
        // Centre the new grid on the input's box: shift of voxel 0's centre along this axis.
        let shift = match grid {
            GridMode::Corners if !exact => 0.0,
            _ => (n[a] as f64 * g.spacing[a] - m[a] as f64 * s_new) / 2.0 - g.spacing[a] / 2.0 + s_new / 2.0,
        };
        for r in 0..3 {
            out.origin[r] += g.direction[a][r] * shift;
        }
    }
    (out, zyx_from_xyz(m))
}

fn orient_grid(g: &Geometry, shape_zyx: [usize; 3], ras: bool, spacing: Option<[f64; 3]>) -> (Geometry, [usize; 3]) {
    let dir = if ras { [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]] } else { [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] };
    // Spacing: the input's spacing of the axis most aligned with each new axis, unless given.
    let sp = spacing.unwrap_or_else(|| {
        let mut s = [0.0; 3];
        for (b, sb) in s.iter_mut().enumerate() {
            let mut world_axis = [0.0; 3];
            world_axis[b] = 1.0;
            *sb = g.spacing[g.index_axis_along(world_axis)];
        }
        s
    });
    let corners = g.corners(shape_zyx);
    let mut out = Geometry { spacing: sp, origin: [0.0; 3], direction: dir };
    let mut n = [0usize; 3];
    for b in 0..3 {
        let proj: Vec<f64> = corners.iter().map(|c| crate::geometry::dot(*c, dir[b])).collect();
        let (lo, hi) = proj.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        n[b] = ((hi - lo) / sp[b]).round() as usize + 1;
        for r in 0..3 {
            out.origin[r] += dir[b][r] * lo;
        }
    }
    (out, zyx_from_xyz(n))
}

/// Resample a volume.
pub fn resample(vol: &Volume, opts: &ResampleOptions) -> Result<Resampled> {
    let shape = vol.shape();
    if shape.contains(&0) {
        return Err(Error::bad_input("the volume is empty"));
    }
    let is_mask = matches!(vol.meta.kind, Kind::Mask | Kind::Labels);
    let interp = match (opts.interp, is_mask) {
        (Some(i), _) => i,
        (None, true) if opts.mask_mode == MaskMode::LinearThreshold => Interp::Linear,
        (None, true) => Interp::Nearest,
        (None, false) => Interp::Linear,
    };
    let threshold = is_mask && opts.interp.is_none() && opts.mask_mode == MaskMode::LinearThreshold;
    if threshold && vol.meta.kind == Kind::Labels {
        return Err(
            Error::usage("linear-threshold works on binary masks, not label maps").with_hint("use --mask-mode nearest for label maps")
        );
    }
    let (out_geo, out_shape) = match &opts.target {
        Target::Spacing { spacing, exact } => {
            if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
                return Err(Error::usage(format!("spacing {spacing:?} must be positive millimetres")));
            }
            spacing_grid(&vol.geometry, shape, *spacing, *exact, opts.grid)
        }
        Target::Like { geometry, shape } => (geometry.clone(), *shape),
        Target::Orient { ras, spacing } => orient_grid(&vol.geometry, shape, *ras, *spacing),
    };
    check_memory(vol, opts, out_shape)?;
    let fill = opts.fill.unwrap_or_else(|| default_fill(vol));
    let mut notes = Vec::new();
    let (a, b) = index_map(vol, &out_geo, out_shape, opts)?;
    let separable = (0..3).all(|i| (0..3).all(|j| i == j || a[i][j].abs() < 1e-9));

    // Anti-aliasing: Gaussian with sigma = (factor - 1) / 2 input voxels along downsampled axes (skimage's rule).
    let sigmas: [f64; 3] = std::array::from_fn(|k| if separable { ((a[k][k].abs() - 1.0) / 2.0).max(0.0) } else { 0.0 });
    let smooth = opts.antialias && !is_mask && sigmas.iter().any(|&s| s > 0.01);
    let dtype = opts.dtype.unwrap_or(vol.data.dtype());
    let mut m = Mapping { a, b, separable, out_shape, in_shape: shape, fill, pad: 0, interp, sigmas: [0.0; 3], source: Source::AsGiven };
    if smooth {
        notes.push(format!("anti-aliasing: Gaussian sigma (x,y,z) = {:.3?} input voxels", sigmas));
    }
    let slabs = interp == Interp::Cubic && separable && sigmas[2] <= 0.01 && shape[0] + 2 * CUBIC_PAD > SLAB + 2 * MARGIN + HORIZON;
    let _progress = crate::progress::task("resampling (output planes)", out_shape[0] as u64);
    let out = if slabs {
        // The usual case (a new spacing, no smoothing along z): coefficients a slab at a time.
        m.pad = CUBIC_PAD;
        m.source = Source::CubicSlabs { smooth_xy: smooth.then_some([sigmas[0], sigmas[1], 0.0]) };
        with_data!(&vol.data, d => run_as(&d.view(), &m, dtype, threshold))
    } else if interp == Interp::Cubic {
        let coefficients = crate::with_data!(&vol.data, a => cubic_coefficients(a, smooth.then_some(sigmas)));
        m.pad = CUBIC_PAD;
        run_as(&coefficients.view(), &m, dtype, threshold)
    } else {
        // Straight from the stored type into the output type; anti-aliasing folded into the taps.
        if smooth {
            m.sigmas = sigmas;
        }
        with_data!(&vol.data, d => run_as(&d.view(), &m, dtype, threshold))
    };
    if !separable {
        notes.push("output grid is rotated relative to the input: general (per-voxel) path".into());
    }
    let mut meta = vol.meta.clone();
    meta.extra.insert("resample".into(), serde_json::json!({ "interp": interp.name(), "fill": fill, "spacing_xyz_mm": out_geo.spacing }));
    Ok(Resampled { volume: Volume { data: out, geometry: out_geo, meta }, interp, notes })
}

/// What a resampling will allocate, checked before any of it is: the output in its type and, for
/// cubic, the B-spline coefficients (float32, up to the input's size).
fn check_memory(vol: &Volume, opts: &ResampleOptions, out_shape: [usize; 3]) -> Result<()> {
    let voxels = out_shape.iter().try_fold(1u64, |a, &v| a.checked_mul(v as u64)).unwrap_or(u64::MAX);
    let out_size = opts.dtype.unwrap_or(vol.data.dtype()).size() as u64;
    let cubic = matches!(opts.interp, Some(Interp::Cubic));
    let coefficients = if cubic { vol.data.len() as u64 * 4 } else { 0 };
    let need = voxels.saturating_mul(out_size).saturating_add(coefficients);
    crate::io::check_claim(std::path::Path::new("<resample>"), "the output grid", need, None)
}

/// Outside the input: air for CT (-1024 HU, in stored values for stored data), 0 for masks.
fn default_fill(vol: &Volume) -> f64 {
    match vol.meta.kind {
        Kind::Hu => -1024.0,
        Kind::Stored => vol.meta.rescale.map(|r| (-1024.0 - r.intercept) / r.slope).unwrap_or(-1024.0),
        Kind::Unknown if vol.data.dtype() != DType::U8 => -1024.0,
        _ => 0.0,
    }
}

/// Output (x, y, z) indices to input ones: index_in = a * index_out + b.
fn index_map(vol: &Volume, out_geo: &Geometry, out_shape: [usize; 3], opts: &ResampleOptions) -> Result<(Mat3, [f64; 3])> {
    let shape = vol.shape();
    let m_in = inv3(&vol.geometry.index_matrix()).ok_or_else(|| Error::bad_input("the input grid is degenerate (zero spacing)"))?;
    if opts.grid == GridMode::Corners && matches!(opts.target, Target::Spacing { exact: false, .. }) {
        // Exactly scipy's mapping, free of rounding in the geometry.
        let (n, m) = (xyz_from_zyx(shape), xyz_from_zyx(out_shape));
        let mut a = [[0.0; 3]; 3];
        for k in 0..3 {
            a[k][k] = if m[k] > 1 { (n[k] as f64 - 1.0) / (m[k] as f64 - 1.0) } else { 0.0 };
        }
        return Ok((a, [0.0; 3]));
    }
    let m_out = out_geo.index_matrix();
    let mut a = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            a[i][j] = (0..3).map(|k| m_in[i][k] * m_out[k][j]).sum();
        }
    }
    Ok((a, vol.geometry.world_to_index(out_geo.origin).unwrap_or([0.0; 3])))
}

/// How output indices map onto the input: index_in = a * index_out + b, plus the kernel.
struct Mapping {
    a: Mat3,
    b: [f64; 3],
    separable: bool,
    out_shape: [usize; 3],
    in_shape: [usize; 3],
    fill: f64,
    /// Padding of the source (cubic coefficients) per side.
    pad: usize,
    interp: Interp,
    /// Gaussian anti-aliasing sigma (input voxels) per axis (x, y, z), folded into the taps.
    sigmas: [f64; 3],
    /// What the array handed to [`run`] is.
    source: Source,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    /// What the taps read: samples, or cubic coefficients made beforehand.
    AsGiven,
    /// The input: cubic makes its coefficients slab by slab ([`cubic_by_slabs`]), smoothing
    /// each plane first with these sigmas (x, y) when given.
    CubicSlabs { smooth_xy: Option<[f64; 3]> },
}

/// The input samples one output coordinate reads along one axis: their indices and weights
/// (1 for nearest, 2 for linear, 4 for cubic B-spline coefficients), or `outside` when the
/// coordinate falls beyond the input's half-voxel border (the output voxel gets the fill value).
#[derive(Clone)]
struct Taps {
    idx: Vec<usize>,
    w: Vec<f32>,
    outside: bool,
}

fn axis_taps(c: f64, n: usize, pad: usize, interp: Interp) -> Taps {
    let outside = Taps { idx: vec![], w: vec![], outside: true };
    if c < -0.5 - 1e-9 || c > n as f64 - 0.5 + 1e-9 {
        return outside;
    }
    match interp {
        Interp::Nearest => {
            let i = (c.round().max(0.0) as usize).min(n - 1);
            Taps { idx: vec![i], w: vec![1.0], outside: false }
        }
        Interp::Linear => {
            let c = c.clamp(0.0, (n - 1) as f64);
            let i0 = c.floor() as usize;
            let i1 = (i0 + 1).min(n - 1);
            let t = (c - i0 as f64) as f32;
            Taps { idx: vec![i0, i1], w: vec![1.0 - t, t], outside: false }
        }
        Interp::Cubic => {
            // Coefficients are padded by `pad` (edge-replicated before filtering, as scipy's mode='nearest').
            let np = n + 2 * pad;
            let x = c + pad as f64;
            let f = x.floor();
            let t = x - f;
            let w = [
                (1.0 - t).powi(3) / 6.0,
                (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0,
                (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0,
                t * t * t / 6.0,
            ];
            let idx = (0..4).map(|k| mirror(f as i64 - 1 + k, np)).collect();
            Taps { idx, w: w.iter().map(|&v| v as f32).collect(), outside: false }
        }
    }
}

/// Fold a Gaussian (sigma in input voxels, edges replicated) into an axis's taps, so anti-aliasing
/// costs no float copy of the volume.
fn smooth_taps(t: Taps, sigma: f64, n: usize) -> Taps {
    if t.outside || sigma <= 0.01 {
        return t;
    }
    let r = (4.0 * sigma).ceil() as i64;
    let g: Vec<f64> = (-r..=r).map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let gs: f64 = g.iter().sum();
    let mut acc: Vec<(usize, f64)> = Vec::new();
    for (&i, &w) in t.idx.iter().zip(&t.w) {
        for (k, gk) in (-r..=r).zip(&g) {
            let j = (i as i64 + k).clamp(0, n as i64 - 1) as usize;
            match acc.iter_mut().find(|(q, _)| *q == j) {
                Some(e) => e.1 += w as f64 * gk / gs,
                None => acc.push((j, w as f64 * gk / gs)),
            }
        }
    }
    acc.sort_by_key(|e| e.0);
    Taps { idx: acc.iter().map(|e| e.0).collect(), w: acc.iter().map(|e| e.1 as f32).collect(), outside: false }
}

fn mirror(i: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// Resample into the output type (or into 0/1 bytes when thresholding a mask at 0.5).
fn run_as<T: Voxel>(src: &ArrayView3<T>, m: &Mapping, dtype: DType, threshold: bool) -> VolumeData {
    if threshold {
        let f: Array3<f32> = run(src, m);
        return VolumeData::U8(f.mapv(|v| u8::from(v >= 0.5)));
    }
    match dtype {
        DType::U8 => VolumeData::U8(run(src, m)),
        DType::I16 => VolumeData::I16(run(src, m)),
        DType::U16 => VolumeData::U16(run(src, m)),
        DType::I32 => VolumeData::I32(run(src, m)),
        DType::F32 => VolumeData::F32(run(src, m)),
        DType::F64 => VolumeData::F64(run(src, m)),
    }
}

fn run<T: Voxel, O: Voxel>(src: &ArrayView3<T>, m: &Mapping) -> Array3<O> {
    match (m.source, m.separable) {
        (Source::CubicSlabs { smooth_xy }, _) => cubic_by_slabs(src, m, smooth_xy),
        (Source::AsGiven, true) => separable_run(src, m),
        (Source::AsGiven, false) => general_run(src, m),
    }
}

/// Per-axis taps of a separable mapping: z, y, x.
fn separable_taps(m: &Mapping) -> (Vec<Taps>, Vec<Taps>, Vec<Taps>) {
    let ([mz, my, mx], [nz, ny, nx], (a, b)) = (m.out_shape, m.in_shape, (&m.a, &m.b));
    let taps = |k: usize, n_out: usize, n_in: usize| -> Vec<Taps> {
        (0..n_out)
            .map(|o| smooth_taps(axis_taps(a[k][k] * o as f64 + b[k], n_in, m.pad, m.interp), m.sigmas[k], n_in + 2 * m.pad))
            .collect()
    };
    (taps(2, mz, nz), taps(1, my, ny), taps(0, mx, nx))
}

fn separable_run<T: Voxel, O: Voxel>(src: &ArrayView3<T>, m: &Mapping) -> Array3<O> {
    let (tz, ty, tx) = separable_taps(m);
    let [mz, my, mx] = m.out_shape;
    let fill_o = O::from_f64(m.fill);
    let mut out = crate::volume::zeroed::<O>((mz, my, mx));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(oz, oslab)| {
        resample_plane(src, &tz[oz], &ty, &tx, fill_o, oslab);
        crate::progress::advance(1);
    });
    out
}

/// One output plane: combine the input planes its z taps name (indices into `src`), then rows,
/// then columns.
fn resample_plane<T: Voxel, O: Voxel>(src: &ArrayView3<T>, t: &Taps, ty: &[Taps], tx: &[Taps], fill_o: O, mut oslab: ArrayViewMut2<O>) {
    if t.outside {
        oslab.fill(fill_o);
        return;
    }
    let (sy, sx) = (src.shape()[1], src.shape()[2]);
    let mut slab = Array2::<f32>::zeros((sy, sx));
    for (&iz, &w) in t.idx.iter().zip(&t.w) {
        if w == 0.0 {
            continue;
        }
        let s = src.index_axis(Axis(0), iz);
        ndarray::Zip::from(&mut slab).and(&s).for_each(|d, &v| *d += w * v.to_f32());
    }
    let slab = slab.as_standard_layout();
    let slab = slab.as_slice().unwrap_or(&[]);
    let mut row = vec![0f32; sx];
    for (oy, tyy) in ty.iter().enumerate() {
        let mut orow = oslab.index_axis_mut(Axis(0), oy);
        if tyy.outside {
            orow.fill(fill_o);
            continue;
        }
        row.iter_mut().for_each(|r| *r = 0.0);
        for (&iy, &w) in tyy.idx.iter().zip(&tyy.w) {
            let line = &slab[iy * sx..(iy + 1) * sx];
            for (r, &v) in row.iter_mut().zip(line) {
                *r += w * v;
            }
        }
        for (o, txx) in orow.iter_mut().zip(tx) {
            *o =
                if txx.outside { fill_o } else { O::from_f64(txx.idx.iter().zip(&txx.w).map(|(&ix, &w)| w * row[ix]).sum::<f32>() as f64) };
        }
    }
}

fn general_run<T: Voxel, O: Voxel>(src: &ArrayView3<T>, m: &Mapping) -> Array3<O> {
    let ([mz, my, mx], [nz, ny, nx], (a, b), (pad, interp, fill)) = (m.out_shape, m.in_shape, (&m.a, &m.b), (m.pad, m.interp, m.fill));
    let mut out = crate::volume::zeroed::<O>((mz, my, mx));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(oz, mut oslab)| {
        crate::progress::advance(1);
        for oy in 0..my {
            for ox in 0..mx {
                let o = [ox as f64, oy as f64, oz as f64];
                let c: [f64; 3] = std::array::from_fn(|k| a[k][0] * o[0] + a[k][1] * o[1] + a[k][2] * o[2] + b[k]);
                let (tx, ty, tz) = (axis_taps(c[0], nx, pad, interp), axis_taps(c[1], ny, pad, interp), axis_taps(c[2], nz, pad, interp));
                oslab[[oy, ox]] = if tx.outside || ty.outside || tz.outside {
                    O::from_f64(fill)
                } else {
                    let mut s = 0f32;
                    for (&iz, &wz) in tz.idx.iter().zip(&tz.w) {
                        for (&iy, &wy) in ty.idx.iter().zip(&ty.w) {
                            for (&ix, &wx) in tx.idx.iter().zip(&tx.w) {
                                s += wz * wy * wx * src[[iz, iy, ix]].to_f32();
                            }
                        }
                    }
                    O::from_f64(s as f64)
                };
            }
        }
    });
    out
}

/// Coefficient planes made per slab by [`cubic_by_slabs`], and the planes on each side its z
/// recursions start from: they start from zero there, an error of z1^MARGIN = 0.268^16 (7e-10)
/// relative, far below float32's precision.
const SLAB: usize = 32;
const MARGIN: usize = 16;
/// Samples the prefilter's mirror start sums on a long line (the rest is below a double's precision).
const HORIZON: usize = 41;
/// Columns the slab path's z recursion runs side by side (contiguous in memory here, so wider
/// than the gathered LANES of the whole-volume path).
const Z_LANES: usize = 64;

/// Cubic B-spline resampling of a separable mapping without the whole volume's coefficients in
/// memory: coefficient planes are made SLAB at a time (x and y prefiltered per plane and kept
/// for the next slab's margin; z prefiltered over the slab and its margins), and each output
/// plane is computed once the 4 planes it needs are in. Memory: input + output + about
/// SLAB + 4 MARGIN padded float planes. Agrees with the whole-volume path to float32 precision.
fn cubic_by_slabs<T: Voxel, O: Voxel>(src: &ArrayView3<T>, m: &Mapping, smooth_xy: Option<[f64; 3]>) -> Array3<O> {
    let pad = m.pad;
    let (nz, ny, nx) = src.dim();
    let (npz, py, px) = (nz + 2 * pad, ny + 2 * pad, nx + 2 * pad);
    let (tz, ty, tx) = separable_taps(m);
    let [mz, my, mx] = m.out_shape;
    let fill_o = O::from_f64(m.fill);
    let mut out = crate::volume::zeroed::<O>((mz, my, mx));
    let mut planes_out: Vec<Option<ArrayViewMut2<O>>> = out.axis_iter_mut(Axis(0)).map(Some).collect();
    // Output planes outside the input are filled at once; the others wait for their slab.
    let mut pending: Vec<usize> = Vec::new();
    for (oz, t) in tz.iter().enumerate() {
        if t.outside {
            if let Some(mut p) = planes_out[oz].take() {
                p.fill(fill_o);
                crate::progress::advance(1);
            }
        } else {
            pending.push(oz);
        }
    }
    let need = |oz: usize| -> (usize, usize) {
        let idx = &tz[oz].idx;
        (idx.iter().copied().min().unwrap_or(0), idx.iter().copied().max().unwrap_or(0))
    };
    pending.sort_by_key(|&oz| need(oz));
    // x- and y-prefiltered planes by padded z index, kept while a later slab's margin needs them.
    let mut xy: std::collections::BTreeMap<usize, Array2<f32>> = std::collections::BTreeMap::new();
    let mut next = 0usize;
    while next < pending.len() {
        // This slab: coefficient planes [a, b), from the first pending plane's lowest tap.
        let a = need(pending[next]).0;
        let b = (a + SLAB).min(npz);
        let lo = a.saturating_sub(MARGIN);
        let hi = if lo == 0 { (b + MARGIN).max(HORIZON) } else { b + MARGIN }.min(npz);
        xy.retain(|&k, _| k >= lo);
        let missing: Vec<usize> = (lo..hi).filter(|k| !xy.contains_key(k)).collect();
        let made: Vec<(usize, Array2<f32>)> = missing
            .into_par_iter()
            .map(|k| {
                // Padded plane k is input plane k - pad, edges replicated (scipy's 'nearest').
                let z = k.saturating_sub(pad).min(nz - 1);
                let cl = |i: usize, n: usize| i.saturating_sub(pad).min(n - 1);
                let plane = src.index_axis(Axis(0), z);
                let mut c = Array2::from_shape_fn((py, px), |(y, x)| plane[[cl(y, ny), cl(x, nx)]].to_f32());
                if let Some(sigmas) = smooth_xy {
                    let mut inner = c.slice_mut(ndarray::s![pad..py - pad, pad..px - pad]).insert_axis(Axis(0));
                    gaussian_smooth(&mut inner, sigmas);
                    repad_plane(c.view_mut(), pad);
                }
                filter_plane(c.view_mut(), true);
                filter_plane(c.view_mut(), false);
                (k, c)
            })
            .collect();
        xy.extend(made);
        // z: the prefilter over [lo, hi), Z_LANES columns of a row at a time, rows in parallel.
        let run: Vec<&Array2<f32>> = (lo..hi).map(|k| &xy[&k]).collect();
        let ends = Ends { first: lo == 0, last: hi == npz };
        let mut coef = Array3::<f32>::zeros((b - a, py, px));
        let rows: Vec<(usize, ArrayViewMut2<f32>)> = coef.axis_iter_mut(Axis(1)).enumerate().collect();
        rows.into_par_iter().for_each(|(y, mut dst)| {
            let rows: Vec<&[f32]> = run.iter().map(|p| &p.as_slice().expect("standard layout")[y * px..(y + 1) * px]).collect();
            let mut buf = vec![[0f64; Z_LANES]; hi - lo];
            for x0 in (0..px).step_by(Z_LANES) {
                let w = Z_LANES.min(px - x0);
                for (b, row) in buf.iter_mut().zip(&rows) {
                    for (d, &v) in b.iter_mut().zip(&row[x0..x0 + w]) {
                        *d = v as f64;
                    }
                }
                bspline3_prefilter_lanes(&mut buf, ends);
                for (b, mut out) in buf[a - lo..].iter().zip(dst.outer_iter_mut()) {
                    for (d, &v) in out.iter_mut().skip(x0).zip(&b[..w]) {
                        *d = v as f32;
                    }
                }
            }
        });
        // Every pending output plane whose taps lie in [a, b).
        let done = pending[next..].iter().take_while(|&&oz| need(oz).1 < b).count().max(1);
        let batch: Vec<(usize, ArrayViewMut2<O>)> =
            pending[next..next + done].iter().filter_map(|&oz| planes_out[oz].take().map(|p| (oz, p))).collect();
        let view = coef.view();
        batch.into_par_iter().for_each(|(oz, p)| {
            let t = Taps { idx: tz[oz].idx.iter().map(|&i| i - a).collect(), w: tz[oz].w.clone(), outside: false };
            resample_plane(&view, &t, &ty, &tx, fill_o, p);
            crate::progress::advance(1);
        });
        next += done;
    }
    out
}

/// [`repad`] for one plane: its `pad` border from the nearest interior row or column.
fn repad_plane(mut c: ArrayViewMut2<f32>, pad: usize) {
    let (cy, cx) = c.dim();
    for y in pad..cy - pad {
        let mut row = c.row_mut(y);
        let (first, last) = (row[pad], row[cx - pad - 1]);
        row.slice_mut(ndarray::s![..pad]).fill(first);
        row.slice_mut(ndarray::s![cx - pad..]).fill(last);
    }
    for y in (0..pad).chain(cy - pad..cy) {
        let src = c.row(y.clamp(pad, cy - pad - 1)).to_owned();
        c.row_mut(y).assign(&src);
    }
}

/// The whole volume's B-spline coefficients: a padded float copy of the input, smoothed in place
/// when anti-aliasing (no second float copy), then prefiltered along x, y and z.
fn cubic_coefficients<T: Voxel>(a: &Array3<T>, smooth: Option<[f64; 3]>) -> Array3<f32> {
    let mut coefficients = padded_copy(a, CUBIC_PAD);
    if let Some(sigmas) = smooth {
        let p = CUBIC_PAD;
        let (cz, cy, cx) = coefficients.dim();
        gaussian_smooth(&mut coefficients.slice_mut(ndarray::s![p..cz - p, p..cy - p, p..cx - p]), sigmas);
        repad(&mut coefficients, p);
    }
    for axis in [2, 1, 0] {
        filter_axis(&mut coefficients, axis);
    }
    coefficients
}

/// Padding (voxels per side) before the cubic prefilter, as scipy does for mode='nearest'.
const CUBIC_PAD: usize = 12;

/// A float copy padded by `pad` voxels per side with the nearest edge value (scipy's 'nearest'
/// padding before `spline_filter`; the B-spline prefilter, with mirror boundaries, follows).
fn padded_copy<T: Voxel>(f: &Array3<T>, pad: usize) -> Array3<f32> {
    let (nz, ny, nx) = f.dim();
    let mut c = Array3::<f32>::zeros((nz + 2 * pad, ny + 2 * pad, nx + 2 * pad));
    let cl = |i: usize, n: usize| i.saturating_sub(pad).min(n - 1);
    c.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(z, mut s)| {
        for y in 0..ny + 2 * pad {
            for x in 0..nx + 2 * pad {
                s[[y, x]] = f[[cl(z, nz), cl(y, ny), cl(x, nx)]].to_f32();
            }
        }
    });
    c
}

/// Set the `pad` border of `c` again from its interior (each border voxel = the nearest interior
/// voxel), as [`padded_copy`] does.
fn repad(c: &mut Array3<f32>, pad: usize) {
    let cz = c.dim().0;
    let cl = |i: usize, n: usize| i.clamp(pad, n - pad - 1);
    c.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(z, plane)| {
        if z >= pad && z < cz - pad {
            repad_plane(plane, pad);
        }
    });
    for z in (0..pad).chain(cz - pad..cz) {
        let src = c.index_axis(Axis(0), cl(z, cz)).to_owned();
        c.index_axis_mut(Axis(0), z).assign(&src);
    }
}

fn filter_axis(c: &mut Array3<f32>, axis: usize) {
    if c.shape()[axis] < 2 {
        return;
    }
    match axis {
        2 => c.axis_iter_mut(Axis(0)).into_par_iter().for_each(|p| filter_plane(p, true)),
        1 => c.axis_iter_mut(Axis(0)).into_par_iter().for_each(|p| filter_plane(p, false)),
        _ => c.axis_iter_mut(Axis(1)).into_par_iter().for_each(|p| filter_plane(p, false)),
    }
}

/// The prefilter on every line of a plane: along its rows (axis 1) or its columns (axis 0).
/// Lines go through the recursions LANES at a time: one line's recursion is a chain of
/// dependent multiply-adds, side-by-side lines vectorize. Blocks are gathered from contiguous
/// memory (neighbouring columns, or neighbouring rows).
fn filter_plane(mut plane: ndarray::ArrayViewMut2<f32>, along_rows: bool) {
    let (len, width) = if along_rows { (plane.shape()[1], plane.shape()[0]) } else { (plane.shape()[0], plane.shape()[1]) };
    if len < 2 {
        return;
    }
    let mut buf = vec![[0f64; LANES]; len];
    for w0 in (0..width).step_by(LANES) {
        let w = LANES.min(width - w0);
        for (i, b) in buf.iter_mut().enumerate() {
            for k in 0..w {
                b[k] = if along_rows { plane[[w0 + k, i]] } else { plane[[i, w0 + k]] } as f64;
            }
        }
        bspline3_prefilter_lanes(&mut buf, WHOLE_LINE);
        for (i, b) in buf.iter().enumerate() {
            for k in 0..w {
                let d = if along_rows { &mut plane[[w0 + k, i]] } else { &mut plane[[i, w0 + k]] };
                *d = b[k] as f32;
            }
        }
    }
}

/// Lanes filtered side by side.
const LANES: usize = 8;

/// Which ends of its line a run of samples holds. An end it holds gets scipy's mirror boundary;
/// past an end it does not hold, the recursion starts from zero (cubic_by_slabs' runs reach
/// MARGIN samples beyond the ones they keep, so that start costs z1^MARGIN, relatively).
#[derive(Debug, Clone, Copy)]
struct Ends {
    first: bool,
    last: bool,
}

const WHOLE_LINE: Ends = Ends { first: true, last: true };

/// The cubic B-spline prefilter (scipy ni_splines.c) on L lines at once: `c[i][k]` is
/// sample i of line k. Runs need at least two samples, and HORIZON when they hold the first
/// but not the last end.
fn bspline3_prefilter_lanes<const L: usize>(c: &mut [[f64; L]], ends: Ends) {
    let n = c.len();
    let z = 3f64.sqrt() - 2.0;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    for v in c.iter_mut() {
        for x in v.iter_mut() {
            *x *= gain;
        }
    }
    if ends.first {
        // Causal initialisation (mirror). Terms past z^40 (< 1e-23) are below a double's
        // precision, so long lines stop there; short ones sum every term, as scipy does. The
        // far end's terms (z^(n-1)) only count for a run that holds it.
        let z_n_1 = if ends.last { z.powi(n as i32 - 1) } else { 0.0 };
        let horizon = if ends.last && n <= 64 { n - 1 } else { HORIZON };
        let mut c0 = [0f64; L];
        for k in 0..L {
            c0[k] = c[0][k] + z_n_1 * c[n - 1][k];
        }
        let mut z_i = z;
        for i in 1..horizon {
            for k in 0..L {
                c0[k] += z_i * (c[i][k] + z_n_1 * c[n - 1 - i][k]);
            }
            z_i *= z;
        }
        for k in 0..L {
            c[0][k] = c0[k] / (1.0 - z_n_1 * z_n_1);
        }
    }
    for i in 1..n {
        let prev = c[i - 1];
        for k in 0..L {
            c[i][k] += z * prev[k];
        }
    }
    for k in 0..L {
        c[n - 1][k] = if ends.last { (z * c[n - 2][k] + c[n - 1][k]) * z / (z * z - 1.0) } else { -z * c[n - 1][k] };
    }
    for i in (0..n - 1).rev() {
        let next = c[i + 1];
        for k in 0..L {
            c[i][k] = z * (next[k] - c[i][k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Meta;

    fn vol_f32(a: Array3<f32>, g: Geometry, kind: Kind) -> Volume {
        Volume { data: VolumeData::F32(a), geometry: g, meta: Meta { kind, ..Meta::default() } }
    }

    fn ramp() -> Array3<f32> {
        Array3::from_shape_fn((4, 5, 6), |(z, y, x)| ((z * 7 + y * 3 + x * x) % 11) as f32 * 10.0)
    }

    // Oracle: scipy 1.17.1, ndimage.zoom(a, (1.5, 1.4, 1.5), order=k, mode='nearest') with
    // a[z,y,x] = ((7z + 3y + x^2) % 11) * 10, shape (4,5,6) -> (6,7,9); scripts/oracle/resample.py.
    const SCIPY_LINEAR: [(usize, usize, usize, f32); 5] =
        [(0, 0, 0, 0.0), (1, 2, 3, 52.25), (3, 3, 4, 42.0), (5, 6, 8, 30.0), (2, 5, 7, 65.166_67)];
    const SCIPY_CUBIC: [(usize, usize, usize, f32); 5] =
        [(0, 0, 0, 0.0), (1, 2, 3, 49.403_636), (3, 3, 4, 34.131_073), (5, 6, 8, 30.0), (2, 5, 7, 79.866_68)];

    fn zoom(interp: Interp) -> Array3<f32> {
        let v = vol_f32(ramp(), Geometry::default(), Kind::Hu);
        let opts = ResampleOptions {
            target: Target::Spacing { spacing: [6.0 / 9.0, 5.0 / 7.0, 4.0 / 6.0], exact: false },
            interp: Some(interp),
            grid: GridMode::Corners,
            antialias: false,
            ..ResampleOptions::default()
        };
        let r = resample(&v, &opts).unwrap();
        assert_eq!(r.volume.shape(), [6, 7, 9]);
        let VolumeData::F32(a) = r.volume.data else { panic!() };
        a
    }

    #[test]
    fn linear_and_cubic_match_scipy_zoom_corners() {
        let lin = zoom(Interp::Linear);
        for (z, y, x, v) in SCIPY_LINEAR {
            assert!((lin[[z, y, x]] - v).abs() < 1e-4, "linear {z},{y},{x}: {} vs {v}", lin[[z, y, x]]);
        }
        let cub = zoom(Interp::Cubic);
        for (z, y, x, v) in SCIPY_CUBIC {
            assert!((cub[[z, y, x]] - v).abs() < 1e-4, "cubic {z},{y},{x}: {} vs {v}", cub[[z, y, x]]);
        }
    }

    #[test]
    fn linear_matches_simpleitk_on_the_physical_grid() {
        // Oracle: SimpleITK 2.5.7 linear Resample onto the same grid (scripts/oracle/resample_sitk.py).
        let v = vol_f32(ramp(), Geometry::default(), Kind::Hu);
        let opts = ResampleOptions {
            target: Target::Spacing { spacing: [0.7, 0.8, 1.5], exact: false },
            interp: Some(Interp::Linear),
            antialias: false,
            ..ResampleOptions::default()
        };
        let r = resample(&v, &opts).unwrap();
        assert_eq!(r.volume.shape(), [3, 6, 9]);
        let VolumeData::F32(a) = &r.volume.data else { panic!() };
        for (p, want) in SITK_LINEAR {
            assert!((a[p] - want).abs() < 1e-4, "{p:?}: {} vs SimpleITK {want}", a[p]);
        }
    }

    const SITK_LINEAR: [((usize, usize, usize), f32); 5] =
        [((0, 0, 0), 11.666_667), ((1, 2, 3), 50.763_89), ((2, 5, 8), 36.666_668), ((2, 3, 4), 50.902_78), ((1, 5, 0), 60.0)];

    #[test]
    fn tutorial_shape_and_spacing() {
        // 248 x 512 x 512 at 0.703125 x 0.703125 x 1.25 -> 310 x 360 x 360 at exactly 1 mm.
        let g = Geometry { spacing: [0.703125, 0.703125, 1.25], ..Geometry::default() };
        let (og, shape) = spacing_grid(&g, [248, 512, 512], [1.0; 3], false, GridMode::Physical);
        assert_eq!(shape, [310, 360, 360]);
        assert_eq!(og.spacing, [1.0, 1.0, 1.0]);
        // Same physical box: first voxel edge stays put.
        for a in 0..3 {
            assert!((og.origin[a] - og.spacing[a] / 2.0 - (g.origin[a] - g.spacing[a] / 2.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn landmarks_keep_their_world_position() {
        // A bright voxel in an oblique, feet-first volume lands at the same LPS point after resampling.
        let s = 0.5f64.sqrt();
        let g =
            Geometry { spacing: [0.8, 0.9, 2.5], origin: [10.0, -20.0, 30.0], direction: [[s, s, 0.0], [-s, s, 0.0], [0.0, 0.0, -1.0]] };
        let mut a = Array3::<f32>::from_elem((12, 20, 20), -1000.0);
        a[[6, 10, 8]] = 1000.0;
        let world = g.index_to_world([8.0, 10.0, 6.0]);
        let v = vol_f32(a, g, Kind::Hu);
        let r = resample(
            &v,
            &ResampleOptions { target: Target::Spacing { spacing: [0.5; 3], exact: false }, antialias: false, ..Default::default() },
        )
        .unwrap();
        let VolumeData::F32(b) = &r.volume.data else { panic!() };
        let (idx, _) = b.indexed_iter().fold(((0, 0, 0), f32::MIN), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
        let w2 = r.volume.geometry.index_to_world([idx.2 as f64, idx.1 as f64, idx.0 as f64]);
        let d = ((w2[0] - world[0]).powi(2) + (w2[1] - world[1]).powi(2) + (w2[2] - world[2]).powi(2)).sqrt();
        assert!(d < 0.5, "moved {d} mm");
    }

    #[test]
    fn outside_is_air_for_hu_and_zero_for_masks() {
        let v = vol_f32(Array3::from_elem((4, 4, 4), 40.0), Geometry::default(), Kind::Hu);
        let like = Geometry { origin: [-2.0, 0.0, 0.0], ..Geometry::default() };
        let r = resample(&v, &ResampleOptions { target: Target::Like { geometry: like.clone(), shape: [4, 4, 4] }, ..Default::default() })
            .unwrap();
        let VolumeData::F32(b) = &r.volume.data else { panic!() };
        assert_eq!(b[[0, 0, 0]], -1024.0);
        let m = Volume {
            data: VolumeData::U8(Array3::from_elem((4, 4, 4), 1)),
            geometry: Geometry::default(),
            meta: Meta { kind: Kind::Mask, ..Meta::default() },
        };
        let r = resample(&m, &ResampleOptions { target: Target::Like { geometry: like, shape: [4, 4, 4] }, ..Default::default() }).unwrap();
        let VolumeData::U8(b) = &r.volume.data else { panic!() };
        assert_eq!(b[[0, 0, 0]], 0);
        assert_eq!(b[[0, 0, 3]], 1);
    }

    #[test]
    fn folded_anti_aliasing_equals_smoothing_first() {
        // Linear folds the Gaussian into its taps; cubic smooths its padded coefficient copy in
        // place and pads it again. Both must equal smoothing a copy first, then resampling.
        let a = Array3::from_shape_fn((9, 11, 13), |(z, y, x)| ((z * 7 + y * 5 + x * 3) % 17) as f32 * 10.0 - 80.0);
        let g = Geometry::identity([0.5, 0.6, 0.7]);
        let target = Target::Spacing { spacing: [1.3, 1.1, 1.9], exact: false };
        for interp in [Interp::Linear, Interp::Cubic] {
            let o = ResampleOptions { target: target.clone(), interp: Some(interp), ..Default::default() };
            let folded = resample(&vol_f32(a.clone(), g.clone(), Kind::Hu), &o).unwrap();
            // Same sigmas (from the actual output spacing), applied to a copy first.
            let out = folded.volume.geometry.spacing;
            let sig = [(out[0] / 0.5 - 1.0) / 2.0, (out[1] / 0.6 - 1.0) / 2.0, (out[2] / 0.7 - 1.0) / 2.0];
            let mut s = a.clone();
            gaussian_smooth(&mut s.view_mut(), sig);
            let first = resample(&vol_f32(s, g.clone(), Kind::Hu), &ResampleOptions { antialias: false, ..o }).unwrap();
            let (VolumeData::F32(p), VolumeData::F32(q)) = (&folded.volume.data, &first.volume.data) else { panic!() };
            for (x, y) in p.iter().zip(q.iter()) {
                assert!((x - y).abs() < 1e-3, "{interp:?}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn cubic_by_slabs_equals_the_whole_volume_coefficients() {
        // 150 planes: several slabs, both ends' exact starts, windows starting mid-line; with and
        // without in-plane smoothing, z forward and flipped.
        let a = Array3::from_shape_fn((150, 9, 11), |(z, y, x)| {
            ((z as f32 * 0.37).sin() * 300.0 + (y * 13 + x * 7) as f32 - 50.0 + ((z * 31 + y * 17 + x) % 23) as f32 * 4.0) as i16
        });
        // The first mapping starts 2 planes before the input: its first output planes are fill.
        for (az, bz, smooth) in [(0.8f64, -2.0, None), (1.25, 0.1, Some([0.7, 0.4, 0.0])), (-0.6, 149.2, None)] {
            let mz = ((149.0 + 0.5) / az.abs()) as usize;
            let m = Mapping {
                a: [[1.4, 0.0, 0.0], [0.0, 1.2, 0.0], [0.0, 0.0, az]],
                b: [0.2, -0.1, bz],
                separable: true,
                out_shape: [mz, 8, 8],
                in_shape: [150, 9, 11],
                fill: -1024.0,
                pad: CUBIC_PAD,
                interp: Interp::Cubic,
                sigmas: [0.0; 3],
                source: Source::AsGiven,
            };
            let whole: Array3<f32> = separable_run(&cubic_coefficients(&a, smooth).view(), &m);
            let slabs: Array3<f32> = cubic_by_slabs(&a.view(), &m, smooth);
            let worst = whole.iter().zip(slabs.iter()).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "az {az}: differs by {worst}");
            assert_eq!(slabs.index_axis(Axis(0), 0).iter().all(|&v| v == -1024.0), bz < -0.5);
        }
    }

    #[test]
    fn prefilter_then_evaluate_interpolates_samples() {
        let orig = [3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0];
        // Line k is the samples times (k + 1): every lane must come out right, not only the first.
        let mut c: Vec<[f64; LANES]> = orig.iter().map(|&v| std::array::from_fn(|k| v * (k + 1) as f64)).collect();
        bspline3_prefilter_lanes(&mut c, WHOLE_LINE);
        for k in 0..LANES {
            for i in 0..orig.len() {
                let m = |j: i64| c[mirror(j, c.len())][k];
                let v = (m(i as i64 - 1) + 4.0 * m(i as i64) + m(i as i64 + 1)) / 6.0;
                assert!((v - orig[i] * (k + 1) as f64).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn long_lines_stop_the_causal_sum_without_losing_precision() {
        // 300 samples: the causal initialisation stops at z^40; evaluating the spline must still
        // give the samples back to double precision.
        let orig: Vec<f64> = (0..300).map(|i| ((i * 37 % 101) as f64 - 50.0) * 13.7).collect();
        let mut c: Vec<[f64; LANES]> = orig.iter().map(|&v| [v; LANES]).collect();
        bspline3_prefilter_lanes(&mut c, WHOLE_LINE);
        for i in 0..orig.len() {
            let m = |j: i64| c[mirror(j, c.len())][3];
            let v = (m(i as i64 - 1) + 4.0 * m(i as i64) + m(i as i64 + 1)) / 6.0;
            assert!((v - orig[i]).abs() < 1e-9, "{i}: {v} vs {}", orig[i]);
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]
            #[test]
            fn same_grid_is_identity(nz in 1usize..5, ny in 1usize..6, nx in 1usize..6, seed in 0u32..1000) {
                let a = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| ((z * 31 + y * 17 + x * 7 + seed as usize) % 97) as f32);
                let g = Geometry { spacing: [0.7, 0.8, 2.0], ..Geometry::default() };
                for interp in [Interp::Nearest, Interp::Linear, Interp::Cubic] {
                    let v = vol_f32(a.clone(), g.clone(), Kind::Hu);
                    let r = resample(&v, &ResampleOptions { target: Target::Spacing { spacing: g.spacing, exact: false }, interp: Some(interp), ..Default::default() }).unwrap();
                    let VolumeData::F32(b) = &r.volume.data else { panic!() };
                    for (p, q) in a.iter().zip(b.iter()) { prop_assert!((p - q).abs() < 1e-3, "{interp:?}"); }
                }
            }

            #[test]
            fn constants_stay_constant_and_masks_stay_binary(sx in 0.3f64..3.0, sy in 0.3f64..3.0, sz in 0.3f64..3.0) {
                let v = vol_f32(Array3::from_elem((5, 6, 7), 123.0), Geometry::default(), Kind::Hu);
                for interp in [Interp::Nearest, Interp::Linear, Interp::Cubic] {
                    let r = resample(&v, &ResampleOptions { target: Target::Spacing { spacing: [sx, sy, sz], exact: false }, interp: Some(interp), ..Default::default() }).unwrap();
                    let VolumeData::F32(b) = &r.volume.data else { panic!() };
                    prop_assert!(b.iter().all(|&x| (x - 123.0).abs() < 1e-2));
                }
                let m = Volume { data: VolumeData::U8(Array3::from_shape_fn((5, 6, 7), |(z, y, x)| ((x + y + z) % 2) as u8)), geometry: Geometry::default(), meta: Meta { kind: Kind::Mask, ..Meta::default() } };
                for mode in [MaskMode::Nearest, MaskMode::LinearThreshold] {
                    let r = resample(&m, &ResampleOptions { target: Target::Spacing { spacing: [sx, sy, sz], exact: false }, mask_mode: mode, ..Default::default() }).unwrap();
                    let VolumeData::U8(b) = &r.volume.data else { panic!() };
                    prop_assert!(b.iter().all(|&x| x <= 1));
                }
            }

            #[test]
            fn output_covers_the_input_extent(sx in 0.4f64..2.5, sz in 0.4f64..4.0) {
                let g = Geometry { spacing: [0.7, 0.7, 1.25], origin: [5.0, 6.0, 7.0], ..Geometry::default() };
                let (og, shape) = spacing_grid(&g, [20, 30, 30], [sx, sx, sz], false, GridMode::Physical);
                for a in 0..3 {
                    let n_in = [30.0, 30.0, 20.0][a];
                    let n_out = xyz_from_zyx(shape)[a] as f64;
                    prop_assert!((n_out * og.spacing[a] - n_in * g.spacing[a]).abs() < 1e-9);
                }
            }
        }
    }
}
