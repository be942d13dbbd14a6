//! Making a stack regular: a gantry-tilted stack shifted in-plane onto an orthogonal grid, and
//! irregular slice positions interpolated onto equidistant ones. Padding is never blended into
//! tissue.

use super::series::Ordered;
use crate::error::{Error, Result};
use crate::geometry::{dot, sub};
use crate::meta::{Meta, Padding};
use crate::volume::{VolumeData, Voxel};
use ndarray::{Array3, Axis};
use rayon::prelude::*;

/// What to put where no data exists: the padding value, else the smallest value present.
pub(super) fn fill_value(data: &VolumeData, padding: Option<&Padding>, meta: &Meta) -> f64 {
    if meta.padding_as_nan {
        return f64::NAN;
    }
    match padding {
        Some(p) => p.value,
        None => data.min_max().map(|m| m.0).unwrap_or(0.0),
    }
}

fn is_pad(v: f64, padding: Option<&Padding>) -> bool {
    v.is_nan() || padding.is_some_and(|p| p.contains(v))
}

/// Shift each slice in-plane so the stack becomes orthogonal (bilinear, padding-aware).
pub(super) fn correct_tilt(
    data: &VolumeData,
    o: &Ordered,
    row: [f64; 3],
    col: [f64; 3],
    dx: f64,
    dy: f64,
    fill: f64,
    padding: Option<&Padding>,
) -> VolumeData {
    let p0 = o.slices[0].position.unwrap_or_default();
    let shifts: Vec<(f64, f64)> = o
        .slices
        .iter()
        .map(|s| {
            let d = sub(s.position.unwrap_or_default(), p0);
            (dot(d, row) / dx, dot(d, col) / dy)
        })
        .collect();
    crate::with_data!(data, a => {
        let mut out = a.clone();
        out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slab)| {
            let src = a.index_axis(Axis(0), k);
            let (sx, sy) = shifts[k];
            let (ny, nx) = (src.shape()[0], src.shape()[1]);
            for j in 0..ny {
                for i in 0..nx {
                    let (x, y) = (i as f64 - sx, j as f64 - sy);
                    slab[[j, i]] = Voxel::from_f64(bilinear(&src, x, y, fill, padding, nx, ny));
                }
            }
        });
        Voxel::wrap(out)
    })
}

fn bilinear<T: Voxel>(src: &ndarray::ArrayView2<T>, x: f64, y: f64, fill: f64, padding: Option<&Padding>, nx: usize, ny: usize) -> f64 {
    if x < -0.5 || y < -0.5 || x > nx as f64 - 0.5 || y > ny as f64 - 0.5 {
        return fill;
    }
    let x = x.clamp(0.0, (nx - 1) as f64);
    let y = y.clamp(0.0, (ny - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(nx - 1), (y0 + 1).min(ny - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let v = [src[[y0, x0]].to_f64(), src[[y0, x1]].to_f64(), src[[y1, x0]].to_f64(), src[[y1, x1]].to_f64()];
    if v.iter().any(|&q| is_pad(q, padding)) {
        // Never blend padding into tissue: take the nearest sample.
        let (xi, yi) = (if fx < 0.5 { x0 } else { x1 }, if fy < 0.5 { y0 } else { y1 });
        return src[[yi, xi]].to_f64();
    }
    let top = v[0] * (1.0 - fx) + v[1] * fx;
    let bot = v[2] * (1.0 - fx) + v[3] * fx;
    top * (1.0 - fy) + bot * fy
}

/// Before filling gaps: the slices the regular grid would hold, checked against the series (an
/// outlier position, one slice at z = 1e6, asked for 131 GB) and the memory limit.
pub(super) fn check_gap_fill(ordered: &Ordered, positions: &[f64], dz: f64, data: &VolumeData) -> Result<()> {
    let extent = positions[positions.len() - 1] - positions[0];
    let n = extent / dz + 1.0;
    let have = positions.len() as f64;
    let first = &ordered.slices[0].path;
    if !n.is_finite() || n > 4.0 * have + 16.0 {
        return Err(Error::bad_input(format!(
            "filling the gaps would make {n:.0} slices of {have}: the slices span {extent:.1} mm at {dz:.3} mm spacing"
        ))
        .with_path(first)
        .with_hint("a slice's ImagePositionPatient is wrong or belongs to another scan: remove that file, or pass --on-gap keep"));
    }
    let [_, ny, nx] = data.shape();
    let bytes = (n as u64).saturating_mul((ny * nx * data.dtype().size()) as u64);
    crate::io::check_claim(first, "filling the gaps", bytes, None)
}

/// Linear interpolation along slices onto equidistant positions (padding-aware).
pub(super) fn resample_slices(data: &VolumeData, positions: &[f64], dz: f64, padding: Option<&Padding>) -> (VolumeData, usize) {
    let p0 = positions[0];
    let extent = positions[positions.len() - 1] - p0;
    let n = (extent / dz).round() as usize + 1;
    let targets: Vec<f64> = (0..n).map(|k| p0 + k as f64 * dz).collect();
    let out = crate::with_data!(data, a => Voxel::wrap(resample_typed(a, positions, &targets, padding)));
    (out, n)
}

fn resample_typed<T: Voxel>(a: &Array3<T>, positions: &[f64], targets: &[f64], padding: Option<&Padding>) -> Array3<T> {
    let (ny, nx) = (a.shape()[1], a.shape()[2]);
    let mut out = crate::volume::zeroed::<T>((targets.len(), ny, nx));
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(targets.par_iter()).for_each(|(mut slab, &t)| {
        let hi = positions.partition_point(|&p| p < t - 1e-6).min(positions.len() - 1);
        let lo = hi.saturating_sub(1);
        let w = if hi == lo || positions[hi] <= positions[lo] {
            0.0
        } else {
            ((t - positions[lo]) / (positions[hi] - positions[lo])).clamp(0.0, 1.0)
        };
        let (sa, sb) = (a.index_axis(Axis(0), lo), a.index_axis(Axis(0), hi));
        ndarray::Zip::from(&mut slab).and(&sa).and(&sb).for_each(|d, &va, &vb| {
            let (fa, fb) = (va.to_f64(), vb.to_f64());
            let v = if is_pad(fa, padding) || is_pad(fb, padding) { if w < 0.5 { fa } else { fb } } else { fa * (1.0 - w) + fb * w };
            *d = T::from_f64(v);
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn ramp(nx: usize, ny: usize) -> Array2<f32> {
        Array2::from_shape_fn((ny, nx), |(j, i)| (10 * j + i) as f32)
    }

    #[test]
    fn bilinear_at_whole_and_half_pixels() {
        let a = ramp(4, 3);
        let v = a.view();
        assert_eq!(bilinear(&v, 2.0, 1.0, -1.0, None, 4, 3), 12.0);
        assert!((bilinear(&v, 1.5, 0.5, -1.0, None, 4, 3) - 6.5).abs() < 1e-9);
        // Outside the image by more than half a pixel: the fill value.
        assert_eq!(bilinear(&v, -0.6, 1.0, -1.0, None, 4, 3), -1.0);
        assert_eq!(bilinear(&v, 1.0, 2.6, -1.0, None, 4, 3), -1.0);
    }

    #[test]
    fn bilinear_never_blends_padding_into_tissue() {
        let mut a = ramp(4, 3);
        a[[1, 2]] = -2000.0;
        let pad = Padding { value: -2000.0, range_limit: None, raw: None };
        // Between a padding sample and tissue: the nearest sample, not a mix.
        assert_eq!(bilinear(&a.view(), 2.4, 1.0, 0.0, Some(&pad), 4, 3), -2000.0);
        assert_eq!(bilinear(&a.view(), 2.6, 1.0, 0.0, Some(&pad), 4, 3), 13.0);
        assert!(is_pad(f64::NAN, None));
    }

    #[test]
    fn irregular_slices_are_interpolated_linearly_onto_equidistant_ones() {
        // Slices at 0, 1, 3 mm (one missing at 2): resampled at 1 mm.
        let a = Array3::from_shape_fn((3, 1, 2), |(k, _, i)| [0.0f32, 10.0, 30.0][k] + i as f32);
        let (out, n) = resample_slices(&VolumeData::F32(a), &[0.0, 1.0, 3.0], 1.0, None);
        assert_eq!(n, 4);
        let VolumeData::F32(b) = out else { panic!("dtype kept") };
        let col: Vec<f32> = (0..4).map(|k| b[[k, 0, 1]]).collect();
        assert_eq!(col, [1.0, 11.0, 21.0, 31.0]);
    }

    #[test]
    fn gap_filling_takes_the_nearest_slice_next_to_padding() {
        let a = Array3::from_shape_fn((2, 1, 1), |(k, _, _)| [-2000i16, 100][k]);
        let pad = Padding { value: -2000.0, range_limit: None, raw: None };
        let (out, _) = resample_slices(&VolumeData::I16(a), &[0.0, 4.0], 1.0, Some(&pad));
        let VolumeData::I16(b) = out else { panic!("dtype kept") };
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [-2000, -2000, 100, 100, 100]);
    }

    #[test]
    fn fill_is_the_padding_else_the_minimum_else_nan() {
        let data = VolumeData::I16(Array3::from_elem((1, 1, 2), 5));
        let pad = Padding { value: -2000.0, range_limit: None, raw: None };
        assert_eq!(fill_value(&data, Some(&pad), &Meta::default()), -2000.0);
        assert_eq!(fill_value(&data, None, &Meta::default()), 5.0);
        assert!(fill_value(&data, None, &Meta { padding_as_nan: true, ..Meta::default() }).is_nan());
    }
}
