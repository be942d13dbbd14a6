//! Filters shared by resampling (anti-aliasing) and meshing (smoothing before the surface).

use ndarray::Axis;
use rayon::prelude::*;

/// Separable Gaussian smoothing, sigma per axis (x, y, z) in voxels, edges replicated.
pub fn gaussian_smooth(f: &mut ndarray::ArrayViewMut3<f32>, sigma_xyz: [f64; 3]) {
    for (k, &s) in sigma_xyz.iter().enumerate() {
        if s <= 0.01 {
            continue;
        }
        let axis = crate::geometry::array_axis(k);
        let r = (4.0 * s).ceil() as i64;
        let mut kern: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * s * s)).exp()).collect();
        let sum: f64 = kern.iter().sum();
        kern.iter_mut().for_each(|v| *v /= sum);
        let n = f.shape()[axis] as i64;
        let kern: Vec<f32> = kern.iter().map(|&k| k as f32).collect();
        let lanes: Vec<_> = f.lanes_mut(Axis(axis)).into_iter().collect();
        lanes.into_par_iter().for_each_init(
            || vec![0f32; n as usize + 2 * r as usize],
            |buf, mut lane| {
                // Edge-replicated copy of the lane, then a plain dot product per output.
                let first = lane[0];
                let last = lane[n as usize - 1];
                for i in 0..r as usize {
                    buf[i] = first;
                    buf[r as usize + n as usize + i] = last;
                }
                for (i, v) in lane.iter().enumerate() {
                    buf[r as usize + i] = *v;
                }
                for (i, o) in lane.iter_mut().enumerate() {
                    *o = buf[i..i + kern.len()].iter().zip(&kern).map(|(a, b)| a * b).sum();
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn a_constant_field_stays_constant_to_the_edges() {
        let mut a = Array3::<f32>::from_elem((5, 6, 7), 3.5);
        gaussian_smooth(&mut a.view_mut(), [1.0, 2.0, 0.7]);
        assert!(a.iter().all(|&v| (v - 3.5).abs() < 1e-5));
    }

    #[test]
    fn an_impulse_spreads_as_a_normalized_gaussian_along_each_axis_alone() {
        let mut a = Array3::<f32>::zeros((1, 1, 21));
        a[[0, 0, 10]] = 1.0;
        // Only x is smoothed: sigma 1.5 voxels along x, none along y and z.
        gaussian_smooth(&mut a.view_mut(), [1.5, 0.0, 0.0]);
        let sum: f32 = a.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        let g = |d: f64| (-(d * d) / (2.0 * 1.5 * 1.5)).exp();
        let norm: f64 = (-6..=6).map(|d| g(d as f64)).sum();
        for d in 0..=3 {
            assert!((a[[0, 0, 10 + d]] as f64 - g(d as f64) / norm).abs() < 1e-6, "offset {d}");
            assert_eq!(a[[0, 0, 10 + d]], a[[0, 0, 10 - d]], "symmetric");
        }
    }
}
