//! The marching-cubes case table, generated rather than typed in: for each of the 256 corner
//! sign patterns, the isoline segments on each cube face are chained into closed loops and each
//! loop is fanned into triangles. A face's segments depend on that face's four corners only, and
//! ambiguous faces always separate the inside corners, so neighbouring cubes agree on every
//! shared face: the surface has no cracks, and closed surfaces are watertight 2-manifolds.

use std::sync::OnceLock;

/// Corner offsets (x, y, z) of the unit cube, corner i.
pub const CORNERS: [[usize; 3]; 8] = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]];

/// The 12 edges as corner pairs.
pub const EDGES: [[usize; 2]; 12] = [[0, 1], [1, 2], [3, 2], [0, 3], [4, 5], [5, 6], [7, 6], [4, 7], [0, 4], [1, 5], [2, 6], [3, 7]];

/// Faces as corner cycles, counter-clockwise seen from outside the cube.
const FACES: [[usize; 4]; 6] = [
    [0, 3, 2, 1], // z = 0 (outside is -z)
    [4, 5, 6, 7], // z = 1
    [0, 1, 5, 4], // y = 0
    [3, 7, 6, 2], // y = 1
    [0, 4, 7, 3], // x = 0
    [1, 2, 6, 5], // x = 1
];

fn edge_of(a: usize, b: usize) -> usize {
    EDGES.iter().position(|e| (e[0] == a && e[1] == b) || (e[0] == b && e[1] == a)).expect("cube edge")
}

/// The value that stands for "this loop's centroid" in a triangle.
pub const CENTROID: u8 = 12;

/// One closed isoline loop of a case and its triangles (edge indices, or [`CENTROID`]).
#[derive(Debug, Clone, Default)]
pub struct Loop {
    pub edges: Vec<u8>,
    pub tris: Vec<[u8; 3]>,
}

fn share_face(e1: usize, e2: usize) -> bool {
    FACES.iter().any(|f| {
        let on = |e: usize| (0..4).any(|i| edge_of(f[i], f[(i + 1) % 4]) == e);
        on(e1) && on(e2)
    })
}

/// Loops (with triangles) for one case; bit i of `case` set = corner i is inside.
fn triangulate(case: usize) -> Vec<Loop> {
    let inside = |c: usize| case & (1 << c) != 0;
    // Directed segments: from the crossing where a walk (CCW from outside) leaves an inside run
    // to the crossing where it entered that run.
    let mut next_of = [usize::MAX; 12];
    for f in FACES {
        let Some(k) = (0..4).find(|&i| !inside(f[i])) else { continue };
        // Walk the face starting at an outside corner.
        let mut enter = None;
        for s in 0..4 {
            let (a, b) = (f[(k + s) % 4], f[(k + s + 1) % 4]);
            match (inside(a), inside(b)) {
                (false, true) => enter = Some(edge_of(a, b)),
                (true, false) => {
                    let leave = edge_of(a, b);
                    if let Some(e) = enter.take() {
                        next_of[leave] = e;
                    }
                }
                _ => {}
            }
        }
    }
    let mut used = [false; 12];
    let mut loops = Vec::new();
    for start in 0..12 {
        if next_of[start] == usize::MAX || used[start] {
            continue;
        }
        let mut lp = Vec::new();
        let mut e = start;
        while !used[e] {
            used[e] = true;
            lp.push(e);
            e = next_of[e];
        }
        // Fan from an apex whose diagonals cross the cube's interior; a diagonal lying on a
        // face could also be drawn by the neighbouring cube, so then fan around the centroid.
        let n = lp.len();
        let apex = (0..n).find(|&a| (2..n.saturating_sub(1)).all(|k| !share_face(lp[a], lp[(a + k) % n])));
        let mut tris = Vec::new();
        match apex {
            Some(a) if n >= 3 => {
                for i in 1..n - 1 {
                    tris.push([lp[a] as u8, lp[(a + i + 1) % n] as u8, lp[(a + i) % n] as u8]);
                }
            }
            _ => {
                for i in 0..n {
                    tris.push([CENTROID, lp[(i + 1) % n] as u8, lp[i] as u8]);
                }
            }
        }
        loops.push(Loop { edges: lp.iter().map(|&e| e as u8).collect(), tris });
    }
    loops
}

/// The table: loops per case.
pub fn table() -> &'static [Vec<Loop>; 256] {
    static T: OnceLock<[Vec<Loop>; 256]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(triangulate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivial_cases_are_empty_and_single_corners_give_one_triangle() {
        assert!(table()[0].is_empty());
        assert!(table()[255].is_empty());
        for c in 0..8 {
            assert_eq!(table()[1 << c].len(), 1);
            assert_eq!(table()[1 << c][0].tris.len(), 1);
            assert_eq!(table()[255 ^ (1 << c)][0].tris.len(), 1);
        }
        // Two inside corners on one edge: a quad, two triangles, no centroid.
        assert_eq!(table()[0b11][0].tris.len(), 2);
        assert!(table()[0b11][0].tris.iter().all(|t| !t.contains(&CENTROID)));
    }

    #[test]
    fn every_case_uses_each_crossing_edge_and_closes_loops() {
        for (case, tris) in table().iter().enumerate() {
            let crossing: Vec<usize> = (0..12).filter(|&e| ((case >> EDGES[e][0]) & 1) != ((case >> EDGES[e][1]) & 1)).collect();
            let mut used: Vec<usize> = tris.iter().flat_map(|l| l.edges.iter().map(|&e| e as usize)).collect();
            used.sort();
            used.dedup();
            assert_eq!(used, crossing, "case {case}");
        }
    }
}
