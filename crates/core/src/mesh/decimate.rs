//! Quadric error decimation (Garland & Heckbert 1997): edges collapse cheapest first, each vertex
//! carrying the sum of its faces' plane quadrics, the merged vertex placed where that sum is
//! smallest. Collapses that would break the surface are refused, so a watertight 2-manifold stays
//! one: the link condition (the edge's endpoints share exactly the two opposite vertices), no
//! vertex left with fewer than three faces, no face flipped or squashed flat. Open edges are kept.

use super::Mesh;
use crate::geometry::{cross, dot, sub};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What a decimation did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Decimation {
    pub faces_before: usize,
    pub faces_after: usize,
    /// Largest quadric error of an accepted collapse (mm^2: squared distance to the original planes).
    pub max_error_mm2: f64,
    /// Sorted passes over the edges before the last collapses went through a queue.
    pub passes: usize,
}

/// Symmetric 4x4 quadric: a2 ab ac ad b2 bc bd c2 cd d2.
type Quadric = [f64; 10];

fn plane_quadric(n: [f64; 3], d: f64, w: f64) -> Quadric {
    let [a, b, c] = n;
    [a * a, a * b, a * c, a * d, b * b, b * c, b * d, c * c, c * d, d * d].map(|v| v * w)
}

fn add(q: &mut Quadric, r: &Quadric) {
    for (x, y) in q.iter_mut().zip(r) {
        *x += y;
    }
}

fn error(q: &Quadric, p: [f64; 3]) -> f64 {
    let [x, y, z] = p;
    q[0] * x * x
        + 2.0 * q[1] * x * y
        + 2.0 * q[2] * x * z
        + 2.0 * q[3] * x
        + q[4] * y * y
        + 2.0 * q[5] * y * z
        + 2.0 * q[6] * y
        + q[7] * z * z
        + 2.0 * q[8] * z
        + q[9]
}

/// The point minimising `q`, when the 3x3 system is well posed.
fn minimiser(q: &Quadric) -> Option<[f64; 3]> {
    let m = [[q[0], q[1], q[2]], [q[1], q[4], q[5]], [q[2], q[5], q[7]]];
    let b = [-q[3], -q[6], -q[8]];
    // Cramer's rule: the determinant of m, then of m with one column replaced by b.
    let det3 = |k: [[f64; 3]; 3]| dot(k[0], cross(k[1], k[2]));
    let det = det3(m);
    let scale = (q[0] + q[4] + q[7]).powi(3);
    // Also refuses NaN (a quadric of degenerate faces).
    if det.abs().partial_cmp(&(1e-9 * scale)) != Some(Ordering::Greater) {
        return None;
    }
    let solve = |col: usize| {
        let mut k = m;
        for r in 0..3 {
            k[r][col] = b[r];
        }
        det3(k) / det
    };
    Some([solve(0), solve(1), solve(2)])
}

/// The vertices other than `me` of `faces`, sorted, each once, into `out`.
fn ring_of(tris: &[[u32; 3]], faces: &[u32], me: u32, out: &mut Vec<u32>) {
    out.clear();
    out.extend(faces.iter().flat_map(|&f| tris[f as usize]).filter(|&w| w != me));
    out.sort_unstable();
    out.dedup();
}

struct State {
    pos: Vec<[f64; 3]>,
    quadric: Vec<Quadric>,
    tris: Vec<[u32; 3]>,
    tri_alive: Vec<bool>,
    /// Faces around each vertex (may hold dead faces; filtered on use).
    faces: Vec<Vec<u32>>,
    /// Vertices on an open edge never move.
    locked: Vec<bool>,
    scratch: [Vec<u32>; 4],
}

impl State {
    fn live_faces(&mut self, v: u32) -> &[u32] {
        let alive = &self.tri_alive;
        self.faces[v as usize].retain(|&f| alive[f as usize]);
        &self.faces[v as usize]
    }

    /// The vertices sharing a live face with `u`.
    fn ring(&mut self, u: u32) -> Vec<u32> {
        self.live_faces(u);
        let mut r = Vec::new();
        ring_of(&self.tris, &self.faces[u as usize], u, &mut r);
        r
    }

    /// Cost and position of merging u and v.
    fn placement(&self, u: u32, v: u32) -> (f64, [f64; 3]) {
        let mut q = self.quadric[u as usize];
        add(&mut q, &self.quadric[v as usize]);
        let (a, b) = (self.pos[u as usize], self.pos[v as usize]);
        let mid = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0, (a[2] + b[2]) / 2.0];
        // The optimum, unless it lies far from the edge (a nearly flat quadric); else the best of
        // the endpoints and the midpoint.
        let len2 = dot(sub(a, b), sub(a, b));
        let target = minimiser(&q)
            .filter(|p| dot(sub(*p, mid), sub(*p, mid)) <= 4.0 * len2)
            .unwrap_or_else(|| [a, b, mid].into_iter().min_by(|x, y| error(&q, *x).total_cmp(&error(&q, *y))).unwrap_or(mid));
        (error(&q, target).max(0.0), target)
    }

    /// Collapse v into u at `p` when that keeps the surface a manifold with no flipped face.
    fn try_collapse(&mut self, u: u32, v: u32, p: [f64; 3]) -> bool {
        // Scratch lists live in the state: this runs about a million times.
        let [mut fu, mut fv, mut ru, mut rv] = std::mem::take(&mut self.scratch);
        fu.clear();
        fu.extend_from_slice(self.live_faces(u));
        fv.clear();
        fv.extend_from_slice(self.live_faces(v));
        let ok = self.collapse_with(u, v, p, &fu, &fv, &mut ru, &mut rv);
        self.scratch = [fu, fv, ru, rv];
        ok
    }

    fn collapse_with(&mut self, u: u32, v: u32, p: [f64; 3], fu: &[u32], fv: &[u32], ru: &mut Vec<u32>, rv: &mut Vec<u32>) -> bool {
        let mut shared = [0u32; 2];
        let mut n_shared = 0;
        for f in fu.iter().copied().filter(|f| fv.contains(f)) {
            if n_shared == 2 {
                return false;
            }
            shared[n_shared] = f;
            n_shared += 1;
        }
        if n_shared != 2 {
            return false;
        }
        let opposite = shared.map(|f| self.tris[f as usize].into_iter().find(|&w| w != u && w != v).unwrap_or(u));
        if opposite[0] == opposite[1] {
            return false;
        }
        // Link condition: u and v have exactly the two opposite vertices as common neighbours.
        ring_of(&self.tris, fu, u, ru);
        ring_of(&self.tris, fv, v, rv);
        let common = ru.iter().filter(|w| **w != v && rv.binary_search(w).is_ok()).count();
        if common != 2 {
            return false;
        }
        for &w in &opposite {
            if self.live_faces(w).len() <= 3 {
                return false;
            }
        }
        // No face around u or v may flip or collapse to a sliver at the new position.
        for &f in fu.iter().chain(fv) {
            if shared.contains(&f) {
                continue;
            }
            let t = self.tris[f as usize];
            let before = t.map(|w| self.pos[w as usize]);
            let after = t.map(|w| if w == u || w == v { p } else { self.pos[w as usize] });
            let n0 = cross(sub(before[1], before[0]), sub(before[2], before[0]));
            let n1 = cross(sub(after[1], after[0]), sub(after[2], after[0]));
            let (l0, l1) = (dot(n0, n0).sqrt(), dot(n1, n1).sqrt());
            if l1 <= 1e-12 * (1.0 + l0) || dot(n0, n1) < 0.2 * l0 * l1 {
                return false;
            }
        }
        // Apply.
        for &f in &shared {
            self.tri_alive[f as usize] = false;
        }
        for &f in fv {
            if self.tri_alive[f as usize] {
                for w in self.tris[f as usize].iter_mut() {
                    if *w == v {
                        *w = u;
                    }
                }
                self.faces[u as usize].push(f);
            }
        }
        self.faces[v as usize].clear();
        self.pos[u as usize] = p;
        let qv = self.quadric[v as usize];
        add(&mut self.quadric[u as usize], &qv);
        true
    }
}

/// Collapse cheapest first with a priority queue until `alive` faces reach `target`.
fn greedy(st: &mut State, cand: Vec<(u64, u32, u32)>, alive: &mut usize, target: usize, report: &mut Decimation) {
    use std::cmp::Reverse;
    // Entries go stale when an endpoint moves: `stamp` counts each vertex's moves.
    let mut stamp = vec![0u32; st.pos.len()];
    let mut heap: BinaryHeap<(Reverse<u64>, u32, u32, u32, u32)> = cand.into_iter().map(|(c, u, v)| (Reverse(c), u, v, 0, 0)).collect();
    while *alive > target {
        let Some((_, u, v, su, sv)) = heap.pop() else { break };
        if (su, sv) != (stamp[u as usize], stamp[v as usize]) {
            continue;
        }
        let (cost, p) = st.placement(u, v);
        if !st.try_collapse(u, v, p) {
            continue;
        }
        *alive -= 2;
        report.max_error_mm2 = report.max_error_mm2.max(cost);
        stamp[u as usize] += 1;
        stamp[v as usize] += 1;
        // The edges around the merged vertex change cost.
        for w in st.ring(u) {
            if !st.locked[w as usize] {
                let (a, b) = (u.min(w), u.max(w));
                let c = st.placement(a, b).0;
                heap.push((Reverse(c.to_bits()), a, b, stamp[a as usize], stamp[b as usize]));
            }
        }
    }
}

impl Mesh {
    /// Reduce the mesh to about `keep` of its faces (0 < keep <= 1) by quadric error edge
    /// collapses, keeping a closed manifold closed and manifold.
    pub fn decimate(&mut self, keep: f64) -> Decimation {
        let faces_before = self.triangles.len();
        let target = ((faces_before as f64) * keep.clamp(0.0, 1.0)).round() as usize;
        let mut report = Decimation { faces_before, faces_after: faces_before, ..Decimation::default() };
        if target >= faces_before || faces_before == 0 {
            return report;
        }
        let mut st = State::new(self);
        // Passes rather than one priority queue (whose millions of cache-missing pops dominated):
        // each pass costs every live edge, sorts, and collapses the cheapest quarter in order,
        // skipping edges whose endpoint already moved this pass (their cost is stale) until the
        // next pass re-costs them.
        let mut alive = faces_before;
        let mut moved = vec![0u32; st.pos.len()];
        let _progress = crate::progress::task("decimating (faces removed)", (faces_before - target) as u64);
        let mut reported = alive;
        while alive > target {
            crate::progress::advance((reported - alive) as u64);
            reported = alive;
            let mut cand = st.candidates();
            if cand.is_empty() {
                break;
            }
            let budget = (alive - target).div_ceil(2);
            if budget * 8 <= cand.len() {
                // The last collapses go strictly cheapest first (a queue is small by now): a pass
                // would take dear edges while cheap ones wait, stale, for the next pass.
                greedy(&mut st, cand, &mut alive, target, &mut report);
                break;
            }
            // Only the cheapest quarter is walked: select it, sort just that.
            let quarter = cand.len().div_ceil(4);
            if quarter < cand.len() {
                cand.select_nth_unstable(quarter);
                cand.truncate(quarter);
            }
            cand.par_sort_unstable();
            report.passes += 1;
            let done = st.collapse_pass(&cand, budget, report.passes as u32, &mut moved, &mut report);
            alive -= 2 * done;
            if done == 0 {
                break;
            }
        }
        self.vertices = st.pos.iter().map(|p| p.map(|c| c as f32)).collect();
        self.triangles = st.tris.iter().zip(&st.tri_alive).filter(|(_, a)| **a).map(|(t, _)| *t).collect();
        self.compact();
        report.faces_after = self.triangles.len();
        report
    }
}

impl State {
    /// Positions, area-weighted face quadrics, faces per vertex, and the locked vertices: those
    /// on an edge not shared by exactly two faces running it in opposite directions (open,
    /// non-manifold or inconsistently wound) stay where they are.
    fn new(mesh: &Mesh) -> State {
        let nv = mesh.vertices.len();
        let mut st = State {
            pos: mesh.vertices.iter().map(|v| v.map(f64::from)).collect(),
            quadric: vec![[0.0; 10]; nv],
            tris: mesh.triangles.clone(),
            tri_alive: vec![true; mesh.triangles.len()],
            faces: vec![Vec::new(); nv],
            locked: vec![false; nv],
            scratch: Default::default(),
        };
        for (i, t) in st.tris.iter().enumerate() {
            let p = t.map(|w| st.pos[w as usize]);
            let n = cross(sub(p[1], p[0]), sub(p[2], p[0]));
            let len = dot(n, n).sqrt();
            if len > 0.0 {
                // Area-weighted plane through the face.
                let unit = n.map(|c| c / len);
                let q = plane_quadric(unit, -dot(unit, p[0]), len / 2.0);
                for &w in t {
                    add(&mut st.quadric[w as usize], &q);
                }
            }
            for &w in t {
                st.faces[w as usize].push(i as u32);
            }
        }
        let mut edges: Vec<(u32, u32, bool)> = st
            .tris
            .par_iter()
            .flat_map_iter(|t| [0, 1, 2].map(|k| (t[k].min(t[(k + 1) % 3]), t[k].max(t[(k + 1) % 3]), t[k] < t[(k + 1) % 3])))
            .collect();
        edges.par_sort_unstable();
        for group in edges.chunk_by(|x, y| (x.0, x.1) == (y.0, y.1)) {
            if !(group.len() == 2 && group[0].2 != group[1].2) {
                st.locked[group[0].0 as usize] = true;
                st.locked[group[0].1 as usize] = true;
            }
        }
        st
    }

    /// Every live, unlocked edge with its collapse cost.
    fn candidates(&self) -> Vec<(u64, u32, u32)> {
        self.tris
            .par_iter()
            .zip(&self.tri_alive)
            .filter(|(_, a)| **a)
            // On a consistently oriented closed surface each edge runs low-to-high in exactly
            // one of its two faces: every edge once, without sorting and deduplicating.
            .flat_map_iter(|(t, _)| [0, 1, 2].into_iter().map(move |k| (t[k], t[(k + 1) % 3])).filter(|(a, b)| a < b))
            .filter(|(a, b)| !self.locked[*a as usize] && !self.locked[*b as usize])
            .map(|(a, b)| (self.placement(a, b).0.to_bits(), a, b))
            .collect()
    }

    /// Collapse up to `budget` of the sorted candidates in order; returns how many were.
    fn collapse_pass(&mut self, cand: &[(u64, u32, u32)], budget: usize, pass: u32, moved: &mut [u32], report: &mut Decimation) -> usize {
        let mut done = 0usize;
        // The cheapest edge a collapse of this pass created (not in the list): the pass stops
        // before anything several times dearer, so the order stays close to cheapest first.
        let mut cheapest_new = f64::INFINITY;
        for &(bits, u, v) in cand {
            if done >= budget || f64::from_bits(bits) > 16.0 * cheapest_new {
                break;
            }
            let (cost, p) = self.placement(u, v);
            // An edge whose endpoint moved this pass is re-costed: still in turn (no dearer than
            // where the pass has got to) it goes now, else it waits for the next pass.
            if (moved[u as usize] == pass || moved[v as usize] == pass) && cost > f64::from_bits(bits) {
                continue;
            }
            if !self.try_collapse(u, v, p) {
                continue;
            }
            moved[u as usize] = pass;
            moved[v as usize] = pass;
            for w in self.ring(u) {
                if !self.locked[w as usize] {
                    cheapest_new = cheapest_new.min(self.placement(u.min(w), u.max(w)).0);
                }
            }
            done += 1;
            report.max_error_mm2 = report.max_error_mm2.max(cost);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::marching_cubes;
    use ndarray::Array3;

    fn sphere(n: usize, r: f64) -> Mesh {
        let c = (n as f64 - 1.0) / 2.0;
        let f = Array3::from_shape_fn((n, n, n), |(z, y, x)| {
            let d = ((x as f64 - c).powi(2) + (y as f64 - c).powi(2) + (z as f64 - c).powi(2)).sqrt();
            (r - d) as f32
        });
        marching_cubes(&f.view(), 0.0, 1)
    }

    #[test]
    fn a_decimated_sphere_stays_a_closed_sphere() {
        let mut m = sphere(40, 15.0);
        let (_, v0) = m.area_volume();
        let before = m.triangles.len();
        let r = m.decimate(0.1);
        assert_eq!(r.faces_before, before);
        // Within a few faces of the target (each collapse removes two).
        assert!((r.faces_after as f64 - before as f64 * 0.1).abs() <= 4.0, "{r:?}");
        let qc = m.qc();
        assert!(qc.watertight && qc.manifold && qc.consistently_oriented, "{qc:?}");
        assert_eq!(qc.euler_characteristic, 2);
        assert_eq!(qc.components, 1);
        assert_eq!(qc.degenerate_faces, 0);
        let (_, v1) = m.area_volume();
        assert!((v1 / v0 - 1.0).abs() < 0.01, "volume {v0} -> {v1}");
        // Every vertex still lies near the sphere.
        let c = 19.5f32;
        for v in &m.vertices {
            let d = ((v[0] - c).powi(2) + (v[1] - c).powi(2) + (v[2] - c).powi(2)).sqrt();
            assert!((d - 15.0).abs() < 0.5, "vertex at radius {d}");
        }
    }

    #[test]
    fn flat_faces_go_first_and_a_box_keeps_its_corners() {
        // A box: the flat sides collapse to almost nothing, the corners stay where they were.
        let f = Array3::from_shape_fn((20, 20, 20), |(z, y, x)| {
            if (3..17).contains(&z) && (3..17).contains(&y) && (3..17).contains(&x) { 1.0f32 } else { 0.0 }
        });
        let mut m = marching_cubes(&f.view(), 0.5, 1);
        let (_, v0) = m.area_volume();
        let r = m.decimate(0.02);
        let qc = m.qc();
        assert!(qc.watertight && qc.manifold, "{qc:?}");
        let (_, v1) = m.area_volume();
        // Flat sides and straight bevels are exactly representable: the volume does not change.
        assert!(r.faces_after <= 48 && r.max_error_mm2 < 1e-9, "{r:?}");
        assert!((v1 / v0 - 1.0).abs() < 1e-9, "volume {v0} -> {v1}");
    }

    #[test]
    fn keep_one_changes_nothing() {
        let mut m = sphere(12, 4.0);
        let before = m.clone();
        assert_eq!(m.decimate(1.0).faces_after, before.triangles.len());
        assert_eq!(m.triangles, before.triangles);
    }
}
