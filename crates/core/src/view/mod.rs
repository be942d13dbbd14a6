//! Pictures a person wants to look at: slices in any of the three planes (sampled in world
//! coordinates, so physical aspect and orientation are right whatever the grid), windows,
//! translucent or contour overlays of masks on any grid, montages, and histograms.

pub mod font;

use crate::error::{Error, Result};
use crate::geometry::{Vec3, dot};
use crate::meta::Kind;
use crate::volume::{Volume, Voxel};
use crate::with_data;
pub use font::Image;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Axial,
    Coronal,
    Sagittal,
}

impl Plane {
    /// (screen right, screen down, normal) in LPS, radiological display: axial seen from the feet
    /// (patient's right on the left, anterior up), coronal from the front, sagittal from the left.
    fn axes(self) -> (Vec3, Vec3, Vec3) {
        match self {
            Plane::Axial => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
            Plane::Coronal => ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]),
            Plane::Sagittal => ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]),
        }
    }
    /// Letters at the left, right, top and bottom edges.
    fn letters(self) -> [&'static str; 4] {
        match self {
            Plane::Axial => ["R", "L", "A", "P"],
            Plane::Coronal => ["R", "L", "S", "I"],
            Plane::Sagittal => ["A", "P", "S", "I"],
        }
    }
    /// "axial", "coronal" or "sagittal" (for messages).
    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "axial",
            Plane::Coronal => "coronal",
            Plane::Sagittal => "sagittal",
        }
    }
    /// The world axis name of the normal (for labels).
    pub fn coordinate(self) -> &'static str {
        match self {
            Plane::Axial => "Z",
            Plane::Coronal => "Y",
            Plane::Sagittal => "X",
        }
    }
}

/// Where along the normal to cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    Middle,
    /// Slice index along the volume axis closest to the plane normal.
    Index(usize),
    /// World coordinate (LPS mm) along the normal.
    Mm(f64),
}

/// Named windows (centre, width) and the default for a kind of volume.
pub fn window(name: &str) -> Option<(f64, f64)> {
    match name {
        "lung" => Some((-600.0, 1500.0)),
        "mediastinum" | "soft" => Some((40.0, 400.0)),
        "bone" => Some((400.0, 1800.0)),
        _ => {
            let v: Vec<f64> = name.split(',').filter_map(|s| s.trim().parse().ok()).collect();
            match v.as_slice() {
                [c, w] if *w > 0.0 => Some((*c, *w)),
                _ => None,
            }
        }
    }
}

/// (low, high) display range for a volume when no window is given.
pub fn default_range(vol: &Volume) -> (f64, f64) {
    match vol.meta.kind {
        Kind::Hu | Kind::Stored => (-1350.0, 150.0), // lung window
        Kind::Mask | Kind::Labels => (0.0, vol.data.min_max().map(|m| m.1.max(1.0)).unwrap_or(1.0)),
        _ => {
            let (mn, mx) = vol.data.min_max().unwrap_or((0.0, 1.0));
            let r = vol.meta.rescale.unwrap_or(crate::meta::Rescale::IDENTITY);
            let (a, b) = (r.apply(mn), r.apply(mx));
            if a < -500.0 && b > 0.0 { (-1350.0, 150.0) } else { (a.min(b), a.max(b).max(a.min(b) + 1e-6)) }
        }
    }
}

/// Label colours for overlays.
pub const PALETTE: [[u8; 3]; 6] = [[230, 60, 60], [60, 200, 90], [70, 130, 240], [240, 200, 40], [200, 80, 220], [60, 210, 210]];

/// The sampling frame of a picture: world point of pixel (0, 0), and the world step per pixel.
struct Frame {
    origin: Vec3,
    du: Vec3,
    dv: Vec3,
    width: usize,
    height: usize,
}

fn frame(vol: &Volume, plane: Plane, pos: Position, max_px: usize, enlarge: bool) -> Result<(Frame, f64)> {
    let (u, v, n) = plane.axes();
    let shape = vol.shape();
    let corners = vol.geometry.corners(shape);
    let range = |ax: Vec3| {
        let p: Vec<f64> = corners.iter().map(|c| dot(*c, ax)).collect();
        (p.iter().cloned().fold(f64::INFINITY, f64::min), p.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
    };
    let s = vol.geometry.spacing;
    // Half a voxel of margin (its extent along each screen axis) so edge voxels are whole.
    let half = |ax: Vec3| (0..3).map(|a| dot(vol.geometry.direction[a], ax).abs() * s[a]).sum::<f64>() / 2.0;
    let ((u0, u1), (v0, v1), (n0, n1)) = (range(u), range(v), range(n));
    let (u0, u1, v0, v1) = (u0 - half(u), u1 + half(u), v0 - half(v), v1 + half(v));
    // Square pixels as small as the finer of the two in-plane voxel sizes.
    let along = |ax: Vec3| s[vol.geometry.index_axis_along(ax)];
    let mut px = along(u).min(along(v));
    let long = (u1 - u0).max(v1 - v0);
    if enlarge || long / px > max_px as f64 {
        px = long / max_px as f64;
    }
    let position = match pos {
        Position::Middle => (n0 + n1) / 2.0,
        Position::Mm(m) => m,
        Position::Index(k) => {
            let a = vol.geometry.index_axis_along(n);
            let n_a = crate::geometry::xyz_from_zyx(shape)[a];
            if k >= n_a {
                return Err(
                    Error::usage(format!("slice index {k} is outside 0..{}", n_a - 1)).with_hint("omit --index for the middle slice")
                );
            }
            let mut ijk = [(shape[2] as f64 - 1.0) / 2.0, (shape[1] as f64 - 1.0) / 2.0, (shape[0] as f64 - 1.0) / 2.0];
            ijk[a] = k as f64;
            dot(vol.geometry.index_to_world(ijk), n)
        }
    };
    let width = ((u1 - u0) / px).round().max(1.0) as usize;
    let height = ((v1 - v0) / px).round().max(1.0) as usize;
    let origin: Vec3 = std::array::from_fn(|r| (u0 + px / 2.0) * u[r] + (v0 + px / 2.0) * v[r] + position * n[r]);
    Ok((Frame { origin, du: u.map(|x| x * px), dv: v.map(|x| x * px), width, height }, position))
}

/// Sample a volume on a frame (real values; NaN outside). Nearest for masks, else trilinear.
fn sample(vol: &Volume, f: &Frame) -> Vec<f32> {
    let nearest = matches!(vol.meta.kind, Kind::Mask | Kind::Labels);
    let g = &vol.geometry;
    let Some(o) = g.world_to_index(f.origin) else { return vec![f32::NAN; f.width * f.height] };
    let step = |d: Vec3| {
        let a = g.world_to_index([f.origin[0] + d[0], f.origin[1] + d[1], f.origin[2] + d[2]]).unwrap_or(o);
        [a[0] - o[0], a[1] - o[1], a[2] - o[2]]
    };
    let (di, dj) = (step(f.du), step(f.dv));
    let [nz, ny, nx] = vol.shape();
    let r = vol.meta.rescale.unwrap_or(crate::meta::Rescale::IDENTITY);
    with_data!(&vol.data, a => {
        let mut out = vec![f32::NAN; f.width * f.height];
        for j in 0..f.height {
            for i in 0..f.width {
                let c: Vec3 = std::array::from_fn(|k| o[k] + i as f64 * di[k] + j as f64 * dj[k]);
                if c.iter().zip([nx, ny, nz]).any(|(&x, n)| x < -0.5 || x > n as f64 - 0.5) {
                    continue;
                }
                let val = if nearest {
                    let q = |x: f64, n: usize| (x.round().max(0.0) as usize).min(n - 1);
                    a[[q(c[2], nz), q(c[1], ny), q(c[0], nx)]].to_f64()
                } else {
                    let f0 = |x: f64, n: usize| { let x = x.clamp(0.0, (n - 1) as f64); let i = x.floor() as usize; (i, (i + 1).min(n - 1), x - i as f64) };
                    let ((x0, x1, fx), (y0, y1, fy), (z0, z1, fz)) = (f0(c[0], nx), f0(c[1], ny), f0(c[2], nz));
                    let l = |z: usize, y: usize| a[[z, y, x0]].to_f64() * (1.0 - fx) + a[[z, y, x1]].to_f64() * fx;
                    let p0 = l(z0, y0) * (1.0 - fy) + l(z0, y1) * fy;
                    let p1 = l(z1, y0) * (1.0 - fy) + l(z1, y1) * fy;
                    p0 * (1.0 - fz) + p1 * fz
                };
                out[j * f.width + i] = r.apply(val) as f32;
            }
        }
        out
    })
}

/// Options for one slice picture.
#[derive(Debug, Clone)]
pub struct SliceOptions {
    pub plane: Plane,
    pub position: Position,
    /// Display range (low, high); `None`: from the data kind.
    pub range: Option<(f64, f64)>,
    pub contour: bool,
    /// Overlay opacity.
    pub alpha: f32,
    /// Longest side at most this many pixels.
    pub max_px: usize,
    /// Longest side exactly `max_px`, enlarging small pictures (a thin slab seen from the side)
    /// instead of keeping one pixel per voxel.
    pub enlarge: bool,
    pub letters: bool,
}

impl Default for SliceOptions {
    fn default() -> Self {
        SliceOptions {
            plane: Plane::Axial,
            position: Position::Middle,
            range: None,
            contour: false,
            alpha: 0.4,
            max_px: 1024,
            enlarge: false,
            letters: true,
        }
    }
}

/// One slice with optional overlays; returns the picture and the slice position (mm).
pub fn slice(vol: &Volume, overlays: &[&Volume], o: &SliceOptions) -> Result<(Image, f64)> {
    let (f, position) = frame(vol, o.plane, o.position, o.max_px, o.enlarge)?;
    let values = sample(vol, &f);
    let (lo, hi) = o.range.unwrap_or_else(|| default_range(vol));
    let mut img = Image::new(f.width, f.height, [0, 0, 0]);
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        let g = (((v as f64 - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8;
        img.rgb[3 * i..3 * i + 3].copy_from_slice(&[g, g, g]);
    }
    for m in overlays {
        let lab = sample(m, &f);
        let at = |x: usize, y: usize| lab[y * f.width + x];
        for y in 0..f.height {
            for x in 0..f.width {
                let l = at(x, y);
                if l.is_nan() || l < 0.5 {
                    continue;
                }
                let edge = x == 0
                    || y == 0
                    || x + 1 == f.width
                    || y + 1 == f.height
                    || [at(x - 1, y), at(x + 1, y), at(x, y - 1), at(x, y + 1)].iter().any(|&n| n != l);
                if o.contour && !edge {
                    continue;
                }
                let c = PALETTE[((l.round() as usize).max(1) - 1) % PALETTE.len()];
                let a = if o.contour { 1.0 } else { o.alpha };
                let p = img.get(x, y);
                img.set(x, y, std::array::from_fn(|k| (p[k] as f32 * (1.0 - a) + c[k] as f32 * a).round() as u8));
            }
        }
    }
    if o.letters && f.width >= 40 && f.height >= 40 {
        let [l, r, t, b] = o.plane.letters();
        let s = if f.width >= 300 { 2 } else { 1 };
        let (w, h) = (f.width, f.height);
        let yellow = [250, 220, 60];
        img.text(3, h / 2 - 3 * s, l, s, yellow);
        img.text(w - Image::text_width(r, s) - 2, h / 2 - 3 * s, r, s, yellow);
        img.text(w / 2 - 3 * s, 3, t, s, yellow);
        img.text(w / 2 - 3 * s, h - 9 * s, b, s, yellow);
    }
    Ok((img, position))
}

/// `rows x cols` evenly spaced slices in one picture, each labelled with its position (mm).
pub fn montage(vol: &Volume, overlays: &[&Volume], o: &SliceOptions, rows: usize, cols: usize) -> Result<Image> {
    let n = rows * cols;
    if n == 0 {
        return Err(Error::usage("a montage needs at least 1x1").with_hint("e.g. --montage 3x4"));
    }
    let (_, _, nrm) = o.plane.axes();
    let corners = vol.geometry.corners(vol.shape());
    let p: Vec<f64> = corners.iter().map(|c| dot(*c, nrm)).collect();
    let (n0, n1) = (p.iter().cloned().fold(f64::INFINITY, f64::min), p.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    let tile_max = (o.max_px / cols.max(rows)).max(64);
    let mut tiles = Vec::new();
    for k in 0..n {
        let pos = n0 + (k as f64 + 1.0) * (n1 - n0) / (n as f64 + 1.0);
        let to = SliceOptions { position: Position::Mm(pos), max_px: tile_max, letters: k == 0, ..o.clone() };
        let (mut img, at) = slice(vol, overlays, &to)?;
        img.text(3, img.height.saturating_sub(10), &format!("{}={:.1}", o.plane.coordinate(), at), 1, [255, 255, 255]);
        tiles.push(img);
    }
    let (tw, th) = (tiles[0].width, tiles[0].height);
    let gap = 2;
    let mut out = Image::new(cols * tw + (cols - 1) * gap, rows * th + (rows - 1) * gap, [40, 40, 40]);
    for (k, t) in tiles.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        for y in 0..th.min(t.height) {
            for x in 0..tw.min(t.width) {
                out.set(c * (tw + gap) + x, r * (th + gap) + y, t.get(x, y));
            }
        }
    }
    Ok(out)
}

/// Histogram counts of real values in `bins` equal bins over [lo, hi] (NaN skipped).
pub fn histogram_counts(vol: &Volume, bins: usize, range: Option<(f64, f64)>) -> (Vec<u64>, f64, f64) {
    let r = vol.meta.rescale.unwrap_or(crate::meta::Rescale::IDENTITY);
    let (lo, hi) = range.unwrap_or_else(|| {
        let (a, b) = vol.data.min_max().unwrap_or((0.0, 1.0));
        let (a, b) = (r.apply(a), r.apply(b));
        (a.min(b), a.max(b).max(a.min(b) + 1.0))
    });
    let mut counts = vec![0u64; bins.max(1)];
    with_data!(&vol.data, a => for v in a.iter() {
        let x = r.apply(v.to_f64());
        if x.is_nan() || x < lo || x > hi {
            continue;
        }
        let b = (((x - lo) / (hi - lo)) * bins as f64) as usize;
        counts[b.min(bins - 1)] += 1;
    });
    (counts, lo, hi)
}

/// The tutorial's histogram plot: bars, axes, tick labels.
pub fn histogram(vol: &Volume, bins: usize, range: Option<(f64, f64)>, log: bool, xlabel: &str) -> Image {
    let (counts, lo, hi) = histogram_counts(vol, bins, range);
    let (w, h) = (900usize, 520usize);
    let (left, right, top, bottom) = (80usize, 20usize, 30usize, 60usize);
    let mut img = Image::new(w, h, [255, 255, 255]);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let f = |c: u64| if log { ((c as f64) + 1.0).ln() } else { c as f64 };
    let max = counts.iter().map(|&c| f(c)).fold(0.0, f64::max).max(1e-9);
    let n = counts.len();
    for (i, &c) in counts.iter().enumerate() {
        let x0 = left + i * pw / n;
        let x1 = (left + (i + 1) * pw / n).max(x0 + 1);
        let bh = (f(c) / max * ph as f64).round() as usize;
        for x in x0..x1.saturating_sub(if x1 - x0 > 2 { 1 } else { 0 }) {
            for y in (top + ph - bh)..(top + ph) {
                img.set(x, y, [40, 170, 190]);
            }
        }
    }
    let black = [0, 0, 0];
    for x in left..left + pw {
        img.set(x, top + ph, black);
    }
    for y in top..=top + ph {
        img.set(left - 1, y, black);
    }
    for t in 0..=5 {
        let v = lo + (hi - lo) * t as f64 / 5.0;
        let x = left + t * (pw - 1) / 5;
        for y in top + ph..top + ph + 5 {
            img.set(x, y, black);
        }
        let s = format!("{v:.0}");
        img.text(x.saturating_sub(Image::text_width(&s, 1) / 2), top + ph + 9, &s, 1, black);
    }
    let top_count = counts.iter().copied().max().unwrap_or(0);
    img.text(4, top, &format!("{top_count}"), 1, black);
    img.text(4, top + ph - 8, "0", 1, black);
    img.text(left + pw / 2 - Image::text_width(xlabel, 2) / 2, h - 22, xlabel, 2, black);
    img.text(left, 6, if log { "COUNT (LOG)" } else { "COUNT" }, 2, black);
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Geometry;
    use crate::meta::Meta;
    use crate::volume::VolumeData;
    use ndarray::Array3;

    fn vol(a: Array3<f32>, spacing: [f64; 3], kind: Kind) -> Volume {
        Volume { data: VolumeData::F32(a), geometry: Geometry::identity(spacing), meta: Meta { kind, ..Meta::default() } }
    }

    #[test]
    fn dimensions_follow_the_physical_extent() {
        let v = vol(Array3::zeros((10, 20, 30)), [0.5, 1.0, 2.0], Kind::Hu);
        let o = SliceOptions { letters: false, ..SliceOptions::default() };
        // Axial: 30 x 0.5 mm wide, 20 x 1 mm tall, at 0.5 mm pixels: 30 x 40 pixels.
        let (img, _) = slice(&v, &[], &o).unwrap();
        assert_eq!((img.width, img.height), (30, 40));
        // Coronal: 15 mm wide, 10 x 2 mm tall.
        let (img, _) = slice(&v, &[], &SliceOptions { plane: Plane::Coronal, ..o.clone() }).unwrap();
        assert_eq!((img.width, img.height), (30, 40));
    }

    #[test]
    fn window_maps_known_hu_to_gray() {
        let mut a = Array3::from_elem((3, 8, 8), -1000.0f32);
        a.slice_mut(ndarray::s![.., .., 4..]).fill(40.0);
        let v = vol(a, [1.0; 3], Kind::Hu);
        let o = SliceOptions { range: Some((-160.0, 240.0)), letters: false, ..SliceOptions::default() };
        let (img, _) = slice(&v, &[], &o).unwrap();
        // Pixel centres land on voxel centres (1 mm pixels, half-voxel margin).
        assert_eq!(img.get(1, 4), [0, 0, 0]);
        assert_eq!(img.get(6, 4), [128, 128, 128]);
    }

    #[test]
    fn overlay_colour_exactly_where_the_mask_is() {
        let v = vol(Array3::from_elem((3, 8, 8), 40.0), [1.0; 3], Kind::Hu);
        let mut m = Array3::<f32>::zeros((3, 8, 8));
        m.slice_mut(ndarray::s![.., 2..4, 2..4]).fill(1.0);
        let mv = vol(m, [1.0; 3], Kind::Mask);
        let o = SliceOptions { range: Some((-160.0, 240.0)), alpha: 1.0, letters: false, ..SliceOptions::default() };
        let (img, _) = slice(&v, &[&mv], &o).unwrap();
        for y in 0..img.height {
            for x in 0..img.width {
                let inside = (2..4).contains(&x) && (2..4).contains(&y);
                assert_eq!(img.get(x, y) == PALETTE[0], inside, "({x},{y})");
            }
        }
    }

    #[test]
    fn histogram_counts_are_exact() {
        let a = Array3::from_shape_vec((1, 1, 6), vec![-1000.0f32, -1000.0, -1000.0, 0.0, 0.0, 1000.0]).unwrap();
        let v = vol(a, [1.0; 3], Kind::Hu);
        let (c, lo, hi) = histogram_counts(&v, 4, None);
        assert_eq!((lo, hi), (-1000.0, 1000.0));
        assert_eq!(c, vec![3, 0, 2, 1]);
        let img = histogram(&v, 4, None, false, "HU");
        assert_eq!((img.width, img.height), (900, 520));
        // The tallest bar (3 counts) reaches the top of the plot area; the empty bin has no bar.
        assert_eq!(img.get(80 + 100, 31), [40, 170, 190]);
        assert_eq!(img.get(80 + 300, 400), [255, 255, 255]);
    }
}
