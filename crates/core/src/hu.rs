//! Hounsfield units: stored values through RescaleSlope/Intercept, with padding (outside the
//! scanner's field of view) mapped to air instead of being rescaled into nonsense.

use crate::error::{Error, Result};
use crate::meta::{Kind, Padding, Rescale};
use crate::volume::{DType, Volume, VolumeData, Voxel};
use crate::with_data;
use ndarray::{Array3, Zip};

/// The stored value the tutorial treats as padding when no PixelPaddingValue exists.
pub const TUTORIAL_PADDING: f64 = -2000.0;

#[derive(Debug, Clone)]
pub struct HuOptions {
    /// HU given to padding voxels (-1024 = what the tutorial's `-2000 -> 0` rule yields).
    pub air: f64,
    /// Output type; `None`: int16 when slope and intercept are integers, else float32.
    pub dtype: Option<DType>,
    /// Clamp the result to [min, max] HU.
    pub clamp: Option<(f64, f64)>,
    /// Values below this HU are outside the field of view (e.g. -2048 from a raw -1024 code with
    /// intercept -1024, LIDC): they become air too. `None` keeps them.
    pub floor: Option<f64>,
    /// Also return the mask of measured voxels (one more byte per voxel of memory).
    pub fov_mask: bool,
}

impl Default for HuOptions {
    fn default() -> Self {
        HuOptions { air: -1024.0, dtype: None, clamp: None, floor: Some(-1024.0), fov_mask: true }
    }
}

/// An HU volume plus what was done.
#[derive(Debug)]
pub struct HuResult {
    pub volume: Volume,
    /// 1 where the scanner measured, 0 where the value was padding (when asked for).
    pub fov_mask: Option<Array3<u8>>,
    pub padded_voxels: usize,
    pub padding_rule: String,
    pub warnings: Vec<String>,
}

/// Convert a stacked volume to HU.
pub fn to_hu(vol: &Volume, opts: &HuOptions) -> Result<HuResult> {
    to_hu_owned(vol.clone(), opts)
}

/// Convert a stacked volume to HU, in place when the output type is the input's (the common
/// int16 case): no second volume in memory.
pub fn to_hu_owned(vol: Volume, opts: &HuOptions) -> Result<HuResult> {
    let mut warnings = Vec::new();
    match vol.meta.kind {
        Kind::Mask | Kind::Labels | Kind::Normalized => {
            return Err(Error::bad_input(format!(
                "this volume is a {} volume, not CT intensities",
                format!("{:?}", vol.meta.kind).to_lowercase()
            ))
            .with_hint("hu-convert takes the output of dcm-stack (stored values) or a DICOM folder"));
        }
        Kind::Hu => warnings.push("input is already in HU: only padding and clamping are applied".into()),
        Kind::Unknown if vol.meta.rescale.is_none() && vol.data.dtype().is_integer() => {
            warnings.push("input has no rescale (scl_slope/scl_inter): assuming the values are already HU".into())
        }
        _ => {}
    }
    let rescale = if vol.meta.kind == Kind::Hu { Rescale::IDENTITY } else { vol.meta.rescale.unwrap_or(Rescale::IDENTITY) };
    let nan_padding = vol.meta.extra.get("padding_as_nan").and_then(|v| v.as_bool()).unwrap_or(false);
    let (padding, mut rule) = match (&vol.meta.padding, vol.meta.kind) {
        (_, Kind::Hu) => (None, if nan_padding { "NaN voxels (per-slice rescale)".to_string() } else { "none".to_string() }),
        (Some(p), _) => {
            (Some(p.clone()), format!("PixelPaddingValue {}{}", p.value, p.range_limit.map(|l| format!("..{l}")).unwrap_or_default()))
        }
        (None, _) => (
            Some(Padding { value: TUTORIAL_PADDING, range_limit: None, raw: None }),
            "no PixelPaddingValue: the tutorial's rule (stored -2000)".to_string(),
        ),
    };
    if let Some(f) = opts.floor {
        rule.push_str(&format!("; below {f} HU (outside the field of view)"));
    }
    let integer_rescale = rescale.slope.fract() == 0.0 && rescale.intercept.fract() == 0.0;
    let dtype = opts.dtype.unwrap_or(if integer_rescale && vol.data.dtype().is_integer() { DType::I16 } else { DType::F32 });
    let (lo, hi) = opts.clamp.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let air = opts.air;
    let floor = opts.floor.unwrap_or(f64::NEG_INFINITY);
    let convert = move |v: f64| -> (f64, bool) {
        let h = rescale.apply(v);
        if v.is_nan() || padding.as_ref().is_some_and(|p| p.contains(v)) || h < floor {
            (air.clamp(lo, hi), true)
        } else {
            (h.clamp(lo, hi), false)
        }
    };
    let want = opts.fov_mask;
    if dtype.is_integer() {
        if let Some((mn, mx)) = vol.data.min_max() {
            let (a, b) = (rescale.apply(mn), rescale.apply(mx));
            let (r0, r1) = dtype.range();
            if a.min(b) < r0 || a.max(b) > r1 {
                warnings.push(format!(
                    "HU range {:.0}..{:.0} does not fit {}: values were saturated (use --dtype f32)",
                    a.min(b),
                    a.max(b),
                    dtype.name()
                ));
            }
        }
    }
    let Volume { data: mut src, geometry, meta: src_meta } = vol;
    // The FOV mask (only when asked for) is read off the stored values before they change.
    let fov = want.then(|| with_data!(&src, a => fov_mask(a, &convert)));
    let (data, padded) = if dtype == src.dtype() {
        let n = with_data!(&mut src, a => map_hu_in_place(a, &convert));
        (src, n)
    } else {
        with_data!(&src, a => match dtype {
            DType::U8 => map_hu::<_, u8>(a, &convert),
            DType::I16 => map_hu::<_, i16>(a, &convert),
            DType::U16 => map_hu::<_, u16>(a, &convert),
            DType::I32 => map_hu::<_, i32>(a, &convert),
            DType::F32 => map_hu::<_, f32>(a, &convert),
            DType::F64 => map_hu::<_, f64>(a, &convert),
        })
    };
    let mut meta = src_meta;
    meta.kind = Kind::Hu;
    meta.rescale = None;
    meta.padding = None;
    meta.extra.remove("padding_as_nan");
    meta.extra.insert("hu".into(), serde_json::json!({ "air": air, "padded_voxels": padded, "padding_rule": rule, "rescale": rescale }));
    let volume = Volume { data, geometry, meta };
    warnings.extend(plausibility(&volume));
    Ok(HuResult { volume, fov_mask: fov, padded_voxels: padded, padding_rule: rule, warnings })
}

/// The per-voxel conversion. For 8- and 16-bit stored values (every CT file) it is one table
/// lookup instead of the float conversion, rounding and padding test.
fn lookup<S: Voxel, T: Voxel>(convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> impl Fn(S) -> (T, bool) + Sync + '_ {
    use rayon::prelude::*;
    let base: Option<i32> = match S::DTYPE {
        DType::I16 => Some(-32768),
        DType::U16 | DType::U8 => Some(0),
        _ => None,
    };
    let table: Option<Vec<(T, bool)>> = base.map(|b| {
        (0..65536i32)
            .into_par_iter()
            .map(|k| {
                let (h, pad) = convert(f64::from(k + b));
                (T::from_f64(h), pad)
            })
            .collect()
    });
    move |v: S| -> (T, bool) {
        match (&table, base) {
            (Some(t), Some(b)) => t[(v.to_f64() as i32 - b) as usize],
            _ => {
                let (h, pad) = convert(v.to_f64());
                (T::from_f64(h), pad)
            }
        }
    }
}

/// Convert every voxel in place (parallel over slices); the padded count.
fn map_hu_in_place<S: Voxel>(a: &mut Array3<S>, convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> usize {
    use rayon::prelude::*;
    let convert_one = lookup::<S, S>(convert);
    a.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .map(|mut s| {
            let mut n = 0;
            s.iter_mut().for_each(|v| {
                let (h, pad) = convert_one(*v);
                *v = h;
                n += usize::from(pad);
            });
            n
        })
        .sum()
}

/// Convert every voxel into a new volume of type T (parallel over slices); the padded count.
fn map_hu<S: Voxel, T: Voxel>(a: &Array3<S>, convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> (VolumeData, usize) {
    use rayon::prelude::*;
    let convert_one = lookup::<S, T>(convert);
    let mut out = Array3::<T>::default(a.raw_dim());
    let padded = out
        .axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .zip(a.axis_iter(ndarray::Axis(0)))
        .map(|(mut o, s)| {
            let mut n = 0;
            Zip::from(&mut o).and(&s).for_each(|o, &v| {
                let (h, pad) = convert_one(v);
                *o = h;
                n += usize::from(pad);
            });
            n
        })
        .sum();
    (T::wrap(out), padded)
}

/// 1 where the scanner measured, 0 where the stored value is padding (or outside the floor).
fn fov_mask<S: Voxel>(a: &Array3<S>, convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> Array3<u8> {
    let convert_one = lookup::<S, S>(convert);
    Zip::from(a).par_map_collect(|&v| u8::from(!convert_one(v).1))
}

/// Warnings when a volume does not look like CT in HU (air far from -1000, nothing negative).
pub fn plausibility(vol: &Volume) -> Vec<String> {
    let mut w = Vec::new();
    let Some((mn, _)) = vol.data.min_max() else {
        return vec!["the volume has no finite values".into()];
    };
    if mn >= 0.0 {
        w.push(format!("every value is >= 0 (min {mn}): this does not look like HU; is the rescale intercept missing?"));
        return w;
    }
    let n = vol.data.len().max(1) as f64;
    let air = with_data!(&vol.data, a => {
        use rayon::prelude::*;
        a.axis_iter(ndarray::Axis(0))
            .into_par_iter()
            .map(|s| s.iter().filter(|v| (-1100.0..=-900.0).contains(&v.to_f64())).count())
            .sum::<usize>()
    }) as f64;
    if air / n < 0.01 && mn > -900.0 {
        w.push(format!("almost no voxels near air (-1000 HU; min {mn}): this may not be HU"));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Geometry;
    use crate::meta::Meta;

    fn stored(values: &[i16], padding: Option<f64>, rescale: Rescale) -> Volume {
        let a = Array3::from_shape_vec((1, 1, values.len()), values.to_vec()).unwrap();
        let meta = Meta {
            kind: Kind::Stored,
            rescale: Some(rescale),
            padding: padding.map(|v| Padding { value: v, range_limit: None, raw: None }),
            ..Meta::default()
        };
        Volume { data: VolumeData::I16(a), geometry: Geometry::default(), meta }
    }

    #[test]
    fn padding_becomes_air_and_the_rest_is_rescaled() {
        let v = stored(&[-2000, 0, 1024, 2000, -1024], Some(-2000.0), Rescale { slope: 1.0, intercept: -1024.0 });
        let r = to_hu(&v, &HuOptions::default()).unwrap();
        let VolumeData::I16(a) = &r.volume.data else { panic!() };
        // -1024 stored is -2048 HU: below the floor, so outside the field of view as well.
        assert_eq!(a.as_slice().unwrap(), &[-1024, -1024, 0, 976, -1024]);
        assert_eq!(r.fov_mask.as_ref().unwrap().as_slice().unwrap(), &[0, 1, 1, 1, 0]);
        assert_eq!(r.padded_voxels, 2);
        assert_eq!(r.volume.meta.kind, Kind::Hu);
    }

    #[test]
    fn tutorial_rule_applies_without_a_padding_tag() {
        let v = stored(&[-2000, 24], None, Rescale { slope: 1.0, intercept: -1024.0 });
        let r = to_hu(&v, &HuOptions { air: -1000.0, ..HuOptions::default() }).unwrap();
        let VolumeData::I16(a) = &r.volume.data else { panic!() };
        assert_eq!(a.as_slice().unwrap(), &[-1000, -1000]);
    }

    #[test]
    fn below_the_floor_is_outside_the_field_of_view() {
        // LIDC-IDRI-0001: padding declared as -2000, but outside the FOV the code is -1024 (-2048 HU).
        let v = stored(&[-1024, 0, 1000], Some(-2000.0), Rescale { slope: 1.0, intercept: -1024.0 });
        let r = to_hu(&v, &HuOptions::default()).unwrap();
        let VolumeData::I16(a) = &r.volume.data else { panic!() };
        assert_eq!(a.as_slice().unwrap(), &[-1024, -1024, -24]);
        assert_eq!(r.fov_mask.as_ref().unwrap().as_slice().unwrap(), &[0, 1, 1]);
        let r = to_hu(&v, &HuOptions { floor: None, ..HuOptions::default() }).unwrap();
        let VolumeData::I16(a) = &r.volume.data else { panic!() };
        assert_eq!(a[[0, 0, 0]], -2048);
    }

    #[test]
    fn padding_range_limit_covers_a_range() {
        let mut v = stored(&[-3000, -2500, -2000, -1999], Some(-3000.0), Rescale::IDENTITY);
        v.meta.padding.as_mut().unwrap().range_limit = Some(-2000.0);
        let r = to_hu(&v, &HuOptions { floor: None, ..HuOptions::default() }).unwrap();
        assert_eq!(r.fov_mask.as_ref().unwrap().as_slice().unwrap(), &[0, 0, 0, 1]);
    }

    #[test]
    fn fractional_rescale_gives_float_and_clamp_applies() {
        let v = stored(&[0, 100, 3000], Some(-2000.0), Rescale { slope: 0.5, intercept: -1000.5 });
        let r = to_hu(&v, &HuOptions { clamp: Some((-1000.0, 400.0)), ..HuOptions::default() }).unwrap();
        let VolumeData::F32(a) = &r.volume.data else { panic!("{:?}", r.volume.data.dtype()) };
        assert_eq!(a.as_slice().unwrap(), &[-1000.0, -950.5, 400.0]);
    }

    #[test]
    fn masks_are_refused_and_non_hu_warned() {
        let mut v = stored(&[0, 1], None, Rescale::IDENTITY);
        v.meta.kind = Kind::Mask;
        assert!(to_hu(&v, &HuOptions::default()).is_err());
        let v = stored(&[0, 100, 200], None, Rescale::IDENTITY);
        let r = to_hu(&v, &HuOptions::default()).unwrap();
        assert!(r.warnings.iter().any(|w| w.contains(">= 0")), "{:?}", r.warnings);
    }
}
