//! Isosurfaces as viewer-ready meshes: marching cubes with a crack-free generated table,
//! closed at the volume border, vertices in patient millimetres (LPS or RAS), clean-up (largest
//! component, minimum volume, Taubin smoothing), QC, STL/OBJ writers and a shaded preview.

pub mod decimate;
pub mod render;
pub mod table;

use crate::error::{Error, Result};
use crate::geometry::{Geometry, cross};
use crate::volume::{Volume, Voxel};
use crate::with_data;
use ndarray::ArrayView3;
use serde::Serialize;
use std::io::Write;

/// An indexed triangle mesh.
#[derive(Debug, Clone, Default)]
pub struct Mesh {
    pub vertices: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
}

/// Coordinate system of the written vertices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// DICOM patient space, mm (3D Slicer's assumption for STL/OBJ).
    Lps,
    /// NIfTI/scanner RAS, mm.
    Ras,
    /// Voxel indices (x, y, z), as the tutorial's arrays.
    Voxel,
}

impl Space {
    /// What 3D Slicer reads from an STL header or OBJ comment to know the coordinate system
    /// (without it, Slicer assumes LPS: a RAS mesh would land mirrored front-back and left-right).
    /// Voxel indices are no patient space, so they say so instead.
    pub fn tag(self) -> &'static str {
        match self {
            Space::Lps => "SPACE=LPS",
            Space::Ras => "SPACE=RAS",
            Space::Voxel => "SPACE=VOXEL (array indices x,y,z, not mm)",
        }
    }
}

/// Marching cubes at `level` over `[z, y, x]` data; vertices in voxel index space (x, y, z).
/// Voxels strictly above `level` are inside; outside the array counts as outside, so closed
/// surfaces come out closed. `step` samples every step-th voxel.
pub fn marching_cubes<T: Voxel>(data: &ArrayView3<T>, level: f64, step: usize) -> Mesh {
    stitch(march_chunks(data, level, step))
}

/// The first half of [`marching_cubes`]: the cubes marched, chunk by chunk, not yet stitched.
fn march_chunks<T: Voxel>(data: &ArrayView3<T>, level: f64, step: usize) -> Vec<Chunk> {
    use rayon::prelude::*;
    let grid = Grid::new(data, level as f32, step.max(1));
    // Cube layers in chunks, in parallel, stitched in order.
    let layers = grid.pz - 1;
    let n_chunks = (rayon::current_num_threads() * 4).clamp(1, layers);
    let bounds: Vec<(usize, usize)> =
        (0..n_chunks).map(|c| (c * layers / n_chunks, (c + 1) * layers / n_chunks)).filter(|(a, b)| a < b).collect();
    let last_chunk = bounds.len() - 1;
    let tab = table::table();
    bounds.par_iter().enumerate().map(|(ci, &(z0, z1))| grid.march(tab, z0, z1, ci != last_chunk)).collect()
}

/// No vertex on this edge.
const NONE: u32 = u32::MAX;
/// A row of flags with nothing inside.
const EMPTY_ROW: (u32, u32) = (u32::MAX, 0);
/// Ids of vertices borrowed from the next chunk's first slice carry this bit until the stitch.
const TAG: u32 = 1 << 31;

/// The sampled grid padded by one voxel of "outside" all around. Only inside flags are stored
/// (a byte per voxel); values are read from the input for the few voxels next to the surface.
struct Grid<'a, T> {
    sampled: ArrayView3<'a, T>,
    level: f32,
    pad: f32,
    step: f32,
    /// Sampled size.
    size: [usize; 3],
    pz: usize,
    py: usize,
    px: usize,
}

/// One chunk of cube layers. It owns the x/y-edge vertices of its slices but the last, and the
/// z-edge and centroid vertices of its layers; it borrows its last slice's from the next chunk,
/// which owns them as its first slice's. Both chunks make that slice's vertices the same way, in
/// the same order, and the next chunk makes them first: borrowed vertex k is the next chunk's
/// vertex k.
struct Chunk {
    verts: Vec<[f32; 3]>,
    borrowed: Vec<[f32; 3]>,
    tris: Vec<[u32; 3]>,
}

/// Inside flags of two consecutive padded slices (slice z in `[z % 2]`), and per row the first
/// and last x inside (`EMPTY_ROW` when none).
struct Planes {
    flags: [Vec<u8>; 2],
    ranges: [Vec<(u32, u32)>; 2],
    px: usize,
}

impl Planes {
    fn new(py: usize, px: usize) -> Self {
        Planes { flags: [vec![0; py * px], vec![0; py * px]], ranges: [vec![EMPTY_ROW; py], vec![EMPTY_ROW; py]], px }
    }

    /// The inside flags of row (z, y).
    fn row(&self, z: usize, y: usize) -> &[u8] {
        &self.flags[z % 2][y * self.px..(y + 1) * self.px]
    }
}

impl<'a, T: Voxel> Grid<'a, T> {
    fn new(data: &'a ArrayView3<T>, level: f32, step: usize) -> Self {
        let (nz, ny, nx) = data.dim();
        let (sz, sy, sx) = (nz.div_ceil(step), ny.div_ceil(step), nx.div_ceil(step));
        let (pz, py, px) = (sz + 2, sy + 2, sx + 2);
        let sampled = data.slice(ndarray::s![..;step, ..;step, ..;step]);
        let min = match data.as_slice_memory_order() {
            // In memory order as a slice, a block at a time: the minimum then vectorizes.
            Some(all) => {
                use rayon::prelude::*;
                all.par_chunks(1 << 16).map(|c| c.iter().fold(f32::INFINITY, |m, v| m.min(v.to_f32()))).reduce(|| f32::INFINITY, f32::min)
            }
            None => ndarray::Zip::from(data).par_fold(|| f32::INFINITY, |m, v| m.min(v.to_f32()), f32::min),
        };
        let pad = if min < level { min } else { level - 1.0 };
        Grid { sampled, level, pad, step: step as f32, size: [sz, sy, sx], pz, py, px }
    }

    /// The inside flags of padded slice z into `planes` (each chunk makes its own, two at a
    /// time: no volume of flags, which cost as much to allocate and fill as the marching).
    fn load_plane(&self, z: usize, planes: &mut Planes) {
        let [sz, _, sx] = self.size;
        let px = self.px;
        let (flags, ranges) = (&mut planes.flags[z % 2], &mut planes.ranges[z % 2]);
        flags.fill(0);
        ranges.fill(EMPTY_ROW);
        if z == 0 || z > sz {
            return;
        }
        let slice = self.sampled.index_axis(ndarray::Axis(0), z - 1);
        for (y, src) in slice.outer_iter().enumerate() {
            let row = &mut flags[(y + 1) * px + 1..(y + 1) * px + 1 + sx];
            let inside = |(d, v): (&mut u8, &T)| *d = u8::from(v.to_f32() > self.level);
            // A contiguous row (step 1) as a slice: the comparison then vectorizes.
            match src.as_slice() {
                Some(src) => row.iter_mut().zip(src).for_each(inside),
                None => row.iter_mut().zip(src.iter()).for_each(inside),
            }
            // Padded x of the first and last voxel inside.
            if let Some((lo, hi)) = first_last_nonzero(row) {
                ranges[y + 1] = (lo as u32 + 1, hi as u32 + 1);
            }
        }
    }

    fn value(&self, z: usize, y: usize, x: usize) -> f32 {
        let [sz, sy, sx] = self.size;
        if z == 0 || y == 0 || x == 0 || z > sz || y > sy || x > sx { self.pad } else { self.sampled[[z - 1, y - 1, x - 1]].to_f32() }
    }

    /// The cubes (by their lower x) that can cut the surface between the given rows: from one
    /// before the first inside voxel to the last (flying edges' trimming, which skips most of
    /// the volume); `None` when every row is empty.
    fn cube_span(&self, planes: &Planes, rows: &[(usize, usize)]) -> Option<std::ops::Range<usize>> {
        let (lo, hi) = rows.iter().map(|&(z, y)| planes.ranges[z % 2][y]).fold(EMPTY_ROW, |a, b| (a.0.min(b.0), a.1.max(b.1)));
        // Padding keeps every inside voxel off the array's first and last x.
        (lo <= hi).then(|| lo as usize - 1..(hi as usize).min(self.px - 2) + 1)
    }

    /// Vertex on the edge from voxel a to voxel b (padded indices), in unpadded index space.
    fn vertex(&self, verts: &mut Vec<[f32; 3]>, a: [usize; 3], b: [usize; 3]) -> u32 {
        let (va, vb) = (self.value(a[0], a[1], a[2]), self.value(b[0], b[1], b[2]));
        // Keep vertices strictly inside their edge: a voxel exactly at the level (integer CT at an
        // integer level) would otherwise put several vertices on one point, which viewers merge
        // into non-manifold geometry. 1/1000 of a voxel is invisible.
        let t = if vb != va { ((self.level - va) / (vb - va)).clamp(1e-3, 1.0 - 1e-3) } else { 0.5 };
        let p = |k: usize| ((a[k] as f32 + t * (b[k] as f32 - a[k] as f32)) - 1.0) * self.step;
        verts.push([p(2), p(1), p(0)]);
        (verts.len() - 1) as u32
    }

    /// x- and y-edge vertices of slice z: only the crossing edges are set. Only those are read
    /// (a cube reads the edges its case cuts), so entries left from an earlier slice do no harm.
    fn slice_edges(&self, pl: &Planes, z: usize, ex: &mut [u32], ey: &mut [u32], verts: &mut Vec<[f32; 3]>, tag: u32) {
        let (py, px) = (self.py, self.px);
        for y in 0..py {
            let row = pl.row(z, y);
            for x in self.cube_span(pl, &[(z, y)]).unwrap_or(0..0) {
                if row[x] != row[x + 1] {
                    ex[y * px + x] = self.vertex(verts, [z, y, x], [z, y, x + 1]) | tag;
                }
            }
            if y + 1 < py {
                crossings(row, pl.row(z, y + 1), &mut |x| ey[y * px + x] = self.vertex(verts, [z, y, x], [z, y + 1, x]) | tag);
            }
        }
    }

    /// The cube layers z0..z1; `borrow_last`: the last slice's vertices belong to the next chunk.
    fn march(&self, tab: &[Vec<table::Loop>; 256], z0: usize, z1: usize, borrow_last: bool) -> Chunk {
        let (py, px) = (self.py, self.px);
        let plane = py * px;
        let (mut verts, mut borrowed, mut tris) = (Vec::new(), Vec::new(), Vec::new());
        let mut ex = [vec![NONE; plane], vec![NONE; plane]];
        let mut ey = [vec![NONE; plane], vec![NONE; plane]];
        let mut ez = vec![NONE; plane];
        let mut pl = Planes::new(py, px);
        self.load_plane(z0, &mut pl);
        self.slice_edges(&pl, z0, &mut ex[z0 % 2], &mut ey[z0 % 2], &mut verts, 0);
        for z in z0..z1 {
            let (cur, nxt) = (z % 2, (z + 1) % 2);
            self.load_plane(z + 1, &mut pl);
            if z + 1 == z1 && borrow_last {
                self.slice_edges(&pl, z + 1, &mut ex[nxt], &mut ey[nxt], &mut borrowed, TAG);
            } else {
                self.slice_edges(&pl, z + 1, &mut ex[nxt], &mut ey[nxt], &mut verts, 0);
            }
            for y in 0..py {
                crossings(pl.row(z, y), pl.row(z + 1, y), &mut |x| ez[y * px + x] = self.vertex(&mut verts, [z, y, x], [z + 1, y, x]));
            }
            for y in 0..py - 1 {
                let Some(span) = self.cube_span(&pl, &[(z, y), (z, y + 1), (z + 1, y), (z + 1, y + 1)]) else { continue };
                let (a, b, c, d) = (pl.row(z, y), pl.row(z, y + 1), pl.row(z + 1, y), pl.row(z + 1, y + 1));
                // Eight cubes at a time where their 4 x 9 corners are all outside (the gaps
                // between bones, or organs, along a row).
                let nine = |r: &[u8], x: usize| word(&r[x..]) | u64::from(r[x + 8]);
                let mut next = span.start;
                while next < span.end {
                    let x = next;
                    if x + 9 <= px && nine(a, x) | nine(b, x) | nine(c, x) | nine(d, x) == 0 {
                        next += 8;
                        continue;
                    }
                    next += 1;
                    // Corner order as table::CORNERS: (0,0,0) (1,0,0) (1,1,0) (0,1,0), then z + 1.
                    let case =
                        (a[x] | a[x + 1] << 1 | b[x + 1] << 2 | b[x] << 3 | c[x] << 4 | c[x + 1] << 5 | d[x + 1] << 6 | d[x] << 7) as usize;
                    let loops = &tab[case];
                    if loops.is_empty() {
                        continue;
                    }
                    let p = y * px + x;
                    let e = |k: u8| -> u32 {
                        match k {
                            0 => ex[cur][p],
                            1 => ey[cur][p + 1],
                            2 => ex[cur][p + px],
                            3 => ey[cur][p],
                            4 => ex[nxt][p],
                            5 => ey[nxt][p + 1],
                            6 => ex[nxt][p + px],
                            7 => ey[nxt][p],
                            8 => ez[p],
                            9 => ez[p + 1],
                            10 => ez[p + px + 1],
                            _ => ez[p + px],
                        }
                    };
                    for lp in loops {
                        let centroid = if lp.tris.iter().any(|t| t.contains(&table::CENTROID)) {
                            let mut c = [0f32; 3];
                            for &k in &lp.edges {
                                let id = e(k);
                                let v = if id & TAG != 0 { borrowed[(id & !TAG) as usize] } else { verts[id as usize] };
                                for i in 0..3 {
                                    c[i] += v[i] / lp.edges.len() as f32;
                                }
                            }
                            verts.push(c);
                            (verts.len() - 1) as u32
                        } else {
                            NONE
                        };
                        let id = |k: u8| if k == table::CENTROID { centroid } else { e(k) };
                        for t in &lp.tris {
                            tris.push([id(t[0]), id(t[1]), id(t[2])]);
                        }
                    }
                }
            }
        }
        Chunk { verts, borrowed, tris }
    }
}

/// Positions where two rows of 0/1 flags differ, in order, eight at a time (most pairs of rows
/// are equal, or differ in a few places).
fn crossings(a: &[u8], b: &[u8], f: &mut impl FnMut(usize)) {
    let words = a.len() / 8;
    for (i, (wa, wb)) in a.chunks_exact(8).zip(b.chunks_exact(8)).enumerate() {
        // Flags are 0 or 1: each differing byte of the xor holds just its lowest bit.
        let mut d = word(wa) ^ word(wb);
        while d != 0 {
            f(i * 8 + d.trailing_zeros() as usize / 8);
            d &= d - 1;
        }
    }
    for x in words * 8..a.len() {
        if a[x] != b[x] {
            f(x);
        }
    }
}

/// The first and last positions of a non-zero byte, eight at a time.
fn first_last_nonzero(row: &[u8]) -> Option<(usize, usize)> {
    let whole = row.len() / 8 * 8;
    let (words, tail) = row.split_at(whole);
    let first = match words.chunks_exact(8).position(|c| word(c) != 0) {
        Some(i) => i * 8 + word(&words[i * 8..]).trailing_zeros() as usize / 8,
        None => whole + tail.iter().position(|&v| v != 0)?,
    };
    let last = match tail.iter().rposition(|&v| v != 0) {
        Some(i) => whole + i,
        None => {
            let i = words.chunks_exact(8).rposition(|c| word(c) != 0).expect("a non-zero byte was found");
            i * 8 + 7 - word(&words[i * 8..]).leading_zeros() as usize / 8
        }
    };
    Some((first, last))
}

/// Eight bytes as one number, the first in the lowest bits.
fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("eight bytes"))
}

/// One mesh from the chunks: owned vertices in chunk order; borrowed vertex k becomes the next
/// chunk's vertex k. Each chunk's part is copied in parallel into its place in the whole, and the
/// chunk freed once copied: the mesh is not held twice (vol-mesh's peak memory).
fn stitch(chunks: Vec<Chunk>) -> Mesh {
    use rayon::prelude::*;
    debug_assert!(chunks.windows(2).all(|w| w[1].verts.starts_with(&w[0].borrowed)), "a chunk's borrowed vertices open the next");
    let mut offsets = Vec::with_capacity(chunks.len());
    let (mut total, mut total_tris) = (0u32, 0usize);
    for c in &chunks {
        offsets.push(total);
        total += c.verts.len() as u32;
        total_tris += c.tris.len();
    }
    let mut mesh = Mesh { vertices: vec![[0.0; 3]; total as usize], triangles: vec![[0; 3]; total_tris] };
    let vertex_parts = split_parts(&mut mesh.vertices, chunks.iter().map(|c| c.verts.len()));
    let triangle_parts = split_parts(&mut mesh.triangles, chunks.iter().map(|c| c.tris.len()));
    chunks.into_par_iter().zip(vertex_parts).zip(triangle_parts).enumerate().for_each(|(i, ((c, verts), tris))| {
        verts.copy_from_slice(&c.verts);
        // Only the last chunk borrows nothing, so offsets[i + 1] exists whenever it is used.
        let (own, next) = (offsets[i], offsets.get(i + 1).copied().unwrap_or(0));
        for (d, t) in tris.iter_mut().zip(&c.tris) {
            *d = t.map(|v| if v & TAG != 0 { next + (v & !TAG) } else { own + v });
        }
    });
    mesh
}

/// `all` cut into consecutive parts of the given lengths.
fn split_parts<T>(all: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut rest = all;
    let mut parts = Vec::new();
    for n in lens {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(n);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// Map voxel-space vertices into `space` with the volume's geometry. Winding is kept outward
/// (reversed when the index-to-world map flips handedness).
pub fn to_space(mesh: &mut Mesh, g: &Geometry, space: Space) {
    if space == Space::Voxel {
        return;
    }
    use rayon::prelude::*;
    let m = g.index_matrix();
    mesh.vertices.par_iter_mut().for_each(|v| {
        let w = g.index_to_world_with(&m, [v[0] as f64, v[1] as f64, v[2] as f64]);
        *v = match space {
            Space::Ras => [-w[0] as f32, -w[1] as f32, w[2] as f32],
            _ => [w[0] as f32, w[1] as f32, w[2] as f32],
        };
    });
    let det = crate::geometry::det3(&m);
    // RAS negates two axes: handedness unchanged.
    if det < 0.0 {
        for t in mesh.triangles.iter_mut() {
            t.swap(1, 2);
        }
    }
}

/// The unit normal of triangle (a, b, c) by its winding (0 for a degenerate one).
#[inline]
fn facet_normal(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> [f64; 3] {
    let n = cross(sub(b, a), sub(c, a));
    let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-30);
    n.map(|v| v / l)
}

/// One binary STL facet record: the unit normal, the corners, no attributes.
#[inline]
fn stl_facet(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> [u8; 50] {
    let n = facet_normal(a, b, c).map(|v| v as f32);
    let values = [n[0], n[1], n[2], a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2]];
    let mut rec = [0u8; 50];
    for (bytes, v) in rec.chunks_exact_mut(4).zip(values) {
        bytes.copy_from_slice(&v.to_le_bytes());
    }
    rec
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f64; 3] {
    [(a[0] - b[0]) as f64, (a[1] - b[1]) as f64, (a[2] - b[2]) as f64]
}

/// Mesh quality numbers.
#[derive(Debug, Clone, Serialize, Default)]
pub struct MeshQc {
    pub vertices: usize,
    pub faces: usize,
    pub edges: usize,
    pub components: usize,
    /// Every edge is shared by exactly two faces.
    pub watertight: bool,
    /// Every edge has at most two faces, used once in each direction (consistent winding).
    pub manifold: bool,
    pub consistently_oriented: bool,
    pub euler_characteristic: i64,
    pub degenerate_faces: usize,
    pub area_mm2: f64,
    /// Enclosed volume (divergence theorem), mL; positive = normals point outward.
    pub enclosed_ml: f64,
    /// Voxels above the level times the voxel volume, mL.
    pub voxel_ml: f64,
}

impl Mesh {
    /// Area (mm^2) and signed enclosed volume (mm^3).
    pub fn area_volume(&self) -> (f64, f64) {
        let (mut area, mut vol) = (0.0, 0.0);
        for t in &self.triangles {
            let (a, b, c) = (self.vertices[t[0] as usize], self.vertices[t[1] as usize], self.vertices[t[2] as usize]);
            let n = cross(sub(b, a), sub(c, a));
            area += 0.5 * (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            let a64 = [a[0] as f64, a[1] as f64, a[2] as f64];
            let b64 = [b[0] as f64, b[1] as f64, b[2] as f64];
            let c64 = [c[0] as f64, c[1] as f64, c[2] as f64];
            let cr = cross(b64, c64);
            vol += (a64[0] * cr[0] + a64[1] * cr[1] + a64[2] * cr[2]) / 6.0;
        }
        (area, vol)
    }

    /// Connected components (by shared vertices): a component id per triangle, and the count.
    pub fn components(&self) -> (Vec<u32>, usize) {
        let n = self.vertices.len();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        fn find(p: &mut [u32], mut i: u32) -> u32 {
            while p[i as usize] != i {
                p[i as usize] = p[p[i as usize] as usize];
                i = p[i as usize];
            }
            i
        }
        for t in &self.triangles {
            for k in 1..3 {
                let (a, b) = (find(&mut parent, t[0]), find(&mut parent, t[k]));
                if a != b {
                    parent[a.max(b) as usize] = a.min(b);
                }
            }
        }
        let mut id = vec![u32::MAX; n];
        let mut count = 0u32;
        let comp: Vec<u32> = self
            .triangles
            .iter()
            .map(|t| {
                let r = find(&mut parent, t[0]) as usize;
                if id[r] == u32::MAX {
                    id[r] = count;
                    count += 1;
                }
                id[r]
            })
            .collect();
        (comp, count as usize)
    }

    /// Keep only the triangles for which `keep(component)` is true; drop unused vertices.
    pub fn retain_components(&mut self, comp: &[u32], keep: impl Fn(u32) -> bool) {
        let tris: Vec<[u32; 3]> = self.triangles.iter().zip(comp).filter(|(_, c)| keep(**c)).map(|(t, _)| *t).collect();
        self.triangles = tris;
        self.compact();
    }

    fn compact(&mut self) {
        let mut map = vec![u32::MAX; self.vertices.len()];
        let mut verts = Vec::new();
        for t in self.triangles.iter_mut() {
            for v in t.iter_mut() {
                if map[*v as usize] == u32::MAX {
                    map[*v as usize] = verts.len() as u32;
                    verts.push(self.vertices[*v as usize]);
                }
                *v = map[*v as usize];
            }
        }
        self.vertices = verts;
    }

    /// Per-component signed volumes (mm^3).
    pub fn component_volumes(&self, comp: &[u32], n: usize) -> Vec<f64> {
        let mut vols = vec![0.0; n];
        for (t, &c) in self.triangles.iter().zip(comp) {
            let (a, b, cc) = (self.vertices[t[0] as usize], self.vertices[t[1] as usize], self.vertices[t[2] as usize]);
            let a = [a[0] as f64, a[1] as f64, a[2] as f64];
            let cr = cross([b[0] as f64, b[1] as f64, b[2] as f64], [cc[0] as f64, cc[1] as f64, cc[2] as f64]);
            vols[c as usize] += (a[0] * cr[0] + a[1] * cr[1] + a[2] * cr[2]) / 6.0;
        }
        vols
    }

    /// Clean-up by component: with `largest`, only the component enclosing the most volume;
    /// then only components enclosing at least `min_ml` mL. Returns (components, kept).
    pub fn keep_components(&mut self, largest: bool, min_ml: f64) -> (usize, usize) {
        let (comp, n) = self.components();
        let vols = self.component_volumes(&comp, n);
        let biggest = (0..n).max_by(|&a, &b| vols[a].abs().total_cmp(&vols[b].abs())).unwrap_or(0) as u32;
        let keep = |c: u32| (!largest || c == biggest) && vols[c as usize].abs() >= min_ml * 1000.0;
        let kept = (0..n as u32).filter(|&c| keep(c)).count();
        self.retain_components(&comp, keep);
        (n, kept)
    }

    /// One mesh per component, largest enclosed volume first.
    pub fn split_by_size(&self) -> Vec<Mesh> {
        let (comp, n) = self.components();
        let vols = self.component_volumes(&comp, n);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| vols[b].abs().total_cmp(&vols[a].abs()));
        order
            .into_iter()
            .map(|c| {
                let mut part = self.clone();
                part.retain_components(&comp, |k| k as usize == c);
                part
            })
            .collect()
    }

    /// Taubin smoothing (lambda 0.5, mu -0.53): smooths without shrinking.
    pub fn taubin(&mut self, iterations: usize) {
        let n = self.vertices.len();
        let mut nbr: Vec<Vec<u32>> = vec![Vec::new(); n];
        for t in &self.triangles {
            for k in 0..3 {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                nbr[a as usize].push(b);
                nbr[b as usize].push(a);
            }
        }
        for l in nbr.iter_mut() {
            l.sort_unstable();
            l.dedup();
        }
        for _ in 0..iterations {
            for f in [0.5f32, -0.53] {
                let old = self.vertices.clone();
                for (i, v) in self.vertices.iter_mut().enumerate() {
                    if nbr[i].is_empty() {
                        continue;
                    }
                    let mut m = [0f32; 3];
                    for &j in &nbr[i] {
                        for k in 0..3 {
                            m[k] += old[j as usize][k];
                        }
                    }
                    let c = nbr[i].len() as f32;
                    for k in 0..3 {
                        v[k] += f * (m[k] / c - old[i][k]);
                    }
                }
            }
        }
    }

    /// Area-weighted vertex normals (unit length).
    pub fn vertex_normals(&self) -> Vec<[f32; 3]> {
        let mut nrm = vec![[0f64; 3]; self.vertices.len()];
        for t in &self.triangles {
            let (a, b, c) = (self.vertices[t[0] as usize], self.vertices[t[1] as usize], self.vertices[t[2] as usize]);
            let n = cross(sub(b, a), sub(c, a));
            for &v in t {
                for k in 0..3 {
                    nrm[v as usize][k] += n[k];
                }
            }
        }
        nrm.iter()
            .map(|n| {
                let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-20);
                [(n[0] / l) as f32, (n[1] / l) as f32, (n[2] / l) as f32]
            })
            .collect()
    }

    /// Topology and size checks.
    pub fn qc(&self) -> MeshQc {
        let mut directed: Vec<u64> = Vec::with_capacity(self.triangles.len() * 3);
        let mut degenerate = 0;
        for t in &self.triangles {
            if t[0] == t[1] || t[1] == t[2] || t[0] == t[2] {
                degenerate += 1;
            }
            let (a, b, c) = (self.vertices[t[0] as usize], self.vertices[t[1] as usize], self.vertices[t[2] as usize]);
            let n = cross(sub(b, a), sub(c, a));
            if n[0] == 0.0 && n[1] == 0.0 && n[2] == 0.0 {
                degenerate += 1;
            }
            for k in 0..3 {
                directed.push(((t[k] as u64) << 32) | t[(k + 1) % 3] as u64);
            }
        }
        let mut undirected: Vec<u64> = directed
            .iter()
            .map(|&d| {
                let (a, b) = (d >> 32, d & 0xffff_ffff);
                (a.min(b) << 32) | a.max(b)
            })
            .collect();
        undirected.sort_unstable();
        directed.sort_unstable();
        let dup_directed = directed.windows(2).any(|w| w[0] == w[1]);
        let mut edges = 0usize;
        let (mut all_two, mut at_most_two) = (true, true);
        let mut i = 0;
        while i < undirected.len() {
            let mut j = i;
            while j < undirected.len() && undirected[j] == undirected[i] {
                j += 1;
            }
            let c = j - i;
            all_two &= c == 2;
            at_most_two &= c <= 2;
            edges += 1;
            i = j;
        }
        let (area, vol) = self.area_volume();
        let (_, comps) = self.components();
        MeshQc {
            vertices: self.vertices.len(),
            faces: self.triangles.len(),
            edges,
            components: comps,
            watertight: all_two && !self.triangles.is_empty(),
            manifold: at_most_two && !dup_directed,
            consistently_oriented: !dup_directed,
            euler_characteristic: self.vertices.len() as i64 - edges as i64 + self.triangles.len() as i64,
            degenerate_faces: degenerate,
            area_mm2: area,
            enclosed_ml: vol / 1000.0,
            voxel_ml: 0.0,
        }
    }

    /// Binary STL (facet normals from the winding), encoded a piece at a time: no file-sized
    /// buffer (a bone mesh is ~100 MB). A second thread encodes while this one writes: on a bone
    /// mesh the two take about as long, so together they cost about one of them.
    pub fn write_stl_binary(&self, w: &mut dyn Write, space: Space) -> std::io::Result<()> {
        const CHUNK: usize = 32768; // triangles: 1.6 MB of STL
        let mut header = [0u8; 80];
        let h = format!("binary STL from ctprep vol-mesh {}", space.tag());
        let n = h.len().min(header.len());
        header[..n].copy_from_slice(&h.as_bytes()[..n]);
        w.write_all(&header)?;
        w.write_all(&(self.triangles.len() as u32).to_le_bytes())?;
        // Buffers go round between the two threads; at most three exist.
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::scope(|s| {
            s.spawn(move || {
                for tris in self.triangles.chunks(CHUNK) {
                    let mut buf = empty_rx.try_recv().unwrap_or_default();
                    buf.resize(tris.len() * 50, 0);
                    for (rec, t) in buf.chunks_exact_mut(50).zip(tris) {
                        let (a, b, c) = (self.vertices[t[0] as usize], self.vertices[t[1] as usize], self.vertices[t[2] as usize]);
                        rec.copy_from_slice(&stl_facet(a, b, c));
                    }
                    if full_tx.send(buf).is_err() {
                        return; // the writer failed, and reports it
                    }
                }
            });
            for buf in full_rx {
                w.write_all(&buf)?;
                let _ = empty_tx.send(buf);
            }
            Ok(())
        })
    }

    pub fn write_stl_ascii(&self, w: &mut dyn Write, space: Space) -> std::io::Result<()> {
        writeln!(w, "solid ctprep {}", space.tag())?;
        for t in &self.triangles {
            let (a, b, c) = (self.vertices[t[0] as usize], self.vertices[t[1] as usize], self.vertices[t[2] as usize]);
            let n = facet_normal(a, b, c);
            writeln!(w, "  facet normal {:e} {:e} {:e}\n    outer loop", n[0], n[1], n[2])?;
            for v in [a, b, c] {
                writeln!(w, "      vertex {:e} {:e} {:e}", v[0], v[1], v[2])?;
            }
            writeln!(w, "    endloop\n  endfacet")?;
        }
        writeln!(w, "endsolid ctprep")
    }

    /// Wavefront OBJ with vertex normals.
    pub fn write_obj(&self, w: &mut dyn Write, space: Space) -> std::io::Result<()> {
        let mut s = String::with_capacity(self.vertices.len() * 60 + self.triangles.len() * 40);
        use std::fmt::Write as _;
        let _ = writeln!(s, "# ctprep vol-mesh: {} vertices, {} faces {}", self.vertices.len(), self.triangles.len(), space.tag());
        for v in &self.vertices {
            let _ = writeln!(s, "v {} {} {}", v[0], v[1], v[2]);
        }
        for n in self.vertex_normals() {
            let _ = writeln!(s, "vn {} {} {}", n[0], n[1], n[2]);
        }
        for t in &self.triangles {
            let _ = writeln!(s, "f {a}//{a} {b}//{b} {c}//{c}", a = t[0] + 1, b = t[1] + 1, c = t[2] + 1);
        }
        w.write_all(s.as_bytes())
    }
}

/// Extract the isosurface of a volume (real values: rescale applied), with optional Gaussian
/// pre-smoothing of `sigma_mm`, mapped into `space`.
pub fn isosurface(vol: &Volume, level: f64, step: usize, sigma_mm: f64, space: Space) -> Result<Mesh> {
    let chunks = march_volume(vol, level, step, sigma_mm)?;
    Ok(stitch_into(chunks, &vol.geometry, space))
}

/// [`isosurface`] of a volume it owns: the voxels are freed once the cubes are marched, before
/// the chunks are stitched, so the input and the whole mesh are never held at once (vol-mesh's
/// peak memory: on the chest at 1 mm, an 80 MB input and a 38 MB mesh in its chunks and whole).
pub fn isosurface_freeing(vol: Volume, level: f64, step: usize, sigma_mm: f64, space: Space) -> Result<Mesh> {
    let chunks = march_volume(&vol, level, step, sigma_mm)?;
    let geometry = vol.geometry.clone();
    drop(vol);
    Ok(stitch_into(chunks, &geometry, space))
}

/// The cubes of `vol` at `level` (real units) marched, after a Gaussian of `sigma_mm` if asked.
fn march_volume(vol: &Volume, level: f64, step: usize, sigma_mm: f64) -> Result<Vec<Chunk>> {
    if vol.data.is_empty() {
        return Err(Error::bad_input("the volume is empty"));
    }
    let r = vol.meta.rescale.filter(|r| !r.is_identity());
    Ok(if sigma_mm > 0.0 || r.is_some() {
        let mut f = vol.real_f32();
        if sigma_mm > 0.0 {
            let s = vol.geometry.spacing;
            crate::filter::gaussian_smooth(&mut f.view_mut(), [sigma_mm / s[0], sigma_mm / s[1], sigma_mm / s[2]]);
        }
        march_chunks(&f.view(), level, step)
    } else {
        with_data!(&vol.data, a => march_chunks(&a.view(), level, step))
    })
}

/// One mesh from the marched chunks, its vertices mapped into `space` with `geometry`.
fn stitch_into(chunks: Vec<Chunk>, geometry: &Geometry, space: Space) -> Mesh {
    let mut mesh = stitch(chunks);
    // Vertices are in full-resolution index units whatever the step.
    to_space(&mut mesh, geometry, space);
    mesh
}

/// Voxels strictly above `level`, times the voxel volume (mL).
pub fn voxel_volume_ml(vol: &Volume, level: f64) -> f64 {
    let r = vol.meta.rescale.unwrap_or(crate::meta::Rescale::IDENTITY);
    let n = with_data!(&vol.data, a => a.iter().filter(|v| r.apply(v.to_f64()) > level).count());
    n as f64 * vol.voxel_volume_mm3() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Kind, Meta};
    use crate::volume::VolumeData;
    use ndarray::Array3;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn word_scans_find_what_a_byte_scan_finds(a in prop::collection::vec(prop::bool::weighted(0.1), 0..70), b in prop::collection::vec(prop::bool::weighted(0.1), 0..70)) {
            let (a, b): (Vec<u8>, Vec<u8>) = (a.into_iter().map(u8::from).collect(), b.into_iter().map(u8::from).collect());
            let first_last = a.iter().position(|&v| v != 0).zip(a.iter().rposition(|&v| v != 0));
            prop_assert_eq!(first_last_nonzero(&a), first_last);
            let n = a.len().min(b.len());
            let mut found = Vec::new();
            crossings(&a[..n], &b[..n], &mut |x| found.push(x));
            prop_assert_eq!(found, (0..n).filter(|&x| a[x] != b[x]).collect::<Vec<_>>());
        }
    }

    #[test]
    fn binary_stl_reports_a_failing_writer_without_hanging_its_encoder() {
        // Three encoding pieces' worth; the sink fails after the first megabyte.
        struct FailsAfter(usize);
        impl Write for FailsAfter {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if self.0 < b.len() {
                    return Err(std::io::Error::other("disk full"));
                }
                self.0 -= b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let vertices: Vec<[f32; 3]> = (0..100).map(|i| [i as f32, 0.0, (i % 7) as f32]).collect();
        let triangles: Vec<[u32; 3]> = (0..100_000u32).map(|t| [t % 100, (t + 1) % 100, (t + 2) % 100]).collect();
        let mesh = Mesh { vertices, triangles };
        let err = mesh.write_stl_binary(&mut FailsAfter(1 << 20), Space::Lps).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }

    #[test]
    fn binary_stl_holds_every_facet_in_order_across_encoding_chunks() {
        // 300,001 triangles: several parallel groups of 32768-triangle chunks and a ragged end.
        let vertices: Vec<[f32; 3]> = (0..1000).map(|i| [i as f32 * 0.5, (i * i % 97) as f32, -(i as f32) / 3.0]).collect();
        let triangles: Vec<[u32; 3]> = (0..300_001u32).map(|t| [t % 1000, (t * 7 + 1) % 1000, (t * 13 + 2) % 1000]).collect();
        let mesh = Mesh { vertices, triangles };
        let mut bytes = Vec::new();
        mesh.write_stl_binary(&mut bytes, Space::Lps).unwrap();
        assert_eq!(bytes.len(), 84 + 50 * mesh.triangles.len());
        assert_eq!(u32::from_le_bytes(bytes[80..84].try_into().unwrap()) as usize, mesh.triangles.len());
        let f = |o: usize| f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        for (i, t) in mesh.triangles.iter().enumerate() {
            let rec = 84 + 50 * i;
            let (a, b, c) = (mesh.vertices[t[0] as usize], mesh.vertices[t[1] as usize], mesh.vertices[t[2] as usize]);
            let n = cross(sub(b, a), sub(c, a));
            let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-30);
            for k in 0..3 {
                assert_eq!(f(rec + 4 * k), (n[k] / l) as f32, "normal of facet {i}");
                for (v, p) in [a, b, c].iter().enumerate() {
                    assert_eq!(f(rec + 12 + 12 * v + 4 * k), p[k], "facet {i}");
                }
            }
            assert_eq!(&bytes[rec + 48..rec + 50], &[0, 0]);
        }
    }

    /// The owning variant frees the voxels early; its mesh is the borrowing one's, with and
    /// without smoothing, at a step, on an anisotropic grid, in each space.
    #[test]
    fn isosurface_freeing_makes_the_same_mesh() {
        for (sigma, step, space) in [(0.0, 1, Space::Lps), (1.5, 1, Space::Ras), (0.0, 2, Space::Voxel)] {
            let v = sphere(21, 6.5, [0.8, 1.0, 1.3]);
            let a = isosurface(&v, 0.0, step, sigma, space).unwrap();
            let b = isosurface_freeing(v, 0.0, step, sigma, space).unwrap();
            assert!(!a.triangles.is_empty());
            assert_eq!((a.vertices, a.triangles), (b.vertices, b.triangles), "sigma {sigma}, step {step}");
        }
    }

    fn sphere(n: usize, r: f64, spacing: [f64; 3]) -> Volume {
        let c = (n as f64 - 1.0) / 2.0;
        let a = Array3::from_shape_fn((n, n, n), |(z, y, x)| {
            let d = (((x as f64 - c) * spacing[0]).powi(2) + ((y as f64 - c) * spacing[1]).powi(2) + ((z as f64 - c) * spacing[2]).powi(2))
                .sqrt();
            (r - d) as f32 // > 0 inside
        });
        Volume { data: VolumeData::F32(a), geometry: Geometry::identity(spacing), meta: Meta { kind: Kind::Hu, ..Meta::default() } }
    }

    #[test]
    fn sphere_is_closed_genus_zero_outward_and_accurate() {
        let v = sphere(40, 15.0, [1.0; 3]);
        let m = isosurface(&v, 0.0, 1, 0.0, Space::Lps).unwrap();
        let q = m.qc();
        assert!(q.watertight && q.manifold && q.consistently_oriented, "{q:?}");
        assert_eq!(q.euler_characteristic, 2);
        assert_eq!(q.components, 1);
        let exact = 4.0 / 3.0 * std::f64::consts::PI * 15f64.powi(3) / 1000.0;
        assert!((q.enclosed_ml - exact).abs() / exact < 0.01, "{} vs {exact}", q.enclosed_ml);
    }

    #[test]
    fn box_touching_the_border_is_capped_and_flips_keep_normals_outward() {
        let a = Array3::from_shape_fn((6, 7, 8), |(z, y, x)| if z < 6 && y > 1 && x > 0 { 1u8 } else { 0 });
        for dir in [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]] {
            let g = Geometry { spacing: [0.5, 0.7, 2.0], origin: [3.0, 4.0, 5.0], direction: dir };
            let v = Volume { data: VolumeData::U8(a.clone()), geometry: g, meta: Meta { kind: Kind::Mask, ..Meta::default() } };
            for space in [Space::Lps, Space::Ras, Space::Voxel] {
                let q = isosurface(&v, 0.5, 1, 0.0, space).unwrap().qc();
                assert!(q.watertight && q.manifold, "{q:?}");
                assert_eq!(q.euler_characteristic, 2);
                assert!(q.enclosed_ml > 0.0, "{space:?} {dir:?}: {}", q.enclosed_ml);
                assert_eq!(q.degenerate_faces, 0);
            }
        }
    }

    #[test]
    fn voxels_exactly_at_the_level_do_not_stack_vertices() {
        // Integer data at an integer level (CT at 400 HU): every vertex keeps its own position, so
        // viewers that merge STL vertices by position still see a closed manifold.
        let a = Array3::from_shape_fn((6, 7, 8), |(z, y, x)| ((x + 2 * y + 3 * z) % 3) as u8);
        let m = marching_cubes(&a.view(), 1.0, 1);
        let mut pos: Vec<[u32; 3]> = m.vertices.iter().map(|v| v.map(|c| c.to_bits())).collect();
        pos.sort_unstable();
        pos.dedup();
        assert_eq!(pos.len(), m.vertices.len());
        assert_eq!(m.qc().degenerate_faces, 0);
    }

    #[test]
    fn writers_produce_readable_files() {
        let m = isosurface(&sphere(12, 4.0, [1.0; 3]), 0.0, 1, 0.0, Space::Lps).unwrap();
        let mut stl = Vec::new();
        m.write_stl_binary(&mut stl, Space::Lps).unwrap();
        assert_eq!(stl.len(), 84 + 50 * m.triangles.len());
        assert_eq!(u32::from_le_bytes([stl[80], stl[81], stl[82], stl[83]]) as usize, m.triangles.len());
        let mut obj = Vec::new();
        m.write_obj(&mut obj, Space::Lps).unwrap();
        let text = String::from_utf8(obj).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("v ")).count(), m.vertices.len());
        assert_eq!(text.lines().filter(|l| l.starts_with("f ")).count(), m.triangles.len());
    }

    #[test]
    fn taubin_keeps_volume() {
        let mut m = isosurface(&sphere(30, 10.0, [1.0; 3]), 0.0, 1, 0.0, Space::Lps).unwrap();
        let before = m.area_volume().1;
        m.taubin(10);
        let after = m.area_volume().1;
        assert!((after - before).abs() / before < 0.02, "{before} -> {after}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_fields_give_closed_manifolds(bits in proptest::collection::vec(0u8..2, 5 * 6 * 7)) {
            let a = Array3::from_shape_vec((5, 6, 7), bits).unwrap();
            let m = marching_cubes(&a.view(), 0.5, 1);
            prop_assume!(!m.triangles.is_empty());
            let q = m.qc();
            prop_assert!(q.watertight, "{:?}", q);
            prop_assert!(q.manifold, "{:?}", q);
            prop_assert!(q.enclosed_ml > 0.0);
        }
    }
}
