//! Where voxels are: spacing, origin and direction cosines in DICOM patient space (LPS, mm),
//! conversions index <-> world, LPS <-> RAS, and the NIfTI sform/qform (with the quaternion).
//!
//! Index order is (i, j, k) = (x, y, z) = (column, row, slice): the *reverse* of the `[z, y, x]`
//! order of the voxel array. `direction[a]` is the unit vector (in LPS) along index axis `a`;
//! after a gantry tilt is kept, the three axes need not be orthogonal.

use serde::{Deserialize, Serialize};

pub type Vec3 = [f64; 3];
pub type Mat3 = [[f64; 3]; 3];
pub type Mat4 = [[f64; 4]; 4];

/// The grid of a volume in patient space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Voxel size along index axes i, j, k (x, y, z), in mm.
    pub spacing: Vec3,
    /// LPS position (mm) of the centre of voxel (0, 0, 0).
    pub origin: Vec3,
    /// `direction[a]` = LPS unit vector of index axis a (a = 0: i/x/columns, 1: j/y/rows, 2: k/z/slices).
    pub direction: Mat3,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry::identity([1.0; 3])
    }
}

/// (x, y, z) from an array-order [z, y, x] triple (shape, index, box bound).
pub fn xyz_from_zyx<T: Copy>(zyx: [T; 3]) -> [T; 3] {
    [zyx[2], zyx[1], zyx[0]]
}

/// Array order [z, y, x] from an (x, y, z) triple.
pub fn zyx_from_xyz<T: Copy>(xyz: [T; 3]) -> [T; 3] {
    [xyz[2], xyz[1], xyz[0]]
}

/// The array axis (0 = z) of a geometry axis (0 = x), and the other way round.
pub const fn array_axis(axis: usize) -> usize {
    2 - axis
}

pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}
pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
pub fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
pub fn normalize(a: Vec3) -> Vec3 {
    let n = norm(a);
    if n > 0.0 { scale(a, 1.0 / n) } else { a }
}

pub fn det3(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Inverse of a 3x3 matrix, `None` when singular.
pub fn inv3(m: &Mat3) -> Option<Mat3> {
    let d = det3(m);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let (a, b) = ((j + 1) % 3, (j + 2) % 3);
            let (c, e) = ((i + 1) % 3, (i + 2) % 3);
            r[i][j] = (m[a][c] * m[b][e] - m[a][e] * m[b][c]) / d;
        }
    }
    Some(r)
}

impl Geometry {
    /// Axis-aligned LPS grid at the origin.
    pub fn identity(spacing: Vec3) -> Self {
        Geometry { spacing, origin: [0.0; 3], direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] }
    }

    /// The 3x3 matrix M (rows = LPS components, columns = index axes) with world = origin + M * ijk.
    pub fn index_matrix(&self) -> Mat3 {
        let mut m = [[0.0; 3]; 3];
        for r in 0..3 {
            for a in 0..3 {
                m[r][a] = self.direction[a][r] * self.spacing[a];
            }
        }
        m
    }

    /// LPS position (mm) of a continuous index (i, j, k) = (x, y, z).
    pub fn index_to_world(&self, ijk: Vec3) -> Vec3 {
        self.index_to_world_with(&self.index_matrix(), ijk)
    }

    /// [`Self::index_to_world`] with the [`Self::index_matrix`] made once, for callers that map
    /// many points (a mesh's vertices).
    pub fn index_to_world_with(&self, m: &Mat3, ijk: Vec3) -> Vec3 {
        let mut w = self.origin;
        for r in 0..3 {
            for a in 0..3 {
                w[r] += m[r][a] * ijk[a];
            }
        }
        w
    }

    /// Continuous index (i, j, k) of an LPS position; `None` for a degenerate grid.
    pub fn world_to_index(&self, lps: Vec3) -> Option<Vec3> {
        let inv = inv3(&self.index_matrix())?;
        let d = sub(lps, self.origin);
        let mut ijk = [0.0; 3];
        for a in 0..3 {
            ijk[a] = inv[a][0] * d[0] + inv[a][1] * d[1] + inv[a][2] * d[2];
        }
        Some(ijk)
    }

    /// The index axis (0 = x, 1 = y, 2 = z) whose direction is closest to `v`, either way.
    pub fn index_axis_along(&self, v: Vec3) -> usize {
        (0..3).max_by(|&a, &b| dot(self.direction[a], v).abs().total_cmp(&dot(self.direction[b], v).abs())).unwrap_or(0)
    }

    /// The array axes (0 = slices) that run closest to the patient's head-feet, front-back and
    /// right-left axes, in that order: [0, 1, 2] for an axial array, whichever way its axes
    /// point. Each anatomical axis gets its own array axis (the assignment with the largest
    /// total alignment), so oblique grids get one too.
    pub fn anatomical_array_axes(&self) -> [usize; 3] {
        const PERMS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        // LPS z (head-feet), y (front-back), x (right-left), each against array axis p[k].
        let fit = |p: &[usize; 3]| (0..3).map(|k| self.direction[array_axis(p[k])][2 - k].abs()).sum::<f64>();
        PERMS.into_iter().max_by(|a, b| fit(a).total_cmp(&fit(b))).unwrap_or([0, 1, 2])
    }

    /// The 4x4 index -> LPS affine.
    pub fn affine_lps(&self) -> Mat4 {
        let m = self.index_matrix();
        let mut a = [[0.0; 4]; 4];
        for r in 0..3 {
            a[r][..3].copy_from_slice(&m[r]);
            a[r][3] = self.origin[r];
        }
        a[3][3] = 1.0;
        a
    }

    /// The 4x4 index -> RAS affine, as NIfTI's sform (and nibabel's `img.affine`) holds it.
    pub fn affine_ras(&self) -> Mat4 {
        let mut a = self.affine_lps();
        for c in 0..4 {
            a[0][c] = -a[0][c];
            a[1][c] = -a[1][c];
        }
        a
    }

    /// Rebuild a geometry from an index -> RAS affine (NIfTI sform).
    pub fn from_affine_ras(a: &Mat4) -> Self {
        let mut spacing = [0.0; 3];
        let mut direction = [[0.0; 3]; 3];
        for ax in 0..3 {
            let col = [-a[0][ax], -a[1][ax], a[2][ax]];
            let n = norm(col);
            spacing[ax] = n;
            direction[ax] = if n > 0.0 { scale(col, 1.0 / n) } else { unit(ax) };
        }
        Geometry { spacing, origin: [-a[0][3], -a[1][3], a[2][3]], direction }
    }

    /// True when the three axes are mutually orthogonal (no shear from a kept gantry tilt).
    pub fn is_orthogonal(&self, tol: f64) -> bool {
        let d = &self.direction;
        dot(d[0], d[1]).abs() < tol && dot(d[0], d[2]).abs() < tol && dot(d[1], d[2]).abs() < tol
    }

    /// The three letters naming where each index axis points, in RAS convention as nibabel's
    /// `aff2axcodes` reports (e.g. a plain DICOM axial grid is "LPS").
    pub fn axis_codes(&self) -> String {
        self.direction
            .iter()
            .map(|d| {
                let (ax, v) = d.iter().enumerate().fold((0, 0.0f64), |acc, (i, &v)| if v.abs() > acc.1.abs() { (i, v) } else { acc });
                match (ax, v > 0.0) {
                    (0, true) => 'L',
                    (0, false) => 'R',
                    (1, true) => 'P',
                    (1, false) => 'A',
                    (2, true) => 'S',
                    _ => 'I',
                }
            })
            .collect()
    }

    /// NIfTI qform parameters: (quatern b, c, d), qoffset (RAS), qfac, spacing.
    /// Port of `nifti_mat44_to_quatern` (nifti1_io.c), including its polar decomposition, so a
    /// sheared sform still gets the closest rotation.
    pub fn qform(&self) -> Qform {
        let a = self.affine_ras();
        let mut r = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                r[i][j] = a[i][j];
            }
        }
        // Normalise columns.
        for j in 0..3 {
            let n = (r[0][j] * r[0][j] + r[1][j] * r[1][j] + r[2][j] * r[2][j]).sqrt();
            if n > 0.0 {
                for row in r.iter_mut() {
                    row[j] /= n;
                }
            } else {
                for (i, row) in r.iter_mut().enumerate() {
                    row[j] = if i == j { 1.0 } else { 0.0 };
                }
            }
        }
        let mut q = polar(&r);
        let qfac = if det3(&q) > 0.0 { 1.0 } else { -1.0 };
        if qfac < 0.0 {
            for row in q.iter_mut() {
                row[2] = -row[2];
            }
        }
        let (r11, r12, r13) = (q[0][0], q[0][1], q[0][2]);
        let (r21, r22, r23) = (q[1][0], q[1][1], q[1][2]);
        let (r31, r32, r33) = (q[2][0], q[2][1], q[2][2]);
        let aa = r11 + r22 + r33 + 1.0;
        let (mut qa, mut b, mut c, mut d);
        if aa > 0.5 {
            qa = 0.5 * aa.sqrt();
            b = 0.25 * (r32 - r23) / qa;
            c = 0.25 * (r13 - r31) / qa;
            d = 0.25 * (r21 - r12) / qa;
        } else {
            let xd = 1.0 + r11 - (r22 + r33);
            let yd = 1.0 + r22 - (r11 + r33);
            let zd = 1.0 + r33 - (r11 + r22);
            if xd > 1.0 {
                b = 0.5 * xd.sqrt();
                c = 0.25 * (r12 + r21) / b;
                d = 0.25 * (r13 + r31) / b;
                qa = 0.25 * (r32 - r23) / b;
            } else if yd > 1.0 {
                c = 0.5 * yd.sqrt();
                b = 0.25 * (r12 + r21) / c;
                d = 0.25 * (r23 + r32) / c;
                qa = 0.25 * (r13 - r31) / c;
            } else {
                d = 0.5 * zd.sqrt();
                b = 0.25 * (r13 + r31) / d;
                c = 0.25 * (r23 + r32) / d;
                qa = 0.25 * (r21 - r12) / d;
            }
            if qa < 0.0 {
                b = -b;
                c = -c;
                d = -d;
                qa = -qa;
            }
        }
        let _ = qa;
        Qform { quatern: [b, c, d], offset: [a[0][3], a[1][3], a[2][3]], qfac, spacing: self.spacing }
    }

    /// Geometry from NIfTI qform parameters (port of `nifti_quatern_to_mat44`).
    pub fn from_qform(q: &Qform) -> Self {
        let [b, c, d] = q.quatern;
        let mut a = 1.0 - (b * b + c * c + d * d);
        let (b, c, d) = if a < 1e-7 {
            let s = 1.0 / (b * b + c * c + d * d).sqrt();
            a = 0.0;
            (b * s, c * s, d * s)
        } else {
            a = a.sqrt();
            (b, c, d)
        };
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let qfac = if q.qfac < 0.0 { -1.0 } else { 1.0 };
        let mut m = [[0.0; 4]; 4];
        for i in 0..3 {
            m[i][0] = r[i][0] * q.spacing[0];
            m[i][1] = r[i][1] * q.spacing[1];
            m[i][2] = r[i][2] * q.spacing[2] * qfac;
            m[i][3] = q.offset[i];
        }
        m[3][3] = 1.0;
        Geometry::from_affine_ras(&m)
    }

    /// Why this grid cannot place voxels, if it cannot: a spacing that is not a positive finite
    /// size, an origin off the map, directions that are not finite unit vectors spanning space.
    pub fn invalid(&self) -> Option<String> {
        if self.spacing.iter().any(|s| !s.is_finite() || *s <= 0.0 || *s > 1e4) {
            return Some(format!("voxel size {:?} mm: each must be positive and finite", self.spacing));
        }
        if self.origin.iter().any(|v| !v.is_finite() || v.abs() > 1e7) {
            return Some(format!("origin {:?} mm is not a finite position", self.origin));
        }
        let d = &self.direction;
        if d.iter().flatten().any(|v| !v.is_finite()) || d.iter().any(|a| (norm(*a) - 1.0).abs() > 1e-3) {
            return Some(format!("axis directions {d:?} are not finite unit vectors"));
        }
        if det3(d).abs() < 1e-3 {
            return Some(format!("axis directions {d:?} do not span space (the grid is flat)"));
        }
        None
    }

    /// How far apart (mm) two grids of `shape_zyx` put the same voxel index, at the worst of the
    /// eight corners (the grids are affine, so no voxel is further off). 0 for the same grid;
    /// a mirrored or shifted one is off by up to the volume's extent.
    pub fn max_offset_mm(&self, other: &Geometry, shape_zyx: [usize; 3]) -> f64 {
        self.corners(shape_zyx).iter().zip(other.corners(shape_zyx)).map(|(a, b)| norm(sub(*a, b))).fold(0.0, f64::max)
    }

    /// Same shape and every voxel within 1% of the smallest voxel size of the same place: float32
    /// headers written by different tools (dcm2niix, nibabel, ctprep) agree this well.
    pub fn same_grid(&self, shape: [usize; 3], other: &Geometry, other_shape: [usize; 3]) -> bool {
        let tol = 0.01 * self.spacing.iter().chain(&other.spacing).fold(f64::INFINITY, |a, &b| a.min(b));
        shape == other_shape && self.max_offset_mm(other, shape) <= tol
    }

    /// The LPS centres of the eight corner voxels of a grid of `shape_zyx`.
    pub fn corners(&self, shape_zyx: [usize; 3]) -> [Vec3; 8] {
        let n = [shape_zyx[2] as f64 - 1.0, shape_zyx[1] as f64 - 1.0, shape_zyx[0] as f64 - 1.0];
        let mut out = [[0.0; 3]; 8];
        for (c, o) in out.iter_mut().enumerate() {
            let ijk = [if c & 1 != 0 { n[0] } else { 0.0 }, if c & 2 != 0 { n[1] } else { 0.0 }, if c & 4 != 0 { n[2] } else { 0.0 }];
            *o = self.index_to_world(ijk);
        }
        out
    }
}

fn unit(a: usize) -> Vec3 {
    let mut v = [0.0; 3];
    v[a] = 1.0;
    v
}

/// Closest orthogonal matrix (polar decomposition by Newton iteration, as nifti1_io does).
fn polar(m: &Mat3) -> Mat3 {
    let mut x = *m;
    for _ in 0..100 {
        let Some(inv) = inv3(&x) else { return x };
        let mut next = [[0.0; 3]; 3];
        let mut change: f64 = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                next[i][j] = 0.5 * (x[i][j] + inv[j][i]);
                change = change.max((next[i][j] - x[i][j]).abs());
            }
        }
        x = next;
        if change < 1e-12 {
            break;
        }
    }
    x
}

/// NIfTI-1 qform parameters (RAS).
#[derive(Debug, Clone, PartialEq)]
pub struct Qform {
    pub quatern: Vec3,
    pub offset: Vec3,
    pub qfac: f64,
    pub spacing: Vec3,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Vec3, b: Vec3, tol: f64) -> bool {
        (0..3).all(|i| (a[i] - b[i]).abs() < tol)
    }

    fn geometries() -> Vec<Geometry> {
        let s = 0.5f64.sqrt();
        let t = 18.5f64.to_radians();
        vec![
            Geometry { spacing: [0.7, 0.7, 1.25], origin: [-172.0, -202.8, -20.5], ..Geometry::default() },
            // x flipped (enhanced CT sample): IOP [-1,0,0,0,1,0].
            Geometry {
                spacing: [0.5, 0.5, 2.0],
                origin: [10.0, 20.0, 30.0],
                direction: [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
            },
            // feet-first: slices run towards the feet.
            Geometry { spacing: [0.7, 0.7, 2.5], origin: [1.0, 2.0, 3.0], direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]] },
            // oblique 45 degrees about z.
            Geometry { spacing: [1.0, 2.0, 3.0], origin: [5.0, -5.0, 0.0], direction: [[s, s, 0.0], [-s, s, 0.0], [0.0, 0.0, 1.0]] },
            // tilted rows (GE head, 18.5 deg), slices along z: sheared.
            Geometry {
                spacing: [0.5, 0.5, 5.0],
                origin: [0.0; 3],
                direction: [[1.0, 0.0, 0.0], [0.0, t.cos(), -t.sin()], [0.0, 0.0, 1.0]],
            },
        ]
    }

    #[test]
    fn index_world_round_trip() {
        for g in geometries() {
            for ijk in [[0.0, 0.0, 0.0], [3.0, 4.5, 7.0], [-1.0, 100.0, 2.0]] {
                let w = g.index_to_world(ijk);
                assert!(close(g.world_to_index(w).unwrap(), ijk, 1e-9), "{g:?}");
            }
        }
    }

    #[test]
    fn ras_is_lps_with_x_and_y_negated() {
        let g = &geometries()[0];
        let ras = g.affine_ras();
        assert_eq!(ras[0][0], -0.7);
        assert_eq!(ras[1][1], -0.7);
        assert_eq!(ras[2][2], 1.25);
        assert_eq!([ras[0][3], ras[1][3], ras[2][3]], [172.0, 202.8, -20.5]);
        for g in geometries() {
            let back = Geometry::from_affine_ras(&g.affine_ras());
            assert!(close(back.origin, g.origin, 1e-12) && close(back.spacing, g.spacing, 1e-12));
            for a in 0..3 {
                assert!(close(back.direction[a], g.direction[a], 1e-12));
            }
        }
    }

    #[test]
    fn qform_round_trips_every_orthogonal_geometry() {
        for g in geometries().into_iter().filter(|g| g.is_orthogonal(1e-9)) {
            let q = g.qform();
            let back = Geometry::from_qform(&q);
            for ijk in [[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]] {
                assert!(close(back.index_to_world(ijk), g.index_to_world(ijk), 1e-6), "{g:?} -> {q:?}");
            }
        }
    }

    #[test]
    fn qfac_is_negative_for_left_handed_grids() {
        // Plain DICOM axial (LPS, slices towards the head): RAS affine diag(-,-,+) has det > 0.
        assert_eq!(geometries()[0].qform().qfac, 1.0);
        // Feet-first: det < 0, so qfac = -1 as nifti1_io and dcm2niix write it.
        assert_eq!(geometries()[2].qform().qfac, -1.0);
    }

    #[test]
    fn axis_codes_name_directions() {
        assert_eq!(geometries()[0].axis_codes(), "LPS");
        assert_eq!(geometries()[1].axis_codes(), "RPI");
        assert_eq!(geometries()[2].axis_codes(), "LPI");
    }

    #[test]
    fn sheared_geometry_is_not_orthogonal_but_round_trips_through_sform() {
        let g = &geometries()[4];
        assert!(!g.is_orthogonal(1e-6));
        let back = Geometry::from_affine_ras(&g.affine_ras());
        assert!(close(back.index_to_world([3.0, 4.0, 5.0]), g.index_to_world([3.0, 4.0, 5.0]), 1e-9));
    }

    #[test]
    fn anatomical_array_axes_find_head_feet_front_back_and_sides() {
        // Axial, either way round: slices, rows, columns.
        assert_eq!(Geometry::identity([1.0; 3]).anatomical_array_axes(), [0, 1, 2]);
        let feet_first = Geometry { direction: [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]], ..Geometry::identity([1.0; 3]) };
        assert_eq!(feet_first.anatomical_array_axes(), [0, 1, 2]);
        // Coronal: columns run right-left, rows head to feet, slices front to back.
        let coronal = Geometry { direction: [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], ..Geometry::identity([1.0; 3]) };
        assert_eq!(coronal.anatomical_array_axes(), [1, 0, 2]);
        // Sagittal: columns front-back, rows head to feet, slices right-left.
        let sagittal = Geometry { direction: [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], ..Geometry::identity([1.0; 3]) };
        assert_eq!(sagittal.anatomical_array_axes(), [1, 2, 0]);
        // Oblique by 30 degrees about x: still axial.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let oblique = Geometry { direction: [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], ..Geometry::identity([1.0; 3]) };
        assert_eq!(oblique.anatomical_array_axes(), [0, 1, 2]);
    }
}
