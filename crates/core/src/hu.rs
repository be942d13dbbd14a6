//! Hounsfield units: stored values through RescaleSlope/Intercept, with padding (outside the
//! scanner's field of view) mapped to air instead of being rescaled into nonsense.

use crate::error::{Error, Result};
use crate::meta::{Kind, Padding, Rescale};
use crate::volume::{DType, Volume, VolumeData, Voxel};
use crate::with_data;
use ndarray::{Array3, Zip};
use std::borrow::Cow;

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

/// Convert a stacked volume to HU, into a new array (one pass, no copy of the input first).
pub fn to_hu(vol: &Volume, opts: &HuOptions) -> Result<HuResult> {
    convert_to_hu(Cow::Borrowed(vol), opts)
}

/// Convert a stacked volume to HU, in place when the output type is the input's (the common
/// int16 case): no second volume in memory.
pub fn to_hu_owned(vol: Volume, opts: &HuOptions) -> Result<HuResult> {
    convert_to_hu(Cow::Owned(vol), opts)
}

fn convert_to_hu(vol: Cow<'_, Volume>, opts: &HuOptions) -> Result<HuResult> {
    let mut warnings = Vec::new();
    match vol.meta.kind {
        Kind::Mask | Kind::Labels | Kind::Normalized => {
            return Err(Error::bad_input(format!("this volume is a {} volume, not CT intensities", vol.meta.kind.name()))
                .with_hint("hu-convert takes the output of dcm-stack (stored values) or a DICOM folder"));
        }
        Kind::Hu => warnings.push("input is already in HU: only padding and clamping are applied".into()),
        Kind::Unknown if vol.meta.rescale.is_none() && vol.data.dtype().is_integer() => {
            warnings.push("input has no rescale (scl_slope/scl_inter): assuming the values are already HU".into())
        }
        _ => {}
    }
    let rescale = if vol.meta.kind == Kind::Hu { Rescale::IDENTITY } else { vol.meta.rescale.unwrap_or(Rescale::IDENTITY) };
    let nan_padding = vol.meta.padding_as_nan;
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
    // The common case (int16 stored values, an integer rescale, int16 out, no FOV mask): integer
    // arithmetic the compiler vectorizes, the stored range counted in the same pass.
    let integer = IntegerHu::new(rescale, padding.as_ref(), floor, (lo, hi), air).filter(|_| dtype == DType::I16 && !opts.fov_mask);
    let convert = move |v: f64| -> (f64, bool) {
        let h = rescale.apply(v);
        if v.is_nan() || padding.as_ref().is_some_and(|p| p.contains(v)) || h < floor {
            (air.clamp(lo, hi), true)
        } else {
            (h.clamp(lo, hi), false)
        }
    };
    let want = opts.fov_mask;
    let (geometry, src_meta) = (vol.geometry.clone(), vol.meta.clone());
    // The integer path, in place on an owned volume or into a new array from a borrowed one.
    let fast = match (vol, integer) {
        (Cow::Owned(Volume { data: VolumeData::I16(mut a), .. }), Some(int)) if a.is_standard_layout() => {
            let (tally, stored) = int.map_in_place(&mut a);
            Ok((a, tally, stored))
        }
        (Cow::Borrowed(Volume { data: VolumeData::I16(a), .. }), Some(int)) if a.is_standard_layout() => Ok(int.map_into(a)),
        (vol, _) => Err(vol),
    };
    let (data, fov, tally) = match fast {
        Ok((a, tally, stored)) => {
            warnings.extend(stored.and_then(|(mn, mx)| saturation(rescale, mn, mx, dtype)));
            (VolumeData::I16(a), None, tally)
        }
        Err(vol) => {
            if dtype.is_integer() {
                warnings.extend(vol.data.min_max().and_then(|(mn, mx)| saturation(rescale, mn, mx, dtype)));
            }
            // The FOV mask (only when asked for) is read off the stored values before they change.
            let fov = want.then(|| with_data!(&vol.data, a => fov_mask(a, &convert)));
            let (data, tally) = match vol {
                Cow::Owned(Volume { data: mut src, .. }) if dtype == src.dtype() => {
                    let t = with_data!(&mut src, a => map_hu_in_place(a, &convert));
                    (src, t)
                }
                src => with_data!(&src.data, a => match dtype {
                    DType::U8 => map_hu::<_, u8>(a, &convert),
                    DType::I16 => map_hu::<_, i16>(a, &convert),
                    DType::U16 => map_hu::<_, u16>(a, &convert),
                    DType::I32 => map_hu::<_, i32>(a, &convert),
                    DType::F32 => map_hu::<_, f32>(a, &convert),
                    DType::F64 => map_hu::<_, f64>(a, &convert),
                }),
            };
            (data, fov, tally)
        }
    };
    Ok(finish(Volume { data, geometry, meta: src_meta }, tally, air, rule, rescale, fov, warnings))
}

/// The warning when the HU range of stored values `mn..mx` does not fit the output type.
fn saturation(rescale: Rescale, mn: f64, mx: f64, dtype: DType) -> Option<String> {
    let (a, b) = (rescale.apply(mn), rescale.apply(mx));
    let (r0, r1) = dtype.range();
    (a.min(b) < r0 || a.max(b) > r1).then(|| {
        format!("HU range {:.0}..{:.0} does not fit {}: values were saturated (use --dtype f32)", a.min(b), a.max(b), dtype.name())
    })
}

/// The converted volume's metadata, padding count and plausibility warnings.
fn finish(
    mut volume: Volume,
    tally: Tally,
    air: f64,
    rule: String,
    rescale: Rescale,
    fov_mask: Option<Array3<u8>>,
    mut warnings: Vec<String>,
) -> HuResult {
    let padded = tally.padded;
    let meta = &mut volume.meta;
    meta.kind = Kind::Hu;
    meta.rescale = None;
    meta.padding = None;
    meta.padding_as_nan = false;
    meta.extra.insert("hu".into(), serde_json::json!({ "air": air, "padded_voxels": padded, "padding_rule": rule, "rescale": rescale }));
    warnings.extend(plausibility(&tally));
    HuResult { volume, fov_mask, padded_voxels: padded, padding_rule: rule, warnings }
}

/// The conversion of int16 stored values to int16 HU with whole-number parameters, in integers:
/// exactly what the general per-voxel conversion gives (an integer HU value needs no rounding),
/// as arithmetic on 16 values at a time instead of a lookup per voxel.
#[derive(Debug, Clone, Copy)]
struct IntegerHu {
    slope: i32,
    intercept: i32,
    /// Stored values that are padding: `pad.0..=pad.1` (empty when `pad.0 > pad.1`).
    pad: (i32, i32),
    /// HU below this is outside the field of view.
    floor: i32,
    clamp: (i32, i32),
    air: i16,
}

impl IntegerHu {
    /// `None` unless every parameter is a whole number (or an infinite bound) in range.
    fn new(rescale: Rescale, padding: Option<&Padding>, floor: f64, clamp: (f64, f64), air: f64) -> Option<IntegerHu> {
        let whole = |v: f64, limit: f64| v.fract() == 0.0 && v.abs() <= limit;
        // |slope| <= 2^15 and |intercept| <= 2^20 keep slope * v + intercept inside i32.
        if !whole(rescale.slope, 32768.0) || !whole(rescale.intercept, 1048576.0) {
            return None;
        }
        let bound = |v: f64| if v.is_infinite() { Some(v.signum() as i32 * i32::MAX) } else { whole(v, 1e9).then_some(v as i32) };
        let (lo, hi) = (bound(clamp.0)?, bound(clamp.1)?);
        if lo > hi {
            return None;
        }
        // Any padding value or range, as the whole stored values it takes in.
        let pad = match padding {
            None => (1, 0),
            Some(p) => {
                let (a, b) = match p.range_limit {
                    Some(l) => (p.value.min(l), p.value.max(l)),
                    None => (p.value, p.value),
                };
                (a.ceil().clamp(-1e9, 1e9) as i32, b.floor().clamp(-1e9, 1e9) as i32)
            }
        };
        // h < floor, for a whole h, is h < ceil(floor).
        let floor = if floor == f64::NEG_INFINITY { i32::MIN } else { floor.ceil().clamp(-1e9, 1e9) as i32 };
        Some(IntegerHu {
            slope: rescale.slope as i32,
            intercept: rescale.intercept as i32,
            pad,
            floor,
            clamp: (lo, hi),
            air: i16::from_f64(air.clamp(clamp.0, clamp.1)),
        })
    }

    /// Convert in place (parallel over slices): the tally and the stored values' range.
    fn map_in_place(self, a: &mut Array3<i16>) -> (Tally, Option<(f64, f64)>) {
        use rayon::prelude::*;
        let parts = a.axis_iter_mut(ndarray::Axis(0)).into_par_iter().map(move |mut plane| {
            let Some(values) = plane.as_slice_mut() else { unreachable!("an owned array's planes are contiguous") };
            self.convert_plane(None, values)
        });
        Self::total(parts)
    }

    /// Convert `a` (in standard layout) into a new array, parallel over slices.
    fn map_into(self, a: &Array3<i16>) -> (Array3<i16>, Tally, Option<(f64, f64)>) {
        use rayon::prelude::*;
        let mut out = Array3::<i16>::zeros(a.raw_dim());
        let parts = out.axis_iter_mut(ndarray::Axis(0)).into_par_iter().zip(a.axis_iter(ndarray::Axis(0))).map(move |(mut o, s)| {
            let (Some(o), Some(s)) = (o.as_slice_mut(), s.to_slice()) else { unreachable!("the caller checked the layout") };
            self.convert_plane(Some(s), o)
        });
        let (tally, stored) = Self::total(parts);
        (out, tally, stored)
    }

    fn total(parts: impl rayon::iter::ParallelIterator<Item = (Tally, i16, i16)>) -> (Tally, Option<(f64, f64)>) {
        let (tally, smin, smax) = parts.reduce(|| (Tally::EMPTY, i16::MAX, i16::MIN), |x, y| (x.0.add(y.0), x.1.min(y.1), x.2.max(y.2)));
        (tally, (smin <= smax).then(|| (f64::from(smin), f64::from(smax))))
    }

    /// One plane, from `src` (or `dst` itself) into `dst`: its tally and stored range.
    fn convert_plane(self, src: Option<&[i16]>, dst: &mut [i16]) -> (Tally, i16, i16) {
        // A slope of 1 (nearly every CT) without the multiplication.
        if self.slope == 1 { self.convert_plane_with::<true>(src, dst) } else { self.convert_plane_with::<false>(src, dst) }
    }

    /// Branch-free over plain slices, so the loops vectorize.
    fn convert_plane_with<const UNIT_SLOPE: bool>(self, src: Option<&[i16]>, dst: &mut [i16]) -> (Tally, i16, i16) {
        let IntegerHu { slope, intercept, pad, floor, clamp, air } = self;
        let (lo, hi) = (clamp.0.max(i16::MIN as i32), clamp.1.min(i16::MAX as i32));
        let (mut padded, mut min, mut smin, mut smax) = (0u32, i16::MAX, i16::MAX, i16::MIN);
        let mut one = |v: i16| -> i16 {
            let s = v as i32;
            let h = if UNIT_SLOPE { s + intercept } else { s * slope + intercept };
            let is_pad = (s >= pad.0) & (s <= pad.1) | (h < floor);
            let out = if is_pad { air } else { h.clamp(lo, hi) as i16 };
            padded += u32::from(is_pad);
            min = min.min(out);
            smin = smin.min(v);
            smax = smax.max(v);
            out
        };
        match src {
            Some(src) => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = one(v)),
            None => dst.iter_mut().for_each(|d| *d = one(*d)),
        }
        let t = Tally { padded: padded as usize, min: if dst.is_empty() { f64::INFINITY } else { f64::from(min) } };
        (t, smin, smax)
    }
}

/// The per-voxel conversion: output value and whether it was padding. For 8- and 16-bit stored
/// values (every CT file) it is one lookup in a table of all 65536 values instead of the float
/// conversion, rounding and padding test.
fn lookup<S: Voxel, T: Voxel>(convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> impl Fn(S) -> (T, bool) + Sync + '_ {
    use rayon::prelude::*;
    let one = move |v: f64| -> (T, bool) {
        let (h, pad) = convert(v);
        (T::from_f64(h), pad)
    };
    // Stored value of each table slot: the inverse of `table_index`.
    let stored = |k: i32| -> f64 { f64::from(if S::DTYPE == DType::I16 { k - 32768 } else { k }) };
    let table: Option<Box<[(T, bool); 65536]>> = S::default().table_index().map(|_| {
        let v: Vec<(T, bool)> = (0..65536i32).into_par_iter().map(|k| one(stored(k))).collect();
        v.into_boxed_slice().try_into().unwrap_or_else(|_| unreachable!("65536 entries"))
    });
    move |v: S| -> (T, bool) {
        match (&table, v.table_index()) {
            (Some(t), Some(i)) => t[usize::from(i)],
            _ => one(v.to_f64()),
        }
    }
}

/// What the conversion pass counts: padded voxels, and the output's minimum for the
/// plausibility check.
#[derive(Debug, Clone, Copy)]
struct Tally {
    padded: usize,
    min: f64,
}

impl Tally {
    const EMPTY: Tally = Tally { padded: 0, min: f64::INFINITY };
    fn add(self, o: Tally) -> Tally {
        Tally { padded: self.padded + o.padded, min: self.min.min(o.min) }
    }
    /// Tally one slice's outputs, in the output type (no float work per voxel).
    fn of<T: Voxel>(outputs: impl Iterator<Item = (T, bool)>) -> Tally {
        let (mut padded, mut min) = (0usize, None::<T>);
        for (h, pad) in outputs {
            padded += usize::from(pad);
            // Outputs are never NaN: NaN input becomes air.
            if min.is_none_or(|m| h < m) {
                min = Some(h);
            }
        }
        Tally { padded, min: min.map_or(f64::INFINITY, |m| m.to_f64()) }
    }
}

/// Convert every voxel in place (parallel over slices).
fn map_hu_in_place<S: Voxel>(a: &mut Array3<S>, convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> Tally {
    use rayon::prelude::*;
    let convert_one = lookup::<S, S>(convert);
    a.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .map(|mut s| {
            Tally::of(s.iter_mut().map(|v| {
                let (h, f) = convert_one(*v);
                *v = h;
                (h, f)
            }))
        })
        .reduce(|| Tally::EMPTY, Tally::add)
}

/// Convert every voxel into a new volume of type T (parallel over slices).
fn map_hu<S: Voxel, T: Voxel>(a: &Array3<S>, convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> (VolumeData, Tally) {
    use rayon::prelude::*;
    let convert_one = lookup::<S, T>(convert);
    let mut out = crate::volume::zeroed::<T>(a.dim());
    let tally = out
        .axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .zip(a.axis_iter(ndarray::Axis(0)))
        .map(|(mut o, s)| {
            Tally::of(o.iter_mut().zip(s.iter()).map(|(o, &v)| {
                let (h, f) = convert_one(v);
                *o = h;
                (h, f)
            }))
        })
        .reduce(|| Tally::EMPTY, Tally::add);
    (T::wrap(out), tally)
}

/// 1 where the scanner measured, 0 where the stored value is padding (or outside the floor).
fn fov_mask<S: Voxel>(a: &Array3<S>, convert: &(impl Fn(f64) -> (f64, bool) + Sync)) -> Array3<u8> {
    let convert_one = lookup::<S, S>(convert);
    Zip::from(a).par_map_collect(|&v| u8::from(!convert_one(v).1))
}

/// Warnings when a volume does not look like CT in HU (nothing negative, or nothing as low as
/// air), from the conversion's tally.
fn plausibility(t: &Tally) -> Vec<String> {
    let mn = t.min;
    if mn == f64::INFINITY {
        return vec!["the volume has no finite values".into()];
    }
    if mn >= 0.0 {
        return vec![format!("every value is >= 0 (min {mn}): this does not look like HU; is the rescale intercept missing?")];
    }
    if mn > -900.0 {
        return vec![format!("no voxels near air (-1000 HU; min {mn}): this may not be HU")];
    }
    Vec::new()
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
    fn borrowed_and_owned_conversions_agree() {
        // to_hu writes a new array, to_hu_owned converts in place: same voxels, counts and notes.
        let values: Vec<i16> = (-2100..3100).step_by(7).map(|v| v as i16).collect();
        for (rescale, dtype) in [
            (Rescale { slope: 1.0, intercept: -1024.0 }, None),
            (Rescale { slope: 0.5, intercept: -1000.5 }, None),
            (Rescale::IDENTITY, Some(DType::I32)),
        ] {
            let v = stored(&values, Some(-2000.0), rescale);
            let opts = HuOptions { dtype, ..HuOptions::default() };
            let (a, b) = (to_hu(&v, &opts).unwrap(), to_hu_owned(v.clone(), &opts).unwrap());
            assert_eq!(a.volume, b.volume);
            assert_eq!(
                (a.padded_voxels, &a.padding_rule, &a.warnings, &a.fov_mask),
                (b.padded_voxels, &b.padding_rule, &b.warnings, &b.fov_mask)
            );
            assert!(a.padded_voxels > 0);
        }
    }

    proptest::proptest! {
        /// The integer path (int16 in standard layout, whole-number parameters; in place and into
        /// a new array) against the general per-voxel conversion (which a Fortran-order copy
        /// takes): the same voxels, counts and warnings, whatever the parameters.
        #[test]
        fn the_integer_path_equals_the_general_conversion(
            values in proptest::collection::vec(proptest::num::i16::ANY, 2..200),
            slope in proptest::sample::select(vec![1.0, 2.0, -1.0, 3.0, 0.0]),
            intercept in -40000i32..40000,
            padding in proptest::option::of((-3000i32..3000, proptest::option::of(-3000i32..3000))),
            floor in proptest::option::of(-40000i32..40000),
            clamp in proptest::option::of((-40000i32..0, 0i32..40000)),
            air in -2000i32..0,
        ) {
            use ndarray::ShapeBuilder;
            let mut v = stored(&values, None, Rescale { slope, intercept: intercept as f64 });
            v.meta.padding = padding.map(|(p, l)| Padding { value: p as f64, range_limit: l.map(f64::from), raw: None });
            let n = values.len();
            v.data = VolumeData::I16(Array3::from_shape_fn((2, 1, n), |(z, _, x)| values[x].wrapping_add(z as i16)));
            let mut fortran = v.clone();
            fortran.data = VolumeData::I16(Array3::from_shape_fn((2, 1, n).f(), |(z, _, x)| values[x].wrapping_add(z as i16)));
            let opts = HuOptions {
                air: air as f64,
                dtype: Some(DType::I16),
                clamp: clamp.map(|(a, b)| (a as f64, b as f64)),
                floor: floor.map(f64::from),
                fov_mask: false,
            };
            let general = to_hu(&fortran, &opts).unwrap();
            for integer in [to_hu(&v, &opts).unwrap(), to_hu_owned(v.clone(), &opts).unwrap()] {
                proptest::prop_assert_eq!(&general.volume, &integer.volume);
                proptest::prop_assert_eq!((general.padded_voxels, &general.warnings), (integer.padded_voxels, &integer.warnings));
            }
        }
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

    #[test]
    fn plausibility_is_tallied_in_the_conversion_pass_in_place_and_into_floats() {
        // Negative, but nothing as low as air: warned, with the output's minimum (-500).
        let soft: Vec<i16> = (0..200).map(|i| 524 + (i % 50) as i16).collect();
        let int = to_hu(&stored(&soft, None, Rescale { slope: 1.0, intercept: -1024.0 }), &HuOptions::default()).unwrap();
        let float = to_hu(&stored(&soft, None, Rescale { slope: 1.0, intercept: -1024.5 }), &HuOptions::default()).unwrap();
        assert_eq!(float.volume.data.dtype(), DType::F32);
        for (r, min) in [(int, "-500"), (float, "-500.5")] {
            assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
            assert!(r.warnings[0].contains("no voxels near air") && r.warnings[0].contains(&format!("min {min})")), "{:?}", r.warnings);
        }
        // One voxel of air is enough, and padding made air counts (the tutorial's -2000 rule).
        for (value, padded) in [(-2000i16, 1usize), (24, 0)] {
            let mut chest = soft.clone();
            chest[3] = value;
            let r = to_hu(&stored(&chest, None, Rescale { slope: 1.0, intercept: -1024.0 }), &HuOptions::default()).unwrap();
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);
            assert_eq!(r.padded_voxels, padded);
        }
    }
}
