//! Intensity normalization as the tutorial does it: clip HU to [min, max], scale to [0, 1], then
//! subtract a dataset mean (0.25 from LUNA16 by default; better, one fitted over the dataset).
//! Never per image: "CT scanners are calibrated to return accurate HU measurements".

use crate::error::{Error, Result};
use crate::meta::{Kind, Meta, Normalization};
use crate::volume::{Volume, VolumeData, Voxel};
use crate::with_data;
use ndarray::{Array3, ArrayView3, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The tutorial's bounds.
pub const MIN_BOUND: f64 = -1000.0;
pub const MAX_BOUND: f64 = 400.0;
/// The tutorial's PIXEL_MEAN ("from LUNA16 experience").
pub const LUNA16_MEAN: f64 = 0.25;

/// Named HU windows as (centre, width), next to the tutorial's bounds.
pub fn window_preset(name: &str) -> Option<(f64, f64)> {
    match name {
        "lung" => Some((-600.0, 1500.0)),
        "mediastinum" => Some((40.0, 400.0)),
        "bone" => Some((400.0, 1800.0)),
        "tutorial" => Some(((MIN_BOUND + MAX_BOUND) / 2.0, MAX_BOUND - MIN_BOUND)),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct NormalizeOptions {
    pub min: f64,
    pub max: f64,
    /// Subtracted after scaling; `None` = no centering.
    pub mean: Option<f64>,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions { min: MIN_BOUND, max: MAX_BOUND, mean: Some(LUNA16_MEAN) }
    }
}

fn check_input(vol: &Volume) -> Result<()> {
    match vol.meta.kind {
        Kind::Mask | Kind::Labels => {
            Err(Error::bad_input("this is a mask, not a CT volume").with_hint("normalize the HU volume; pass the mask with --mask"))
        }
        Kind::Normalized => {
            Err(Error::bad_input("this volume is already normalized").with_hint("normalize the HU volume (hu-convert output) instead"))
        }
        Kind::Stored if vol.meta.rescale.is_some() => Ok(()),
        _ => Ok(()),
    }
}

/// Metadata of the normalized volume (bounds and mean recorded so the transform can be
/// inverted), after checking the input and the options.
pub fn normalized_meta(vol: &Volume, o: &NormalizeOptions) -> Result<Meta> {
    check_input(vol)?;
    if o.min >= o.max || o.min.is_nan() || o.max.is_nan() {
        return Err(Error::usage(format!("range {}:{} is empty", o.min, o.max)).with_hint("use MIN:MAX with MIN < MAX, e.g. -1000:400"));
    }
    let mut meta = vol.meta.clone();
    meta.kind = Kind::Normalized;
    meta.rescale = None;
    meta.padding = None;
    let mean = o.mean.unwrap_or(0.0);
    meta.normalization = Some(Normalization { min: o.min, max: o.max, mean });
    // The display window follows the values: the whole clip range, now [-mean, 1 - mean]
    // (an HU window kept as it was would show the normalized volume as one flat grey).
    meta.window = Some([0.5 - mean, 1.0]);
    Ok(meta)
}

/// Normalize whole planes `z..` of `vol` into `out` (parallel over planes); `rescale` (stored
/// values) is applied first. A streaming writer calls this a few planes at a time.
pub fn normalize_planes(vol: &Volume, o: &NormalizeOptions, z: usize, out: &mut [f32]) {
    let r = vol.meta.rescale.unwrap_or(crate::meta::Rescale::IDENTITY);
    let (lo, mean) = (o.min, o.mean.unwrap_or(0.0));
    let scale = 1.0 / (o.max - o.min);
    let [_, ny, nx] = vol.shape();
    let nplanes = out.len() / (ny * nx).max(1);
    with_data!(&vol.data, a => {
        let src = a.slice(ndarray::s![z..z + nplanes, .., ..]);
        let mut dst = ndarray::ArrayViewMut3::from_shape((nplanes, ny, nx), out).expect("whole planes");
        Zip::from(&mut dst).and(&src).par_for_each(|d, &v| {
            let x = ((r.apply(v.to_f64()) - lo) * scale).clamp(0.0, 1.0);
            *d = (x - mean) as f32;
        });
    });
}

/// Clip, scale and (optionally) center into a new float32 volume.
pub fn normalize(vol: &Volume, o: &NormalizeOptions) -> Result<Volume> {
    let meta = normalized_meta(vol, o)?;
    let [nz, ny, nx] = vol.shape();
    let mut out = Array3::<f32>::zeros((nz, ny, nx));
    normalize_planes(vol, o, 0, out.as_slice_mut().expect("standard layout"));
    Ok(Volume { data: VolumeData::F32(out), geometry: vol.geometry.clone(), meta })
}

/// Check that `mask` lies on `vol`'s grid (same shape).
pub fn check_mask(vol: &Volume, mask: &Array3<u8>) -> Result<()> {
    if mask.shape() != vol.data.shape() {
        return Err(Error::bad_input(format!("mask shape {:?} differs from the volume's {:?}", mask.shape(), vol.data.shape()))
            .with_hint("resample the mask onto the volume first: `vol-resample MASK --like VOLUME`"));
    }
    Ok(())
}

/// What to do with a mask that is not on the volume's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherGrid {
    /// Refuse with a hint (the default: a mask of the same shape on a mirrored grid would be
    /// applied mirrored without a word).
    Refuse,
    /// Resample it onto the volume's grid, nearest neighbour (labels stay labels).
    Resample,
}

/// A mask as 0/nonzero bytes on `vol`'s grid, compared in world space (not by shape alone):
/// on the same grid it is used as it is; on another grid it is refused or resampled (`policy`).
/// A mask whose file gave no geometry (`geometry_known` false: an NPY without sidecar) is taken
/// to be on the volume's grid when the shapes agree; the note says so.
pub fn mask_on_grid(vol: &Volume, mask: &Volume, geometry_known: bool, policy: OtherGrid) -> Result<(Array3<u8>, Option<String>)> {
    let (shape, mshape) = (vol.shape(), mask.shape());
    if vol.geometry.same_grid(shape, &mask.geometry, mshape) {
        return Ok((nonzero(mask), None));
    }
    if !geometry_known && shape == mshape {
        return Ok((nonzero(mask), Some("the mask's file gives no geometry: taken to be on the volume's grid (same shape)".into())));
    }
    let why = if shape == mshape {
        format!(
            "same shape, but its voxels lie up to {:.1} mm from the volume's (flipped, shifted or rotated grid)",
            vol.geometry.max_offset_mm(&mask.geometry, shape)
        )
    } else {
        format!("shape {mshape:?} (z,y,x), the volume's is {shape:?}")
    };
    match policy {
        OtherGrid::Refuse => Err(Error::bad_input(format!("the mask is on another grid: {why}")).with_hint(
            "add --mask-resample to resample it onto the volume's grid (nearest neighbour), or do it once with `vol-resample MASK --like VOLUME -o MASK2`",
        )),
        OtherGrid::Resample => {
            // Nearest neighbour whatever the file said it was: a mask must stay 0/1 (or labels).
            // (The one copy of the mask, only on this path, where a resampling follows anyway.)
            let meta = crate::meta::Meta { kind: crate::meta::Kind::Labels, rescale: None, ..mask.meta.clone() };
            let m = Volume { data: mask.data.clone(), geometry: mask.geometry.clone(), meta };
            let opts = crate::resample::ResampleOptions {
                target: crate::resample::Target::Like { geometry: vol.geometry.clone(), shape },
                interp: Some(crate::resample::Interp::Nearest),
                fill: Some(0.0),
                antialias: false,
                ..Default::default()
            };
            let r = crate::resample::resample(&m, &opts)?;
            Ok((nonzero(&r.volume), Some(format!("the mask was on another grid ({why}): resampled onto the volume's, nearest neighbour"))))
        }
    }
}

/// Any nonzero voxel is inside (labels count, a float 0.3 too).
fn nonzero(m: &Volume) -> Array3<u8> {
    with_data!(&m.data, a => crate::volume::map_par(a.view(), |v| u8::from(v.to_f64() != 0.0)))
}

/// Set voxels where `mask` is 0 to `value`.
pub fn apply_outside(vol: &mut Volume, mask: &Array3<u8>, value: f64) -> Result<()> {
    check_mask(vol, mask)?;
    let mask = mask.as_standard_layout();
    with_data!(&mut vol.data, a => {
        if !a.is_standard_layout() {
            *a = a.as_standard_layout().into_owned();
        }
        apply_outside_planes(&mask.view(), value, 0, a.as_slice_mut().expect("standard layout"))
    });
    Ok(())
}

/// [`apply_outside`] on whole planes `z..` held in `out` (checked with [`check_mask`] first;
/// `mask` in standard layout).
pub fn apply_outside_planes<T: Voxel>(mask: &ArrayView3<u8>, value: f64, z: usize, out: &mut [T]) {
    let plane = mask.shape()[1] * mask.shape()[2];
    let m = mask.as_slice().expect("standard layout");
    let m = &m[z * plane..z * plane + out.len()];
    let value = T::from_f64(value);
    out.par_chunks_mut(plane).zip(m.par_chunks(plane)).for_each(|(o, m)| {
        for (o, &m) in o.iter_mut().zip(m) {
            if m == 0 {
                *o = value;
            }
        }
    });
}

/// Number of histogram bins over [0, 1] in fitted statistics.
pub const HIST_BINS: usize = 100;

/// Streaming statistics of clipped-and-scaled values over a dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetStats {
    pub min_bound: f64,
    pub max_bound: f64,
    /// Mean over every counted voxel of every volume: the value to subtract.
    pub mean: f64,
    pub std: f64,
    pub count: u64,
    pub volumes: Vec<VolumeStat>,
    /// Counts of scaled values in HIST_BINS equal bins over [0, 1].
    pub histogram: Vec<u64>,
    pub masked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeStat {
    pub name: String,
    pub count: u64,
    pub mean: f64,
}

/// Partial sums for one volume (combine with [`DatasetStats::from_parts`]).
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub sum: f64,
    pub sumsq: f64,
    pub count: u64,
    pub hist: Vec<u64>,
}

/// Sums of scaled values of one volume, optionally only where `mask` is non-zero.
///
/// 8- and 16-bit volumes (every CT as stored) are counted per stored value in parallel, then each
/// distinct value is scaled once: exact counts, and sums with one rounding per value instead of
/// one per voxel. Wider types are summed in parallel chunks.
pub fn fit_part(name: &str, vol: &Volume, mask: Option<&Array3<u8>>, min: f64, max: f64) -> Result<Part> {
    check_input(vol)?;
    if let Some(m) = mask {
        check_mask(vol, m).map_err(|e| e.with_path(name).with_hint("pair each volume with a mask on the same grid"))?;
    }
    let r = vol.meta.rescale.unwrap_or(crate::meta::Rescale::IDENTITY);
    let scale = 1.0 / (max - min);
    let scaled = |v: f64| ((r.apply(v) - min) * scale).clamp(0.0, 1.0);
    let mask = mask.map(|m| m.as_standard_layout());
    let mask = mask.as_ref().map(|m| m.as_slice().expect("standard layout"));
    let part = match &vol.data {
        VolumeData::I16(a) => from_counts(&count_values(a, mask, |v| (v as i32 + 32768) as usize), |i| i as f64 - 32768.0, &scaled),
        VolumeData::U16(a) => from_counts(&count_values(a, mask, |v| v as usize), |i| i as f64, &scaled),
        VolumeData::U8(a) => from_counts(&count_values(a, mask, |v| v as usize), |i| i as f64, &scaled),
        other => with_data!(other, a => sum_chunks(a, mask, &scaled)),
    };
    Ok(Part { name: name.into(), ..part })
}

/// The sums from per-value counts: each distinct value scaled once.
fn from_counts(counts: &[u64], value: fn(usize) -> f64, scaled: &dyn Fn(f64) -> f64) -> Part {
    let mut part = Part { name: String::new(), sum: 0.0, sumsq: 0.0, count: 0, hist: vec![0; HIST_BINS] };
    for (i, &n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
        let x = scaled(value(i));
        part.sum += n as f64 * x;
        part.sumsq += n as f64 * x * x;
        part.count += n;
        part.hist[((x * HIST_BINS as f64) as usize).min(HIST_BINS - 1)] += n;
    }
    part
}

/// How many voxels (inside the mask) hold each value, by `key` (0..65536).
fn count_values<T: Voxel>(a: &Array3<T>, mask: Option<&[u8]>, key: fn(T) -> usize) -> Vec<u64> {
    const CHUNK: usize = 1 << 18;
    let a = a.as_standard_layout();
    let data = a.as_slice().expect("standard layout");
    (0..data.len().div_ceil(CHUNK))
        .into_par_iter()
        .fold(
            || vec![0u64; 1 << 16],
            |mut counts, c| {
                let range = c * CHUNK..((c + 1) * CHUNK).min(data.len());
                match mask {
                    Some(m) => {
                        for (&v, &inside) in data[range.clone()].iter().zip(&m[range]) {
                            counts[key(v)] += (inside != 0) as u64;
                        }
                    }
                    None => data[range].iter().for_each(|&v| counts[key(v)] += 1),
                }
                counts
            },
        )
        .reduce(
            || vec![0u64; 1 << 16],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

fn sum_chunks<T: Voxel>(a: &Array3<T>, mask: Option<&[u8]>, scaled: &(dyn Fn(f64) -> f64 + Sync)) -> Part {
    const CHUNK: usize = 1 << 16;
    let a = a.as_standard_layout();
    let data = a.as_slice().expect("standard layout");
    let empty = || Part { name: String::new(), sum: 0.0, sumsq: 0.0, count: 0, hist: vec![0; HIST_BINS] };
    (0..data.len().div_ceil(CHUNK))
        .into_par_iter()
        .fold(empty, |mut p, c| {
            let range = c * CHUNK..((c + 1) * CHUNK).min(data.len());
            for i in range {
                if mask.is_some_and(|m| m[i] == 0) {
                    continue;
                }
                let x = scaled(data[i].to_f64());
                p.sum += x;
                p.sumsq += x * x;
                p.count += 1;
                p.hist[((x * HIST_BINS as f64) as usize).min(HIST_BINS - 1)] += 1;
            }
            p
        })
        .reduce(empty, |mut a, b| {
            a.sum += b.sum;
            a.sumsq += b.sumsq;
            a.count += b.count;
            a.hist.iter_mut().zip(b.hist).for_each(|(x, y)| *x += y);
            a
        })
}

impl DatasetStats {
    /// Several fits (of disjoint sets of volumes, with the same bounds and masking) as one: the
    /// fit over all their volumes. Sums are recovered from each fit's count, mean and std, so the
    /// per-patient fits of a workflow merge without reading a volume again.
    pub fn merge(fits: &[DatasetStats]) -> Result<DatasetStats> {
        let first = fits.first().ok_or_else(|| Error::empty("no statistics to merge"))?;
        for f in fits {
            if (f.min_bound, f.max_bound, f.masked) != (first.min_bound, first.max_bound, first.masked) {
                return Err(Error::usage(format!(
                    "statistics fitted over different ranges or masking ({}:{}{} and {}:{}{}) cannot be merged",
                    first.min_bound,
                    first.max_bound,
                    if first.masked { ", masked" } else { "" },
                    f.min_bound,
                    f.max_bound,
                    if f.masked { ", masked" } else { "" }
                ))
                .with_hint("fit every part with the same --range and --mask-suffix"));
            }
        }
        let parts: Vec<Part> = fits
            .iter()
            .map(|f| Part {
                name: String::new(),
                sum: f.mean * f.count as f64,
                sumsq: (f.std * f.std + f.mean * f.mean) * f.count as f64,
                count: f.count,
                hist: f.histogram.clone(),
            })
            .collect();
        let mut merged = DatasetStats::from_parts(&parts, first.min_bound, first.max_bound, first.masked)?;
        merged.volumes = fits.iter().flat_map(|f| f.volumes.iter().cloned()).collect();
        Ok(merged)
    }

    pub fn from_parts(parts: &[Part], min: f64, max: f64, masked: bool) -> Result<DatasetStats> {
        let count: u64 = parts.iter().map(|p| p.count).sum();
        if count == 0 {
            return Err(Error::empty("no voxels to fit (empty inputs or empty masks)").with_hint("check the mask files"));
        }
        let sum: f64 = parts.iter().map(|p| p.sum).sum();
        let sumsq: f64 = parts.iter().map(|p| p.sumsq).sum();
        let mean = sum / count as f64;
        let var = (sumsq / count as f64 - mean * mean).max(0.0);
        let mut histogram = vec![0u64; HIST_BINS];
        for p in parts {
            for (h, v) in histogram.iter_mut().zip(&p.hist) {
                *h += v;
            }
        }
        Ok(DatasetStats {
            min_bound: min,
            max_bound: max,
            mean,
            std: var.sqrt(),
            count,
            volumes: parts
                .iter()
                .map(|p| VolumeStat { name: p.name.clone(), count: p.count, mean: if p.count > 0 { p.sum / p.count as f64 } else { 0.0 } })
                .collect(),
            histogram,
            masked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Geometry;
    use crate::meta::Meta;

    fn hu(values: Vec<i16>) -> Volume {
        let n = values.len();
        Volume {
            data: VolumeData::I16(Array3::from_shape_vec((1, 1, n), values).unwrap()),
            geometry: Geometry::default(),
            meta: Meta { kind: Kind::Hu, ..Meta::default() },
        }
    }

    #[test]
    fn matches_the_tutorial_formula() {
        // numpy: ((x + 1000) / 1400).clip(0, 1) - 0.25
        let v = hu(vec![-2000, -1000, -300, 400, 3000]);
        let n = normalize(&v, &NormalizeOptions::default()).unwrap();
        let VolumeData::F32(a) = &n.data else { panic!() };
        let expect = [-0.25, -0.25, 0.25, 0.75, 0.75];
        for (x, e) in a.iter().zip(expect) {
            assert!((x - e).abs() < 1e-7, "{x} vs {e}");
        }
        assert_eq!(n.meta.normalization, Some(Normalization { min: -1000.0, max: 400.0, mean: 0.25 }));
        let nc = normalize(&v, &NormalizeOptions { mean: None, ..Default::default() }).unwrap();
        let VolumeData::F32(a) = &nc.data else { panic!() };
        assert_eq!(a[[0, 0, 2]], 0.5);
    }

    #[test]
    fn fit_over_parts_equals_fit_over_the_concatenation() {
        let a = hu(vec![-1000, -500, 0, 400]);
        let b = hu(vec![-900, 100, 200]);
        let parts = [fit_part("a", &a, None, -1000.0, 400.0).unwrap(), fit_part("b", &b, None, -1000.0, 400.0).unwrap()];
        let s = DatasetStats::from_parts(&parts, -1000.0, 400.0, false).unwrap();
        let all = hu(vec![-1000, -500, 0, 400, -900, 100, 200]);
        let whole = DatasetStats::from_parts(&[fit_part("all", &all, None, -1000.0, 400.0).unwrap()], -1000.0, 400.0, false).unwrap();
        assert!((s.mean - whole.mean).abs() < 1e-12);
        assert!((s.std - whole.std).abs() < 1e-12);
        assert_eq!(s.histogram, whole.histogram);
        assert_eq!(s.count, 7);
    }

    #[test]
    fn merged_fits_equal_the_fit_over_all_volumes() {
        let a = hu(vec![-1000, -500, 0, 400]);
        let b = hu(vec![-900, 100, 200]);
        let fit = |v: &Volume, name: &str| {
            DatasetStats::from_parts(&[fit_part(name, v, None, -1000.0, 400.0).unwrap()], -1000.0, 400.0, false).unwrap()
        };
        let merged = DatasetStats::merge(&[fit(&a, "a"), fit(&b, "b")]).unwrap();
        let parts = [fit_part("a", &a, None, -1000.0, 400.0).unwrap(), fit_part("b", &b, None, -1000.0, 400.0).unwrap()];
        let whole = DatasetStats::from_parts(&parts, -1000.0, 400.0, false).unwrap();
        assert!((merged.mean - whole.mean).abs() < 1e-12 && (merged.std - whole.std).abs() < 1e-12);
        assert_eq!((merged.count, &merged.histogram, merged.volumes.len()), (7, &whole.histogram, 2));
        let other = DatasetStats::from_parts(&[fit_part("b", &b, None, -1200.0, 600.0).unwrap()], -1200.0, 600.0, false).unwrap();
        let e = DatasetStats::merge(&[fit(&a, "a"), other]).unwrap_err();
        assert!(e.to_string().contains("different ranges"), "{e}");
    }

    #[test]
    fn counting_and_summing_paths_agree() {
        // int16 goes through per-value counts, float32 through chunked sums: same statistics.
        let values: Vec<i16> = (0..300_000i64).map(|i| ((i * 7919) % 3000 - 1500) as i16).collect();
        let ints = hu(values.clone());
        let mut floats = ints.clone();
        floats.data = VolumeData::F32(Array3::from_shape_vec((1, 1, values.len()), values.iter().map(|&v| v as f32).collect()).unwrap());
        let mask = Array3::from_shape_fn((1, 1, values.len()), |(_, _, i)| (i % 3 != 0) as u8);
        for m in [None, Some(&mask)] {
            let (p, q) = (fit_part("i", &ints, m, -1000.0, 400.0).unwrap(), fit_part("f", &floats, m, -1000.0, 400.0).unwrap());
            assert_eq!((p.count, &p.hist), (q.count, &q.hist));
            assert!((p.sum - q.sum).abs() < 1e-9 * p.sum && (p.sumsq - q.sumsq).abs() < 1e-9 * p.sumsq);
        }
    }

    #[test]
    fn masked_fit_and_outside_value() {
        let v = hu(vec![-1000, 400, 400]);
        let m = Array3::from_shape_vec((1, 1, 3), vec![1u8, 0, 1]).unwrap();
        let p = fit_part("v", &v, Some(&m), -1000.0, 400.0).unwrap();
        assert_eq!((p.count, p.sum), (2, 1.0));
        let mut n = normalize(&v, &NormalizeOptions::default()).unwrap();
        apply_outside(&mut n, &m, 0.0).unwrap();
        let VolumeData::F32(a) = &n.data else { panic!() };
        assert_eq!(a.as_slice().unwrap(), &[-0.25, 0.0, 0.75]);
    }
}
