//! Binary morphology on `[z, y, x]` masks: connected components (6/18/26, run-based union-find,
//! labels numbered in raster order like `scipy.ndimage.label`/`skimage.measure.label`), hole
//! filling (2-D per slice and 3-D), and dilation/erosion/closing with balls in millimetres via an
//! exact anisotropic Euclidean distance transform.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut3, Axis, Zip};
use rayon::prelude::*;

/// Voxel connectivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Faces only (scipy's default `generate_binary_structure(3, 1)`).
    Six,
    /// Faces and edges.
    Eighteen,
    /// Faces, edges and corners (skimage's default "full" connectivity).
    TwentySix,
}

/// One run of foreground voxels along x in row (z, y): [x0, x1).
#[derive(Clone, Copy)]
struct Run {
    x0: u32,
    x1: u32,
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[i as usize];
        parent[i as usize] = parent[p as usize];
        i = p;
    }
    i
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        // Keep the smaller (earlier) root so raster order decides numbering later.
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

/// A mask kept as runs along x, each row's in order. CT masks have a few runs per row, so a body
/// mask costs a few megabytes instead of a byte per voxel (lung-seg's peak memory).
pub struct Runs {
    dims: (usize, usize, usize),
    /// Per slice: its runs, and each row's first run (one more entry than rows).
    slices: Vec<(Vec<Run>, Vec<u32>)>,
    /// Index of each slice's first run among all runs.
    base: Vec<u32>,
}

impl Runs {
    /// The runs of the voxels where `fg` holds; in parallel over slices.
    pub fn new<T: Copy + Sync>(mask: &ArrayView3<T>, fg: impl Fn(T) -> bool + Sync) -> Self {
        let (nz, ny, _) = mask.dim();
        let slices: Vec<(Vec<Run>, Vec<u32>)> = (0..nz)
            .into_par_iter()
            .map(|z| {
                let plane = mask.index_axis(Axis(0), z);
                let mut runs = Vec::new();
                let mut starts = Vec::with_capacity(ny + 1);
                let scan = |row: &[T], runs: &mut Vec<Run>| {
                    let mut x = 0;
                    while x < row.len() {
                        let x0 = run_end(row, x, false, &fg);
                        x = run_end(row, x0, true, &fg);
                        if x > x0 {
                            runs.push(Run { x0: x0 as u32, x1: x as u32 });
                        }
                    }
                };
                for y in 0..ny {
                    starts.push(runs.len() as u32);
                    let row = plane.index_axis(Axis(0), y);
                    match row.as_slice() {
                        Some(r) => scan(r, &mut runs),
                        None => scan(&row.to_vec(), &mut runs),
                    }
                }
                starts.push(runs.len() as u32);
                (runs, starts)
            })
            .collect();
        let mut base = vec![0u32; nz + 1];
        for z in 0..nz {
            base[z + 1] = base[z] + slices[z].0.len() as u32;
        }
        Runs { dims: mask.dim(), slices, base }
    }

    /// Row (z, y)'s runs and the index of the first among all runs.
    fn row(&self, z: usize, y: usize) -> (&[Run], u32) {
        let (runs, starts) = &self.slices[z];
        (&runs[starts[y] as usize..starts[y + 1] as usize], self.base[z] + starts[y])
    }

    /// Number of runs.
    fn len(&self) -> usize {
        self.base[self.dims.0] as usize
    }

    /// Every run as (z, y, run, its index among all runs).
    fn iter(&self) -> impl Iterator<Item = (usize, usize, Run, u32)> + '_ {
        let (nz, ny, _) = self.dims;
        (0..nz).flat_map(move |z| {
            (0..ny).flat_map(move |y| {
                let (runs, b) = self.row(z, y);
                runs.iter().enumerate().map(move |(i, &r)| (z, y, r, b + i as u32))
            })
        })
    }

    /// Voxels in the mask.
    pub fn count(&self) -> u64 {
        self.slices.iter().flat_map(|(runs, _)| runs).map(|r| u64::from(r.x1 - r.x0)).sum()
    }

    /// The mask (0/1) inside the box of (z, y, x) ranges `b`.
    pub fn crop(&self, b: Box3) -> Array3<u8> {
        let mut out = Array3::<u8>::zeros((b[0].1 - b[0].0, b[1].1 - b[1].0, b[2].1 - b[2].0));
        let (x0, x1) = (b[2].0 as u32, b[2].1 as u32);
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut s)| {
            for (j, mut row) in s.outer_iter_mut().enumerate() {
                for r in self.row(b[0].0 + k, b[1].0 + j).0 {
                    let (lo, hi) = (r.x0.max(x0), r.x1.min(x1));
                    if lo < hi {
                        row.slice_mut(ndarray::s![(lo - x0) as usize..(hi - x0) as usize]).fill(1);
                    }
                }
            }
        });
        out
    }

    /// Mean x index of each slice's voxels (`None` where a slice is empty).
    pub fn mean_x_per_slice(&self) -> Vec<Option<f64>> {
        self.slices
            .iter()
            .map(|(runs, _)| {
                // Sums of whole numbers, exact: the same mean as adding voxel by voxel.
                let (n, twice_sum) = runs.iter().fold((0u64, 0u64), |(n, s), r| {
                    let len = u64::from(r.x1 - r.x0);
                    (n + len, s + len * u64::from(r.x0 + r.x1 - 1))
                });
                (n > 0).then(|| twice_sum as f64 / 2.0 / n as f64)
            })
            .collect()
    }
}

/// Connected components kept as runs along x, each run knowing its label: sizes, border contact
/// and masks come from the runs, so callers that need one component never paint (and page in)
/// a 4-byte label per voxel.
pub struct Components {
    runs: Runs,
    /// Label (1..=n) of every run.
    id: Vec<u32>,
    /// Number of components.
    pub n: usize,
}

impl Components {
    /// Components of the voxels where `fg` holds, numbered 1..=n by first voxel in raster order
    /// (as `scipy.ndimage.label`/`skimage.measure.label` number them).
    pub fn new<T: Copy + Sync>(mask: &ArrayView3<T>, conn: Connectivity, fg: impl Fn(T) -> bool + Sync) -> Self {
        let (nz, ny, _) = mask.dim();
        let c = Runs::new(mask, fg);
        let total = c.len();
        let mut parent: Vec<u32> = (0..total as u32).collect();
        // Neighbour rows already visited: (dz, dy, dilated overlap?).
        let neigh: &[(i64, i64, bool)] = match conn {
            Connectivity::Six => &[(0, -1, false), (-1, 0, false)],
            Connectivity::Eighteen => &[(0, -1, true), (-1, 0, true), (-1, -1, false), (-1, 1, false)],
            Connectivity::TwentySix => &[(0, -1, true), (-1, -1, true), (-1, 0, true), (-1, 1, true)],
        };
        for z in 0..nz {
            for y in 0..ny {
                let (here, base_here) = c.row(z, y);
                if here.is_empty() {
                    continue;
                }
                for &(dz, dy, dilate) in neigh {
                    let (qz, qy) = (z as i64 + dz, y as i64 + dy);
                    if qz < 0 || qy < 0 || qy >= ny as i64 {
                        continue;
                    }
                    let (other, obase) = c.row(qz as usize, qy as usize);
                    let d = u32::from(dilate);
                    let mut j = 0;
                    for (i, r) in here.iter().enumerate() {
                        // Overlap of [x0 - d, x1 + d) with [o.x0, o.x1).
                        while j < other.len() && other[j].x1 + d <= r.x0 {
                            j += 1;
                        }
                        let mut k = j;
                        while k < other.len() && other[k].x0 < r.x1 + d {
                            union(&mut parent, base_here + i as u32, obase + k as u32);
                            k += 1;
                        }
                    }
                }
            }
        }
        // Number roots in raster order.
        let mut id = vec![0u32; total];
        let mut n = 0u32;
        for i in 0..total as u32 {
            let r = find(&mut parent, i);
            if r == i {
                n += 1;
                id[i as usize] = n;
            } else {
                id[i as usize] = id[r as usize];
            }
        }
        Components { runs: c, id, n: n as usize }
    }

    /// Row (z, y)'s runs and the index of the first among all runs.
    fn row(&self, z: usize, y: usize) -> (&[Run], u32) {
        self.runs.row(z, y)
    }

    /// Every run as (z, y, run, label).
    fn runs(&self) -> impl Iterator<Item = (usize, usize, Run, u32)> + '_ {
        self.runs.iter().map(|(z, y, r, i)| (z, y, r, self.id[i as usize]))
    }

    /// The label of voxel (z, y, x), or `None` where it is not in a component.
    pub fn label_at(&self, z: usize, y: usize, x: usize) -> Option<u32> {
        let (runs, b) = self.row(z, y);
        let i = runs.partition_point(|r| r.x1 as usize <= x);
        runs.get(i).filter(|r| r.x0 as usize <= x).map(|_| self.id[(b + i as u32) as usize])
    }

    /// Voxel count of each label (index 0, the background, counts nothing).
    pub fn sizes(&self) -> Vec<u64> {
        let mut s = vec![0u64; self.n + 1];
        for (_, _, r, l) in self.runs() {
            s[l as usize] += u64::from(r.x1 - r.x0);
        }
        s
    }

    /// Which labels touch the border: the x and y faces, and the z faces when `z_faces` (false
    /// for one slice seen as a 2-D image).
    pub fn on_border(&self, z_faces: bool) -> Vec<bool> {
        let (nz, ny, nx) = self.runs.dims;
        let mut b = vec![false; self.n + 1];
        for (z, y, r, l) in self.runs() {
            if r.x0 == 0 || r.x1 as usize == nx || y == 0 || y + 1 == ny || (z_faces && (z == 0 || z + 1 == nz)) {
                b[l as usize] = true;
            }
        }
        b
    }

    /// Write `value(label)` into every component voxel of `out` (same shape) where it is `Some`.
    pub fn paint_into<L: Copy + Send + Sync>(&self, out: &mut ArrayViewMut3<L>, value: impl Fn(u32) -> Option<L> + Sync) {
        self.each_run_of(out, |l, mut run| {
            if let Some(v) = value(l) {
                run.fill(v);
            }
        });
    }

    /// Apply `update` to every voxel of `out` (same shape) in a component `which` picks.
    pub fn update_into<L: Send + Sync>(
        &self,
        out: &mut ArrayViewMut3<L>,
        which: impl Fn(u32) -> bool + Sync,
        update: impl Fn(&mut L) + Sync,
    ) {
        self.each_run_of(out, |l, mut run| {
            if which(l) {
                run.map_inplace(&update);
            }
        });
    }

    /// `f(label, the run's voxels in out)` for every run; `out` has the mask's shape.
    fn each_run_of<L: Send + Sync>(&self, out: &mut ArrayViewMut3<L>, f: impl Fn(u32, ArrayViewMut1<L>) + Sync) {
        let ny = self.runs.dims.1;
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(z, mut s)| {
            for y in 0..ny {
                let (runs, b) = self.row(z, y);
                let mut row = s.index_axis_mut(Axis(0), y);
                for (i, r) in runs.iter().enumerate() {
                    f(self.id[(b + i as u32) as usize], row.slice_mut(ndarray::s![r.x0 as usize..r.x1 as usize]));
                }
            }
        });
    }

    /// A volume holding `value(label)` on the components (where `Some`) and `bg` elsewhere.
    pub fn paint<L: Copy + Send + Sync>(&self, bg: L, value: impl Fn(u32) -> Option<L> + Sync) -> Array3<L> {
        let mut out = Array3::from_elem(self.runs.dims, bg);
        self.paint_into(&mut out.view_mut(), value);
        out
    }
}

/// The first index from `x` on where `fg` is not `inside` (or the row's end). Runs are long in
/// CT masks (two or three per row): whole 32-voxel blocks are tested at once, which vectorizes.
#[inline]
pub(crate) fn run_end<T: Copy>(row: &[T], mut x: usize, inside: bool, fg: &impl Fn(T) -> bool) -> usize {
    while let Some(block) = row.get(x..x + 32) {
        if !block.iter().fold(true, |all, &v| all & (fg(v) == inside)) {
            break;
        }
        x += 32;
    }
    while x < row.len() && fg(row[x]) == inside {
        x += 1;
    }
    x
}

/// Label connected components of `mask` (non-zero = foreground). Returns labels (0 = background,
/// 1..=n numbered by first voxel in raster order) and n.
pub fn label<T: Copy + PartialEq + Default + Sync>(mask: &ArrayView3<T>, conn: Connectivity) -> (Array3<u32>, usize) {
    let zero = T::default();
    let c = Components::new(mask, conn, |v| v != zero);
    (c.paint(0, Some), c.n)
}

/// `a.mapv(f)` over all cores.
pub fn par_map<A: Copy + Sync, B: Send>(a: &Array3<A>, f: impl Fn(A) -> B + Sync + Send) -> Array3<B> {
    Zip::from(a).par_map_collect(|&v| f(v))
}

/// Non-zero voxels, over all cores.
pub fn count_nonzero(a: &Array3<u8>) -> u64 {
    a.outer_iter().into_par_iter().map(|p| p.iter().filter(|&&v| v != 0).count() as u64).sum()
}

/// 2-D labelling of one slice (8-connectivity when `full`, else 4).
pub fn label2d<T: Copy + PartialEq + Default + Sync>(slice: &ArrayView2<T>, full: bool) -> (Array2<u32>, usize) {
    let v = slice.view().insert_axis(Axis(0));
    let (l, n) = label(&v, if full { Connectivity::Eighteen } else { Connectivity::Six });
    (l.index_axis_move(Axis(0), 0), n)
}

/// Fill holes: background regions not connected (6-conn) to the volume border.
pub fn fill_holes_3d(mask: &mut Array3<u8>) {
    let bg = Components::new(&mask.view(), Connectivity::Six, |v| v == 0);
    let border = bg.on_border(true);
    bg.paint_into(&mut mask.view_mut(), |l| (!border[l as usize]).then_some(1));
}

/// Fill holes slice by slice (axial, 4-connected background as `binary_fill_holes` in 2-D), in
/// place; only holes of at most `max_area` voxels per slice (`usize::MAX`: all), so vessels and
/// nodules close but not the space a lung wraps around, such as the diaphragm's dome.
pub fn fill_holes_2d(mask: &mut Array3<u8>, max_area: usize) {
    fill_holes_2d_by(mask, max_area, |v| v != 0, |v| *v = 1);
}

/// [`fill_holes_2d`] of the mask of voxels where `inside` holds (one flag among others in each
/// byte); `mark` puts a hole's voxel in it.
pub fn fill_holes_2d_by(mask: &mut Array3<u8>, max_area: usize, inside: impl Fn(u8) -> bool + Sync, mark: impl Fn(&mut u8) + Sync) {
    mask.axis_iter_mut(Axis(0)).into_par_iter().for_each(|s| {
        let mut s = s.insert_axis(Axis(0));
        let bg = Components::new(&s.view(), Connectivity::Six, |v| !inside(v));
        let (border, area) = (bg.on_border(false), bg.sizes());
        bg.update_into(&mut s, |l| !border[l as usize] && area[l as usize] <= max_area as u64, &mark);
    });
}

/// Squared Euclidean distance (mm^2) from every voxel to the nearest voxel where `feature` is
/// true; spacing (x, y, z) mm. Felzenszwalb & Huttenlocher's separable lower envelope; the first
/// pass (along x, contiguous) is a plain two-way scan.
pub fn edt_squared(feature: &Array3<bool>, spacing: [f64; 3]) -> Array3<f32> {
    let mut d = edt_x::<f32>(&feature.view(), spacing[0] as f32);
    for axis in [1usize, 0] {
        let w = spacing[crate::geometry::array_axis(axis)] as f32;
        let n = d.shape()[axis];
        let lanes: Vec<_> = d.lanes_mut(Axis(axis)).into_iter().collect();
        lanes.into_par_iter().for_each_init(
            || Envelope::new(n),
            |env, mut lane| {
                for (i, v) in lane.iter().enumerate() {
                    env.f[i] = *v;
                }
                env.run(w * w);
                for (o, v) in lane.iter_mut().zip(&env.out) {
                    *o = *v;
                }
            },
        );
    }
    d
}

/// Squared distance (mm^2) to the nearest `feature` voxel, exact wherever it is at most `r`^2 and
/// some value above `r`^2 elsewhere: all a ball of radius `r` needs. After the x scan, each of the
/// y and z passes is a minimum over the few offsets within `r`, over whole contiguous rows and
/// planes; for morphology's radii that is several times faster than the full transform, whose
/// y and z lanes stride through memory.
pub fn edt_squared_within(feature: &Array3<bool>, spacing: [f64; 3], r: f64) -> Array3<f32> {
    let mut out = Array3::<f32>::zeros(feature.raw_dim());
    ball_slabs::<f32, f32>(feature, spacing, r, WINDOW_BYTES, &mut out.view_mut(), |o, d| *o = d);
    out
}

/// A squared distance as the ball morphology's passes carry it: float mm^2 in general; on
/// isotropic grids whole voxel units in a byte, saturating (255 = farther than the ball), which
/// puts sixteen to a 128-bit vector instead of four and needs a quarter of the memory.
trait SqDist: Copy + PartialOrd + Send + Sync + Default + 'static {
    /// Squared length of `steps` voxels of width `w`; `steps` >= NONE: no feature that way.
    fn of_steps(steps: u32, w: f32) -> Self;
    /// Squared length of an offset of `o` voxels of width `w`.
    fn offset(o: isize, w: f64) -> Self;
    /// `self + c`, saturating for bytes.
    fn plus(self, c: Self) -> Self;
    /// The smaller of the two (a plain minimum: no distance is NaN).
    fn least(self, other: Self) -> Self;
}

/// Farther than any row is long: "no feature on this side".
const NONE: u32 = 1 << 30;

impl SqDist for f32 {
    fn of_steps(steps: u32, w: f32) -> f32 {
        if steps >= NONE {
            1e20
        } else {
            let m = steps as f32 * w;
            m * m
        }
    }
    fn offset(o: isize, w: f64) -> f32 {
        ((o as f64 * w).powi(2)) as f32
    }
    fn plus(self, c: f32) -> f32 {
        self + c
    }
    fn least(self, other: f32) -> f32 {
        // Not `if a < b`: LLVM makes that a masked store (slow on AMD); `min` is vminps.
        self.min(other)
    }
}

impl SqDist for u8 {
    fn of_steps(steps: u32, _w: f32) -> u8 {
        if steps > 15 { u8::MAX } else { (steps * steps) as u8 }
    }
    fn offset(o: isize, _w: f64) -> u8 {
        (o * o).min(255) as u8
    }
    fn plus(self, c: u8) -> u8 {
        self.saturating_add(c)
    }
    fn least(self, other: u8) -> u8 {
        Ord::min(self, other)
    }
}

/// `dst` (the values of `src` from `at` on) = the minimum over `offsets` (o, c) of the values
/// `o * step` further in `src`, plus c; values shifted outside `src` are skipped. With `step` a
/// row's length this shifts rows (the y pass), with a plane's, planes (the z pass). The hot loop
/// of the ball morphology: compiled for AVX2 too and picked at run time, since the build targets
/// baseline x86-64 (4 float lanes) and these loops run at the vector width.
fn min_of_shifted<D: SqDist>(dst: &mut [D], src: &[D], at: usize, step: usize, offsets: &[(isize, D)]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { min_of_shifted_avx2(dst, src, at, step, offsets) };
    }
    min_of_shifted_portable(dst, src, at, step, offsets)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn min_of_shifted_avx2<D: SqDist>(dst: &mut [D], src: &[D], at: usize, step: usize, offsets: &[(isize, D)]) {
    min_of_shifted_portable(dst, src, at, step, offsets)
}

#[inline(always)]
fn min_of_shifted_portable<D: SqDist>(dst: &mut [D], src: &[D], at: usize, step: usize, offsets: &[(isize, D)]) {
    let len = dst.len();
    // Tile by tile, so the tile of dst stays in the L1 cache while every offset passes over it.
    for a in (0..len).step_by(tile_len::<D>()) {
        let b = (a + tile_len::<D>()).min(len);
        dst[a..b].copy_from_slice(&src[at + a..at + b]);
        for &(o, c) in offsets {
            // dst[k] reads src[at + k + shift]: k in [from, to) keeps that inside src.
            let shift = at as isize + o * step as isize;
            let (from, to) = (a.max((-shift).max(0) as usize), b.min((src.len() as isize - shift).max(0) as usize));
            if o == 0 || from >= to {
                continue;
            }
            let s = (shift + from as isize) as usize;
            min_plus(&mut dst[from..to], &src[s..s + (to - from)], c);
        }
    }
}

/// Values per tile of the shifted minimums: 16 KiB, half an L1 data cache.
fn tile_len<D>() -> usize {
    (16 << 10) / std::mem::size_of::<D>().max(1)
}

/// `dst` = min(`dst`, `src` + c), element by element; written so it vectorizes.
#[inline(always)]
fn min_plus<D: SqDist>(dst: &mut [D], src: &[D], c: D) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = d.least(s.plus(c));
    }
}

/// First pass of the full transform: squared distance along x rows.
fn edt_x<D: SqDist>(feature: &ArrayView3<bool>, wx: f32) -> Array3<D> {
    let (_, ny, nx) = feature.dim();
    let mut d = crate::volume::zeroed::<D>(feature.dim());
    d.as_slice_mut().expect("owned").par_chunks_mut(ny * nx).zip(feature.axis_iter(Axis(0)).into_par_iter()).for_each(|(out, f)| {
        edt_x_plane(&f, wx, out, nx);
    });
    d
}

/// Squared distance along x of each row of one plane into `out` (the plane in C order; rows
/// `nx` long). A row is a few runs of feature: inside them 0, between them the distance to the
/// nearer end, the runs found by [`run_end`]'s block scans (no voxel-by-voxel chain).
fn edt_x_plane<D: SqDist>(feature: &ArrayView2<bool>, wx: f32, out: &mut [D], nx: usize) {
    for (out, f) in out.chunks_exact_mut(nx).zip(feature.outer_iter()) {
        let f = f.to_slice().expect("rows of owned arrays are contiguous");
        let mut x = 0;
        // Just past the previous run of feature, if any.
        let mut after: Option<usize> = None;
        loop {
            let start = run_end(f, x, false, &|v| v);
            let right = (start < nx).then_some(start);
            for (p, o) in (x..start).zip(&mut out[x..start]) {
                let left = after.map_or(NONE, |e| (p + 1 - e) as u32);
                *o = D::of_steps(left.min(right.map_or(NONE, |s| (s - p) as u32)), wx);
            }
            if start == nx {
                break;
            }
            let end = run_end(f, start, true, &|v| v);
            out[start..end].fill(D::of_steps(0, wx));
            after = Some(end);
            x = end;
        }
    }
}

/// Scratch space for one lane of the lower-envelope transform.
struct Envelope {
    f: Vec<f32>,
    out: Vec<f32>,
    v: Vec<usize>,
    z: Vec<f32>,
}

impl Envelope {
    fn new(n: usize) -> Self {
        Envelope { f: vec![0.0; n], out: vec![0.0; n], v: vec![0; n], z: vec![0.0; n + 1] }
    }

    fn run(&mut self, w2: f32) {
        let (f, out, v, z) = (&self.f, &mut self.out, &mut self.v, &mut self.z);
        let n = f.len();
        let inf = 1e20f32;
        let Some(first) = f.iter().position(|&x| x < inf) else {
            out.iter_mut().for_each(|o| *o = inf);
            return;
        };
        let mut k = 0usize;
        v[0] = first;
        z[0] = f32::NEG_INFINITY;
        z[1] = f32::INFINITY;
        for q in first + 1..n {
            if f[q] >= inf {
                continue;
            }
            loop {
                let p = v[k];
                let s = ((f[q] + w2 * (q * q) as f32) - (f[p] + w2 * (p * p) as f32)) / (2.0 * w2 * (q as f32 - p as f32));
                if s <= z[k] && k > 0 {
                    k -= 1;
                    continue;
                }
                if s <= z[k] {
                    v[0] = q;
                    z[0] = f32::NEG_INFINITY;
                    z[1] = f32::INFINITY;
                    break;
                }
                k += 1;
                v[k] = q;
                z[k] = s;
                z[k + 1] = f32::INFINITY;
                break;
            }
        }
        k = 0;
        for (q, o) in out.iter_mut().enumerate() {
            while z[k + 1] < q as f32 {
                k += 1;
            }
            let p = v[k];
            let dq = q as f32 - p as f32;
            *o = w2 * dq * dq + f[p];
        }
    }
}

/// A box of half-open (z, y, x) index ranges, as [`bbox`] and [`grow_box`] give it.
pub type Box3 = [(usize, usize); 3];

/// The slice of an array that a box covers.
pub fn in_box(b: Box3) -> ndarray::SliceInfo<[ndarray::SliceInfoElem; 3], ndarray::Ix3, ndarray::Ix3> {
    ndarray::s![b[0].0..b[0].1, b[1].0..b[1].1, b[2].0..b[2].1]
}

/// The sub-box holding the mask's voxels, grown by `margin` voxels per axis (clamped).
pub fn bbox(mask: &Array3<u8>, margin: [usize; 3]) -> Option<Box3> {
    if !mask.is_standard_layout() {
        return bbox(&mask.as_standard_layout().to_owned(), margin);
    }
    let (nz, ny, nx) = mask.dim();
    // Per slice, in parallel: rows are scanned as slices (first and last non-zero), not voxel by voxel.
    let per_slice: Vec<Option<[usize; 4]>> = mask
        .outer_iter()
        .into_par_iter()
        .map(|plane| {
            let mut b: Option<[usize; 4]> = None; // y0, y1, x0, x1 (inclusive)
            for (y, row) in plane.outer_iter().enumerate() {
                let row = row.to_slice().expect("standard layout");
                let Some(x0) = row.iter().position(|&v| v != 0) else { continue };
                let x1 = row.iter().rposition(|&v| v != 0).unwrap_or(x0);
                b = Some(match b {
                    None => [y, y, x0, x1],
                    Some([y0, _, a0, a1]) => [y0, y, a0.min(x0), a1.max(x1)],
                });
            }
            b
        })
        .collect();
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for (z, b) in per_slice.iter().enumerate() {
        if let Some([y0, y1, x0, x1]) = *b {
            lo = [lo[0].min(z), lo[1].min(y0), lo[2].min(x0)];
            hi = [hi[0].max(z), hi[1].max(y1), hi[2].max(x1)];
        }
    }
    if lo[0] == usize::MAX {
        return None;
    }
    Some(grow_box(lo, hi, margin, [nz, ny, nx]))
}

/// Half-open (z, y, x) ranges of the inclusive box `lo_zyx..=hi_zyx` grown by `margin_xyz`
/// voxels, clamped to `dims_zyx`.
pub fn grow_box(lo_zyx: [usize; 3], hi_zyx: [usize; 3], margin_xyz: [usize; 3], dims_zyx: [usize; 3]) -> Box3 {
    let m = crate::geometry::zyx_from_xyz(margin_xyz);
    std::array::from_fn(|a| (lo_zyx[a].saturating_sub(m[a]), (hi_zyx[a] + m[a] + 1).min(dims_zyx[a])))
}

/// What one pass over a label volume learns about a label.
#[derive(Debug, Clone, Copy)]
pub struct LabelBox {
    pub count: u64,
    /// Sum of the voxels' (x, y, z) indices: the centroid times `count`.
    pub index_sum_xyz: [f64; 3],
    /// Inclusive bounds, array order.
    pub lo_zyx: [usize; 3],
    pub hi_zyx: [usize; 3],
}

/// Count, index sum and bounds of each label in `ids` (non-zero), in one parallel pass.
pub fn label_boxes<L: Copy + Sync + Into<u64>>(labels: &ArrayView3<L>, ids: &[u32]) -> Vec<LabelBox> {
    let empty = LabelBox { count: 0, index_sum_xyz: [0.0; 3], lo_zyx: [usize::MAX; 3], hi_zyx: [0; 3] };
    let top = ids.iter().copied().max().unwrap_or(0) as usize;
    let mut slot = vec![usize::MAX; top + 1];
    for (i, &id) in ids.iter().enumerate() {
        slot[id as usize] = i;
    }
    let merge = |mut a: Vec<LabelBox>, b: Vec<LabelBox>| {
        for (x, y) in a.iter_mut().zip(b) {
            x.count += y.count;
            for k in 0..3 {
                x.index_sum_xyz[k] += y.index_sum_xyz[k];
                x.lo_zyx[k] = x.lo_zyx[k].min(y.lo_zyx[k]);
                x.hi_zyx[k] = x.hi_zyx[k].max(y.hi_zyx[k]);
            }
        }
        a
    };
    labels
        .outer_iter()
        .into_par_iter()
        .enumerate()
        .map(|(z, plane)| {
            let mut out = vec![empty; ids.len()];
            for (y, row) in plane.outer_iter().enumerate() {
                // Rows are contiguous in the views lung-seg passes (boxes inside padded grids).
                let row = row.as_standard_layout();
                let row = row.as_slice().expect("standard layout");
                // Run by run: labels come in long runs along x, the background in longer ones.
                let mut x = 0;
                while x < row.len() {
                    let x0 = run_end(row, x, false, &|v: L| v.into() != 0);
                    let Some(&first) = row.get(x0) else { break };
                    x = run_end(row, x0, true, &|v: L| v.into() == first.into());
                    let Some(&i) = slot.get(first.into() as usize).filter(|&&i| i != usize::MAX) else { continue };
                    let (b, len) = (&mut out[i], (x - x0) as u64);
                    b.count += len;
                    // x0 + ... + (x - 1)
                    b.index_sum_xyz[0] += (x0 + x - 1) as f64 * len as f64 / 2.0;
                    b.index_sum_xyz[1] += (y as u64 * len) as f64;
                    b.index_sum_xyz[2] += (z as u64 * len) as f64;
                    for (k, (lo, hi)) in [(z, z), (y, y), (x0, x - 1)].into_iter().enumerate() {
                        b.lo_zyx[k] = b.lo_zyx[k].min(lo);
                        b.hi_zyx[k] = b.hi_zyx[k].max(hi);
                    }
                }
            }
            out
        })
        .reduce(|| vec![empty; ids.len()], merge)
}

/// 0/1 (bytes, or bools where the result feeds another transform): where the squared distance
/// to `feature` is at most `r`^2 (`near`), or above it (not `near`). Small balls are streamed
/// along z (a plane depends only on the planes within r), so the distances never exist for the
/// whole volume at once; large ones take the full transform.
fn ball_mask<O: Flag>(feature: &Array3<bool>, spacing: [f64; 3], r: f64, near: bool) -> Array3<O> {
    ball_mask_in(feature, spacing, r, near, WINDOW_BYTES)
}

/// The streamed ball's window of x-y distances: a few megabytes, which the z pass reads many
/// times over (each plane is read by the 2 r + 1 output planes within its reach).
pub(crate) const WINDOW_BYTES: usize = 4 << 20;

/// What a ball mask is made of: u8 0/1 or bool.
trait Flag: From<bool> + Copy + Default + Send + Sync {}
impl<T: From<bool> + Copy + Default + Send + Sync> Flag for T {}

/// [`ball_mask`] with its window of distances held to `budget` bytes where the ball allows.
fn ball_mask_in<O: Flag>(feature: &Array3<bool>, spacing: [f64; 3], r: f64, near: bool, budget: usize) -> Array3<O> {
    let mut out = crate::volume::zeroed::<O>(feature.dim());
    ball_into(feature, spacing, r, budget, &mut out.view_mut(), |o, inside| *o = O::from(inside == near));
    out
}

/// `apply(voxel of out, whether it is within r of feature)` for every voxel of `out` (the
/// feature's shape), with the window of distances held to `budget` bytes where the ball allows.
pub(crate) fn ball_into<T: Send + Sync>(
    feature: &Array3<bool>,
    spacing: [f64; 3],
    r: f64,
    budget: usize,
    out: &mut ArrayViewMut3<T>,
    apply: impl Fn(&mut T, bool) + Sync,
) {
    let r2 = (r * r) as f32 * (1.0 + 1e-6);
    if r / spacing[1].min(spacing[2]) > 24.0 {
        return Zip::from(out).and(&edt_squared(feature, spacing)).par_for_each(|o, &d| apply(o, d <= r2));
    }
    // Isotropic grids (lung-seg's 1 mm volume, its 2 mm block grid): whole voxel units in bytes.
    let units2 = (r / spacing[0]).powi(2) * (1.0 + 1e-6);
    if spacing[0] == spacing[1] && spacing[1] == spacing[2] && units2 < 255.0 {
        let t = units2.floor() as u8;
        return ball_slabs::<u8, T>(feature, spacing, r, budget, out, |o, d| apply(o, d <= t));
    }
    ball_slabs::<f32, T>(feature, spacing, r, budget, out, |o, d| apply(o, d <= r2))
}

/// [`ball_into`] streamed along z: a plane's distances within the ball depend only on the x
/// and y distances of the planes within r of it, so those are made a slab of planes at a time
/// into a window that keeps the previous slab's last 2 r planes, and each output plane is the
/// minimum of the window's planes within reach. No volume-sized distance array: the window
/// (`budget` bytes, or the ball's reach and 8 planes if more) is what the passes read, and
/// nothing is computed twice.
fn ball_slabs<D: SqDist, T: Send + Sync>(
    feature: &Array3<bool>,
    spacing: [f64; 3],
    r: f64,
    budget: usize,
    out: &mut ArrayViewMut3<T>,
    apply: impl Fn(&mut T, D) + Sync,
) {
    let (nz, ny, nx) = feature.dim();
    let plane = ny * nx;
    if plane == 0 {
        return;
    }
    let reach = |w: f64, n: usize| ((r / w).floor() as usize).min(n.saturating_sub(1));
    let (ry, rz) = (reach(spacing[1], ny), reach(spacing[2], nz));
    let offsets =
        |reach: usize, w: f64| -> Vec<(isize, D)> { (-(reach as isize)..=reach as isize).map(|o| (o, D::offset(o, w))).collect() };
    let (oy, oz) = (offsets(ry, spacing[1]), offsets(rz, spacing[2]));
    let wx = spacing[0] as f32;
    // A slab at least as thick as the kept overlap: copying it costs less than making it.
    let slab = (budget / (plane * std::mem::size_of::<D>())).saturating_sub(2 * rz).max(2 * rz).max(8);
    let mut window = vec![D::default(); (slab + 2 * rz).min(nz) * plane];
    // The window holds the x-y distances of planes [held.0, held.1).
    let mut held: (usize, usize) = (0, 0);
    for z0 in (0..nz).step_by(slab) {
        let z1 = (z0 + slab).min(nz);
        let (lo, hi) = (z0.saturating_sub(rz), (z1 + rz).min(nz));
        let kept = held.1.saturating_sub(lo);
        if kept > 0 {
            window.copy_within((lo - held.0) * plane..(held.1 - held.0) * plane, 0);
        }
        window[kept * plane..(hi - lo) * plane].par_chunks_mut(plane).enumerate().for_each_init(
            || vec![D::default(); plane],
            |rows, (k, dst)| {
                edt_x_plane(&feature.index_axis(Axis(0), lo + kept + k), wx, rows, nx);
                min_of_shifted(dst, rows, 0, nx, &oy);
            },
        );
        held = (lo, hi);
        let window = &window[..(hi - lo) * plane];
        out.slice_mut(ndarray::s![z0..z1, .., ..]).axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each_init(
            || vec![D::default(); plane],
            |d, (k, mut o)| {
                min_of_shifted(d, window, (z0 + k - lo) * plane, plane, &oz);
                let d = ArrayView2::from_shape((ny, nx), &d[..]).expect("one plane");
                Zip::from(&mut o).and(&d).for_each(|o, &d| apply(o, d));
            },
        );
    }
}

/// Voxels per axis (x, y, z) a ball of `r` mm reaches, and one more.
pub(crate) fn margin_vox(r: f64, spacing: [f64; 3]) -> [usize; 3] {
    std::array::from_fn(|a| (r / spacing[a]).ceil() as usize + 1)
}

/// Dilation by a ball of radius `r` mm (voxel offsets with physical length <= r).
pub fn dilate_mm(mask: &Array3<u8>, r: f64, spacing: [f64; 3]) -> Array3<u8> {
    let Some(b) = bbox(mask, margin_vox(r, spacing)) else { return mask.clone() };
    let feature = Zip::from(mask.slice(in_box(b))).par_map_collect(|&v| v != 0);
    // Outside the box the mask is empty: zeros, whose pages stay untouched there. Inside, the
    // ball is written straight into place (no box-sized copy).
    let mut out = Array3::<u8>::zeros(mask.raw_dim());
    ball_into(&feature, spacing, r, WINDOW_BYTES, &mut out.slice_mut(in_box(b)), |o, near| *o = u8::from(near));
    out
}

/// Erosion by a ball of radius `r` mm (outside the volume counts as background).
pub fn erode_mm(mask: &Array3<u8>, r: f64, spacing: [f64; 3]) -> Array3<u8> {
    let Some(b) = bbox(mask, [1, 1, 1]) else { return mask.clone() };
    let sub = mask.slice(in_box(b));
    // Pad by one voxel of background so the border erodes.
    let (sz, sy, sx) = sub.dim();
    let mut bg = Array3::<bool>::from_elem((sz + 2, sy + 2, sx + 2), true);
    bg.slice_mut(ndarray::s![1..sz + 1, 1..sy + 1, 1..sx + 1]).zip_mut_with(&sub, |o, &v| *o = v == 0);
    let far: Array3<u8> = ball_mask(&bg, spacing, r, false);
    drop(bg);
    let mut out = Array3::<u8>::zeros(mask.raw_dim());
    out.slice_mut(in_box(b)).assign(&far.slice(ndarray::s![1..sz + 1, 1..sy + 1, 1..sx + 1]));
    out
}

/// Closing (dilate then erode) by a ball of `r` mm; the volume is padded so nothing is lost at the border.
pub fn close_mm(mask: &Array3<u8>, r: f64, spacing: [f64; 3]) -> Array3<u8> {
    let m = margin_vox(r, spacing);
    let (nz, ny, nx) = mask.dim();
    let inner = ndarray::s![m[2]..m[2] + nz, m[1]..m[1] + ny, m[0]..m[0] + nx];
    // The padding is a voxel wider than the dilation reaches, so the dilated mask has background
    // all around it, nearer to every voxel than any background beyond the box: the erosion
    // needs no box of its own.
    let mut feature = Array3::<bool>::from_elem((nz + 2 * m[2], ny + 2 * m[1], nx + 2 * m[0]), false);
    Zip::from(feature.slice_mut(inner)).and(mask).par_for_each(|f, &v| *f = v != 0);
    let beyond: Array3<bool> = ball_mask(&feature, spacing, r, false);
    drop(feature);
    let closed: Array3<u8> = ball_mask(&beyond, spacing, r, false);
    closed.slice(inner).to_owned()
}

/// Voxels per block of a grid of about 2 mm: per axis (x, y, z) the spacing's nearest multiple
/// of 2 mm, at least one voxel. The coarse grid is where lung-seg's wide morphology runs.
pub fn coarse_factors(spacing: [f64; 3]) -> [usize; 3] {
    spacing.map(|s| ((2.0 / s).round() as usize).max(1))
}

/// One voxel per block of `factors` (x, y, z) voxels, set where every voxel of the block is set
/// (blocks cut short by the volume's end never are).
pub fn coarsen(mask: &ArrayView3<u8>, factors: [usize; 3]) -> Array3<u8> {
    let [fx, fy, fz] = factors;
    let (nz, ny, nx) = mask.dim();
    let (cz, cy, cx) = (nz.div_ceil(fz), ny.div_ceil(fy), nx.div_ceil(fx));
    let full = (fx * fy * fz) as u32;
    let mut out = Array3::<u8>::zeros((cz, cy, cx));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(c, mut plane)| {
        // Per block row: count set voxels per column over the block's rows (whole rows added
        // at once, which vectorizes), then sum the columns of each block.
        let mut columns = ndarray::Array1::<u16>::zeros(nx);
        for (b, mut out_row) in plane.outer_iter_mut().enumerate() {
            columns.fill(0);
            for z in c * fz..((c + 1) * fz).min(nz) {
                for y in b * fy..((b + 1) * fy).min(ny) {
                    let row = mask.slice(ndarray::s![z, y, ..]);
                    Zip::from(&mut columns).and(&row).for_each(|n, &v| *n += u16::from(v != 0));
                }
            }
            for (o, block) in out_row.iter_mut().zip(columns.as_slice().expect("owned").chunks(fx)) {
                *o = u8::from(block.iter().map(|&n| u32::from(n)).sum::<u32>() == full);
            }
        }
    });
    out
}

/// Call `f` with the flat index of each of the (up to six) face neighbours of flat index `i` in a
/// C-order `[z, y, x]` grid of `dims`.
#[inline]
pub fn face_neighbours(i: usize, (nz, ny, nx): (usize, usize, usize), mut f: impl FnMut(usize)) {
    let plane = ny * nx;
    // Two divisions, not three (this runs once per voxel of every growth).
    let z = i / plane;
    let row = i - z * plane;
    let y = row / nx;
    let x = row - y * nx;
    if x > 0 {
        f(i - 1)
    }
    if x + 1 < nx {
        f(i + 1)
    }
    if y > 0 {
        f(i - nx)
    }
    if y + 1 < ny {
        f(i + nx)
    }
    if z > 0 {
        f(i - plane)
    }
    if z + 1 < nz {
        f(i + plane)
    }
}

/// Erosion by the 6-neighbourhood (a 1-voxel cross), border counts as background.
pub fn erode_cross(mask: &Array3<u8>) -> Array3<u8> {
    let (nz, ny, nx) = mask.dim();
    let mut out = Array3::<u8>::zeros(mask.raw_dim());
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(z, mut s)| {
        if z == 0 || z == nz - 1 {
            return;
        }
        for y in 1..ny.saturating_sub(1) {
            for x in 1..nx.saturating_sub(1) {
                s[[y, x]] = u8::from(
                    mask[[z, y, x]] != 0
                        && mask[[z - 1, y, x]] != 0
                        && mask[[z + 1, y, x]] != 0
                        && mask[[z, y - 1, x]] != 0
                        && mask[[z, y + 1, x]] != 0
                        && mask[[z, y, x - 1]] != 0
                        && mask[[z, y, x + 1]] != 0,
                );
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arr(z: usize, y: usize, x: usize, on: &[(usize, usize, usize)]) -> Array3<u8> {
        let mut a = Array3::zeros((z, y, x));
        for &p in on {
            a[p] = 1;
        }
        a
    }

    #[test]
    fn coarsen_counts_whole_blocks() {
        // 3 x 4 x 5 voxels in blocks of (x, y, z) = (2, 2, 2): coarse 2 x 2 x 3, the last x and z
        // blocks cut short by the volume's end.
        let mut a = Array3::<u8>::zeros((3, 4, 5));
        a.slice_mut(ndarray::s![0..2, 0..2, 0..2]).fill(1); // one whole block
        a[[0, 2, 2]] = 1; // one voxel of another
        a.slice_mut(ndarray::s![.., .., 4]).fill(1); // the cut x blocks, full as far as they go
        let c = coarsen(&a.view(), [2, 2, 2]);
        assert_eq!(c.dim(), (2, 2, 3));
        assert_eq!(c.iter().filter(|&&v| v != 0).count(), 1);
        assert_eq!(c[[0, 0, 0]], 1);
        assert_eq!(c[[0, 1, 1]], 0, "one voxel of eight");
        assert_eq!(c[[0, 0, 2]], 0, "a block cut short is never whole");
    }

    #[test]
    fn connectivities_differ_on_diagonals() {
        // Oracle (scipy 1.17.1, ndimage.label with generate_binary_structure(3, 1/2/3)):
        // a -> 3, 1, 1 components; b -> 2, 2, 1.
        let a = arr(2, 2, 2, &[(0, 0, 0), (0, 1, 1), (1, 1, 0)]);
        assert_eq!(label(&a.view(), Connectivity::Six).1, 3);
        assert_eq!(label(&a.view(), Connectivity::Eighteen).1, 1);
        let b = arr(2, 2, 2, &[(0, 0, 0), (1, 1, 1)]);
        assert_eq!(label(&b.view(), Connectivity::Eighteen).1, 2);
        assert_eq!(label(&b.view(), Connectivity::TwentySix).1, 1);
    }

    #[test]
    fn labels_are_numbered_in_raster_order() {
        let a = arr(1, 3, 5, &[(0, 0, 4), (0, 2, 0), (0, 2, 1)]);
        let (l, n) = label(&a.view(), Connectivity::TwentySix);
        assert_eq!(n, 2);
        assert_eq!(l[[0, 0, 4]], 1);
        assert_eq!(l[[0, 2, 0]], 2);
    }

    #[test]
    fn u_shape_merges_late() {
        // Two arms joined at the bottom row: one component, even though the arms start apart.
        let mut a = Array3::<u8>::zeros((1, 4, 5));
        for y in 0..4 {
            a[[0, y, 0]] = 1;
            a[[0, y, 4]] = 1;
        }
        for x in 0..5 {
            a[[0, 3, x]] = 1;
        }
        assert_eq!(label(&a.view(), Connectivity::Six).1, 1);
    }

    #[test]
    fn holes_fill_in_2d_and_3d() {
        let mut a = Array3::<u8>::zeros((5, 5, 5));
        for z in 1..4 {
            for y in 1..4 {
                for x in 1..4 {
                    a[[z, y, x]] = 1;
                }
            }
        }
        a[[2, 2, 2]] = 0;
        let filled = |a: &Array3<u8>, three_d: bool| {
            let mut f = a.clone();
            if three_d {
                fill_holes_3d(&mut f)
            } else {
                fill_holes_2d(&mut f, usize::MAX)
            }
            f
        };
        assert_eq!(filled(&a, true)[[2, 2, 2]], 1);
        assert_eq!(filled(&a, false)[[2, 2, 2]], 1);
        // Open to the top in 3-D via a channel, but enclosed in its slice: 2-D fills, 3-D does not.
        a[[1, 2, 2]] = 0;
        a[[0, 2, 2]] = 0;
        assert_eq!(filled(&a, true)[[2, 2, 2]], 0);
        assert_eq!(filled(&a, false)[[2, 2, 2]], 1);
    }

    #[test]
    fn ball_dilation_counts_match_the_discrete_ball() {
        let mut a = Array3::<u8>::zeros((11, 11, 11));
        a[[5, 5, 5]] = 1;
        // Offsets with |o| <= 2: 33 voxels (isotropic 1 mm); scipy: ball of radius 2 via distance <= 2.
        assert_eq!(dilate_mm(&a, 2.0, [1.0; 3]).iter().filter(|&&v| v == 1).count(), 33);
        // Anisotropic: 2 mm in z with 2 mm slices reaches one slice up and down.
        let d = dilate_mm(&a, 2.0, [1.0, 1.0, 2.0]);
        assert_eq!(d[[6, 5, 5]], 1);
        assert_eq!(d[[7, 5, 5]], 0);
        assert_eq!(d[[5, 5, 7]], 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn erosion_subset_mask_subset_dilation(bits in proptest::collection::vec(0u8..2, 6 * 7 * 8), r in 0.5f64..2.5) {
            let a = Array3::from_shape_vec((6, 7, 8), bits).unwrap();
            let e = erode_mm(&a, r, [1.0, 1.2, 1.5]);
            let d = dilate_mm(&a, r, [1.0, 1.2, 1.5]);
            for ((&ev, &av), &dv) in e.iter().zip(a.iter()).zip(d.iter()) {
                prop_assert!(ev <= av && av <= dv);
            }
            let c = close_mm(&a, r, [1.0, 1.2, 1.5]);
            for (&cv, &av) in c.iter().zip(a.iter()) { prop_assert!(cv >= av); }
        }

        #[test]
        fn runs_crop_count_and_centre_like_the_mask_itself(bits in proptest::collection::vec(0u8..3, 5 * 6 * 70), b in prop::array::uniform3((0usize..4, 1usize..70))) {
            let mask = Array3::from_shape_vec((5, 6, 70), bits).unwrap().mapv(|v| u8::from(v != 0));
            let runs = Runs::new(&mask.view(), |v| v != 0);
            prop_assert_eq!(runs.count(), count_nonzero(&mask));
            let (z, y, x) = ((b[0].0.min(4), b[0].0.min(4) + 1), (b[1].0, b[1].0 + b[1].1 % 3 + 1), (b[2].0, b[2].0 + b[2].1 % 60));
            prop_assert_eq!(runs.crop([z, y, x]), mask.slice(ndarray::s![z.0..z.1, y.0..y.1, x.0..x.1]).to_owned());
            for (z, mean) in runs.mean_x_per_slice().into_iter().enumerate() {
                let xs: Vec<f64> = mask.index_axis(Axis(0), z).indexed_iter().filter(|(_, v)| **v != 0).map(|((_, x), _)| x as f64).collect();
                prop_assert_eq!(mean, (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64));
            }
        }

        #[test]
        fn filling_holes_of_one_flag_leaves_the_others(bits in proptest::collection::vec(0u8..8, 4 * 9 * 10)) {
            // Bit 2 is the mask; bits 0 and 1 ride along.
            let flags = Array3::from_shape_vec((4, 9, 10), bits).unwrap();
            let mut want = flags.mapv(|v| u8::from(v & 4 != 0));
            fill_holes_2d(&mut want, 6);
            let mut got = flags.clone();
            fill_holes_2d_by(&mut got, 6, |v| v & 4 != 0, |v| *v |= 4);
            prop_assert_eq!(got.mapv(|v| u8::from(v & 4 != 0)), want);
            prop_assert_eq!(got.mapv(|v| v & 3), flags.mapv(|v| v & 3));
        }

        /// lung-seg dilates its labels (1, 2) directly: the result is the dilation of the 0/1 mask.
        #[test]
        fn dilation_of_labels_is_the_dilation_of_their_mask(vals in proptest::collection::vec(0u8..8, 6 * 7 * 8), r in 0.5f64..2.5) {
            let labels = Array3::from_shape_vec((6, 7, 8), vals).unwrap().mapv(|v| v.saturating_sub(5));
            let mask = labels.mapv(|v| u8::from(v != 0));
            prop_assert_eq!(dilate_mm(&labels, r, [1.0, 1.2, 1.5]), dilate_mm(&mask, r, [1.0, 1.2, 1.5]));
        }

        #[test]
        fn label_boxes_count_and_bound_each_asked_label(bits in proptest::collection::vec(0u16..40, 4 * 5 * 70)) {
            // Rows of 70 voxels cross the 32-voxel background skips; labels 1..3 are asked,
            // 20 and 40 are not.
            let a = Array3::from_shape_vec((4, 5, 70), bits).unwrap().mapv(|v| if v < 4 { v } else if v < 8 { 0 } else { v % 3 * 20 });
            let boxes = label_boxes(&a.view(), &[1, 2, 3]);
            for (b, id) in boxes.iter().zip(1u16..) {
                let at: Vec<_> = a.indexed_iter().filter(|&(_, &v)| v == id).map(|(i, _)| i).collect();
                prop_assert_eq!(b.count, at.len() as u64);
                let sum_x: f64 = at.iter().map(|&(_, _, x)| x as f64).sum();
                prop_assert_eq!(b.index_sum_xyz[0], sum_x);
                if let (Some(lo_z), Some(hi_x)) = (at.iter().map(|i| i.0).min(), at.iter().map(|i| i.2).max()) {
                    prop_assert_eq!(b.lo_zyx[0], lo_z);
                    prop_assert_eq!(b.hi_zyx[2], hi_x);
                }
            }
        }

        #[test]
        fn coarse_voxels_are_the_blocks_wholly_set(bits in proptest::collection::vec(0u8..5, 7 * 8 * 9), f in prop::array::uniform3(1usize..4)) {
            // Mostly set, so whole blocks occur; unequal factors (x, y, z); blocks cut by the end.
            let a = Array3::from_shape_vec((7, 8, 9), bits).unwrap().mapv(|v| u8::from(v != 0));
            let c = coarsen(&a.view(), f);
            prop_assert_eq!(c.dim(), (7usize.div_ceil(f[2]), 8usize.div_ceil(f[1]), 9usize.div_ceil(f[0])));
            for ((z, y, x), &v) in c.indexed_iter() {
                let (z0, y0, x0) = (z * f[2], y * f[1], x * f[0]);
                let inside = z0 + f[2] <= 7 && y0 + f[1] <= 8 && x0 + f[0] <= 9;
                let whole = inside && a.slice(ndarray::s![z0..z0 + f[2], y0..y0 + f[1], x0..x0 + f[0]]).iter().all(|&b| b != 0);
                prop_assert_eq!(v, u8::from(whole));
            }
        }

        #[test]
        fn closing_is_the_erosion_of_the_dilation_on_an_unbounded_grid(bits in proptest::collection::vec(0u8..6, 6 * 7 * 8), r in 0.5f64..2.5) {
            // The definition, on a grid padded far beyond the ball's reach. Sparse masks, so
            // the closing neither fills the grid nor leaves it alone.
            let a = Array3::from_shape_vec((6, 7, 8), bits).unwrap().mapv(|v| u8::from(v == 0));
            let sp = [1.0, 1.2, 1.5];
            let mut padded = Array3::<u8>::zeros((6 + 10, 7 + 10, 8 + 10));
            padded.slice_mut(ndarray::s![5..11, 5..12, 5..13]).assign(&a);
            let reference = erode_mm(&dilate_mm(&padded, r, sp), r, sp);
            prop_assert_eq!(close_mm(&a, r, sp), reference.slice(ndarray::s![5..11, 5..12, 5..13]).to_owned());
        }

        #[test]
        fn closing_stays_inside_the_masks_bounding_box(bits in proptest::collection::vec(0u8..3, 6 * 7 * 8), r in 0.5f64..3.5) {
            // lung-seg closes each lung in its own bounding box on this ground. The mask lies in
            // a window of the grid, so there is room beyond its box for a closing to leak into.
            let window = |z: usize, y: usize, x: usize| (1..5).contains(&z) && (2..5).contains(&y) && (2..6).contains(&x);
            let a = Array3::from_shape_vec((6, 7, 8), bits).unwrap();
            let a = Array3::from_shape_fn((6, 7, 8), |(z, y, x)| u8::from(window(z, y, x) && a[[z, y, x]] == 0));
            let closed = close_mm(&a, r, [1.0, 1.2, 1.5]);
            let inside = |m: &Array3<u8>| bbox(m, [0; 3]);
            if let (Some(outer), Some(inner)) = (inside(&a), inside(&closed)) {
                prop_assert!((0..3).all(|k| outer[k].0 <= inner[k].0 && inner[k].1 <= outer[k].1), "{:?} within {:?}", inner, outer);
            }
        }

        #[test]
        fn run_components_agree_with_the_painted_labels(bits in proptest::collection::vec(0u8..2, 5 * 6 * 7)) {
            let a = Array3::from_shape_vec((5, 6, 7), bits).unwrap();
            for conn in [Connectivity::Six, Connectivity::TwentySix] {
                let c = Components::new(&a.view(), conn, |v| v != 0);
                let (l, n) = label(&a.view(), conn);
                prop_assert_eq!(c.n, n);
                let mut painted = vec![0u64; n + 1];
                l.iter().for_each(|&v| painted[v as usize] += 1);
                prop_assert_eq!(&c.sizes()[1..], &painted[1..]);
                let mut border = vec![false; n + 1];
                for ((z, y, x), &v) in l.indexed_iter() {
                    if v != 0 && (z == 0 || y == 0 || x == 0 || z == 4 || y == 5 || x == 6) {
                        border[v as usize] = true;
                    }
                }
                prop_assert_eq!(c.on_border(true), border);
                for ((z, y, x), &v) in l.indexed_iter() {
                    prop_assert_eq!(c.label_at(z, y, x), (v != 0).then_some(v));
                }
            }
        }

        #[test]
        fn runs_are_each_rows_maximal_stretches(lens in proptest::collection::vec(1usize..80, 1..40), first in proptest::bool::ANY) {
            // Long runs on rows longer than the 32-voxel blocks the scan tests at once.
            let (nz, ny, nx) = (2, 3, 150);
            let mut bits = Vec::with_capacity(nz * ny * nx);
            let mut on = first;
            for len in lens.iter().cycle() {
                if bits.len() == nz * ny * nx {
                    break;
                }
                bits.extend(std::iter::repeat_n(u8::from(on) * 7, (*len).min(nz * ny * nx - bits.len())));
                on = !on;
            }
            let a = Array3::from_shape_vec((nz, ny, nx), bits).unwrap();
            let c = Components::new(&a.view(), Connectivity::Six, |v| v == 7);
            for z in 0..nz {
                for y in 0..ny {
                    let row = a.slice(ndarray::s![z, y, ..]);
                    let mut want = Vec::new();
                    let mut x = 0;
                    while x < nx {
                        if row[x] == 7 {
                            let x0 = x;
                            while x < nx && row[x] == 7 {
                                x += 1;
                            }
                            want.push((x0 as u32, x as u32));
                        } else {
                            x += 1;
                        }
                    }
                    let got: Vec<(u32, u32)> = c.row(z, y).0.iter().map(|r| (r.x0, r.x1)).collect();
                    prop_assert_eq!(got, want, "row {} {}", z, y);
                }
            }
        }

        #[test]
        fn component_count_is_invariant_under_flips(bits in proptest::collection::vec(0u8..2, 5 * 6 * 7)) {
            let a = Array3::from_shape_vec((5, 6, 7), bits).unwrap();
            for conn in [Connectivity::Six, Connectivity::Eighteen, Connectivity::TwentySix] {
                let n = label(&a.view(), conn).1;
                let mut f = a.clone();
                f.invert_axis(Axis(2));
                f.invert_axis(Axis(0));
                prop_assert_eq!(label(&f.view(), conn).1, n);
                let t = a.view().permuted_axes([2, 1, 0]).as_standard_layout().to_owned();
                prop_assert_eq!(label(&t.view(), conn).1, n);
            }
        }

        #[test]
        fn edt_matches_brute_force(bits in proptest::collection::vec(0u8..8, 4 * 5 * 6)) {
            let f = Array3::from_shape_vec((4, 5, 6), bits).unwrap().mapv(|v| v == 0);
            prop_assume!(f.iter().any(|&v| v));
            let sp = [0.7, 1.1, 2.0];
            let d = edt_squared(&f, sp);
            for ((z, y, x), &v) in d.indexed_iter() {
                let mut best = f64::INFINITY;
                for ((zz, yy, xx), &on) in f.indexed_iter() {
                    if on {
                        let dd = ((x as f64 - xx as f64) * sp[0]).powi(2) + ((y as f64 - yy as f64) * sp[1]).powi(2) + ((z as f64 - zz as f64) * sp[2]).powi(2);
                        best = best.min(dd);
                    }
                }
                prop_assert!((v as f64 - best).abs() < 1e-3 * best.max(1.0));
            }
        }

        #[test]
        fn x_distances_are_those_to_the_nearest_feature_in_the_row(rows in proptest::collection::vec(prop::bool::weighted(0.08), 3 * 37), w in 0.5f32..2.0) {
            // Rows of 37: words of eight and a tail, runs across their seams, rows with no feature.
            let f = Array2::from_shape_vec((3, 37), rows).unwrap();
            let (mut floats, mut bytes) = (vec![0f32; 3 * 37], vec![0u8; 3 * 37]);
            edt_x_plane(&f.view(), w, &mut floats, 37);
            edt_x_plane(&f.view(), 1.0, &mut bytes, 37);
            for ((y, x), _) in f.indexed_iter() {
                let steps = (0..37).filter(|&xx| f[[y, xx]]).map(|xx| x.abs_diff(xx) as u32).min().unwrap_or(NONE);
                prop_assert_eq!(floats[y * 37 + x], f32::of_steps(steps, w));
                prop_assert_eq!(bytes[y * 37 + x], u8::of_steps(steps, 1.0));
            }
        }

        #[test]
        fn ball_mask_slab_by_slab_equals_the_whole_transform(bits in proptest::collection::vec(0u8..6, 80 * 5 * 6), r in 0.6f64..3.5) {
            // 80 slices: with no budget, several z slabs (8 slices or the ball's diameter each), so
            // the window's seams are crossed; with one, the whole volume at once.
            let f = Array3::from_shape_vec((80, 5, 6), bits).unwrap().mapv(|v| v == 0);
            let sp = [0.9, 1.0, 0.8];
            let full = edt_squared(&f, sp);
            let r2 = (r * r) as f32 * (1.0 + 1e-6);
            for (near, budget) in [(true, 0), (false, 0), (true, WINDOW_BYTES)] {
                let m: Array3<u8> = ball_mask_in(&f, sp, r, near, budget);
                for (&d, &v) in full.iter().zip(m.iter()) {
                    prop_assert_eq!(v, u8::from((d <= r2) == near));
                }
            }
        }

        #[test]
        fn byte_distances_on_isotropic_grids_equal_the_float_transform(bits in proptest::collection::vec(0u8..6, 70 * 9 * 11), r in 0.6f64..15.5, s in prop::sample::select(vec![1.0f64, 2.0, 0.5])) {
            // The byte path (isotropic grids) against the full float transform: same balls, for
            // radii up to the byte path's limit (r / s < 15.9), across slab seams.
            let f = Array3::from_shape_vec((70, 9, 11), bits).unwrap().mapv(|v| v == 0);
            let sp = [s; 3];
            let full = edt_squared(&f, sp);
            let r = r * s;
            let r2 = (r * r) as f32 * (1.0 + 1e-6);
            for (near, budget) in [(true, 0), (false, 0), (false, WINDOW_BYTES)] {
                let m: Array3<u8> = ball_mask_in(&f, sp, r, near, budget);
                for (&d, &v) in full.iter().zip(m.iter()) {
                    prop_assert_eq!(v, u8::from((d <= r2) == near), "r {} s {}", r, s);
                }
            }
        }

        #[test]
        fn balls_on_planes_of_several_tiles_equal_the_float_transform(seed in 0u64..1000, r in 1.0f64..6.0, iso in prop::bool::ANY) {
            // Planes of 130 x 140: more than one tile of bytes (16,384) and of floats (4,096),
            // so the tiles' seams and the rows' shifts across them are crossed.
            let f = Array3::from_shape_fn((6, 130, 140), |(z, y, x)| (z * 131 + y * 71 + x * 29 + seed as usize * 17).is_multiple_of(61));
            let sp = if iso { [1.0; 3] } else { [0.7, 0.8, 1.25] };
            let full = edt_squared(&f, sp);
            let r2 = (r * r) as f32 * (1.0 + 1e-6);
            let m: Array3<u8> = ball_mask_in(&f, sp, r, true, 0);
            for (&d, &v) in full.iter().zip(m.iter()) {
                prop_assert_eq!(v, u8::from(d <= r2));
            }
        }

        #[test]
        fn bounded_edt_is_exact_within_the_radius(bits in proptest::collection::vec(0u8..8, 5 * 6 * 7), r in 0.5f64..4.0) {
            let f = Array3::from_shape_vec((5, 6, 7), bits).unwrap().mapv(|v| v == 0);
            let sp = [0.7, 1.1, 1.6];
            let (full, within) = (edt_squared(&f, sp), edt_squared_within(&f, sp, r));
            let r2 = (r * r) as f32;
            for (&a, &b) in full.iter().zip(within.iter()) {
                if a <= r2 { prop_assert!((a - b).abs() < 1e-4 * a.max(1.0)); } else { prop_assert!(b > r2); }
            }
        }
    }
}
