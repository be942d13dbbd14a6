//! The volume model: voxels `[z, y, x]` (C order, slice-major, as numpy and SimpleITK's
//! `GetArrayFromImage`), a [`Geometry`] in LPS millimetres, and [`Meta`].

use crate::geometry::Geometry;
use crate::meta::Meta;
use ndarray::{Array3, ArrayView3, Zip};

/// Voxel element types the exchange formats carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    U8,
    I16,
    U16,
    I32,
    F32,
    F64,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "u8" | "uint8" => DType::U8,
            "i16" | "int16" => DType::I16,
            "u16" | "uint16" => DType::U16,
            "i32" | "int32" => DType::I32,
            "f32" | "float32" => DType::F32,
            "f64" | "float64" => DType::F64,
            _ => return None,
        })
    }
    pub fn is_integer(self) -> bool {
        !matches!(self, DType::F32 | DType::F64)
    }
    /// Representable range of an integer type (as f64).
    pub fn range(self) -> (f64, f64) {
        match self {
            DType::U8 => (0.0, 255.0),
            DType::I16 => (i16::MIN as f64, i16::MAX as f64),
            DType::U16 => (0.0, u16::MAX as f64),
            DType::I32 => (i32::MIN as f64, i32::MAX as f64),
            DType::F32 => (f32::MIN as f64, f32::MAX as f64),
            DType::F64 => (f64::MIN, f64::MAX),
        }
    }
}

/// Voxels of any supported element type.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeData {
    U8(Array3<u8>),
    I16(Array3<i16>),
    U16(Array3<u16>),
    I32(Array3<i32>),
    F32(Array3<f32>),
    F64(Array3<f64>),
}

/// Runs `$body` with `$a` bound to the typed array inside a [`VolumeData`].
#[macro_export]
macro_rules! with_data {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::volume::VolumeData::U8($a) => $body,
            $crate::volume::VolumeData::I16($a) => $body,
            $crate::volume::VolumeData::U16($a) => $body,
            $crate::volume::VolumeData::I32($a) => $body,
            $crate::volume::VolumeData::F32($a) => $body,
            $crate::volume::VolumeData::F64($a) => $body,
        }
    };
}

/// A numeric voxel type that converts to and from f64 (rounding and saturating for integers).
pub trait Voxel: Copy + Send + Sync + Default + PartialOrd + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32 {
        self.to_f64() as f32
    }
    /// Round half away from zero and saturate for integers; plain cast for floats.
    fn from_f64(v: f64) -> Self;
    /// From an integer, saturating (no rounding work for integer types).
    fn from_i32(v: i32) -> Self {
        Self::from_f64(v as f64)
    }
    fn wrap(a: Array3<Self>) -> VolumeData;
    /// For 8- and 16-bit integers, the value's place among all 65536 (or 256) of them, so a
    /// per-value table can stand in for a computation; `None` for wider types.
    fn table_index(self) -> Option<u16> {
        None
    }
}

macro_rules! int_voxel {
    ($t:ty, $d:ident, $index:expr) => {
        impl Voxel for $t {
            const DTYPE: DType = DType::$d;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                // Half away from zero, as `round`, without its library call (baseline x86-64 has
                // no rounding instruction; `as` truncates, saturates and maps NaN to 0). Exact
                // for every value an f32 computation gives.
                (v + 0.5f64.copysign(v)) as $t
            }
            fn from_i32(v: i32) -> Self {
                v.clamp(<$t>::MIN as i32, <$t>::MAX as i32) as $t
            }
            fn wrap(a: Array3<Self>) -> VolumeData {
                VolumeData::$d(a)
            }
            fn table_index(self) -> Option<u16> {
                let index: fn($t) -> Option<u16> = $index;
                index(self)
            }
        }
    };
}
int_voxel!(u8, U8, |v: u8| Some(u16::from(v)));
int_voxel!(i16, I16, |v: i16| Some((v as u16) ^ 0x8000));
int_voxel!(u16, U16, |v: u16| Some(v));
int_voxel!(i32, I32, |_| None);

impl Voxel for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn wrap(a: Array3<Self>) -> VolumeData {
        VolumeData::F32(a)
    }
}
impl Voxel for f64 {
    const DTYPE: DType = DType::F64;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn wrap(a: Array3<Self>) -> VolumeData {
        VolumeData::F64(a)
    }
}

impl VolumeData {
    pub fn dtype(&self) -> DType {
        with_data!(self, a => element_dtype(a))
    }
    /// Shape `[z, y, x]`.
    pub fn shape(&self) -> [usize; 3] {
        with_data!(self, a => { let s = a.shape(); [s[0], s[1], s[2]] })
    }
    pub fn len(&self) -> usize {
        with_data!(self, a => a.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// All values as f32 (a copy), with an optional rescale applied.
    pub fn to_f32(&self, rescale: Option<crate::meta::Rescale>) -> Array3<f32> {
        let r = rescale.filter(|r| !r.is_identity());
        with_data!(self, a => map_par(a.view(), |v| match r {
            Some(r) => r.apply(v.to_f64()) as f32,
            None => v.to_f32(),
        }))
    }
    /// Convert to another element type, rounding and saturating into integer types.
    pub fn cast(&self, to: DType) -> VolumeData {
        if self.dtype() == to {
            return self.clone();
        }
        with_data!(self, a => cast_array(a.view(), to))
    }
    /// (min, max) over finite values; `None` when there are none. Parallel over slices.
    pub fn min_max(&self) -> Option<(f64, f64)> {
        use rayon::prelude::*;
        if let Some(r) = with_data!(self, a => integer_min_max(a)) {
            return r;
        }
        with_data!(self, a => {
            let (lo, hi) = a
                .axis_iter(ndarray::Axis(0))
                .into_par_iter()
                .map(|s| {
                    s.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                        let v = v.to_f64();
                        if v.is_finite() { (lo.min(v), hi.max(v)) } else { (lo, hi) }
                    })
                })
                .reduce(|| (f64::INFINITY, f64::NEG_INFINITY), |a, b| (a.0.min(b.0), a.1.max(b.1)));
            (lo <= hi).then_some((lo, hi))
        })
    }
}

/// Min and max of an integer volume with native comparisons (they vectorize; integers are always
/// finite); `None` for float volumes.
fn integer_min_max<T: Voxel>(a: &Array3<T>) -> Option<Option<(f64, f64)>> {
    use rayon::prelude::*;
    if !T::DTYPE.is_integer() {
        return None;
    }
    let pick = |(lo, hi): (T, T), (l, h): (T, T)| (if l < lo { l } else { lo }, if h > hi { h } else { hi });
    let r = a
        .axis_iter(ndarray::Axis(0))
        .into_par_iter()
        .filter_map(|s| {
            let first = *s.iter().next()?;
            let fold = |acc: (T, T), &v: &T| pick(acc, (v, v));
            Some(match s.as_slice() {
                Some(sl) => sl.iter().fold((first, first), fold),
                None => s.iter().fold((first, first), fold),
            })
        })
        .reduce_with(pick);
    Some(r.map(|(lo, hi)| (lo.to_f64(), hi.to_f64())))
}

fn element_dtype<T: Voxel>(_: &Array3<T>) -> DType {
    T::DTYPE
}

/// Convert a typed view to any dtype.
pub fn cast_array<T: Voxel>(a: ArrayView3<T>, to: DType) -> VolumeData {
    match to {
        DType::U8 => VolumeData::U8(map_par(a, |v| u8::from_f64(v.to_f64()))),
        DType::I16 => VolumeData::I16(map_par(a, |v| i16::from_f64(v.to_f64()))),
        DType::U16 => VolumeData::U16(map_par(a, |v| u16::from_f64(v.to_f64()))),
        DType::I32 => VolumeData::I32(map_par(a, |v| i32::from_f64(v.to_f64()))),
        DType::F32 => VolumeData::F32(map_par(a, |v| v.to_f32())),
        DType::F64 => VolumeData::F64(map_par(a, |v| v.to_f64())),
    }
}

/// A new C-order array of `T::default()` (zero for every voxel type), allocated zeroed. The
/// kernel then zeroes each page where it is first written, inside the parallel pass that fills
/// the array; `Array3::default` writes the whole array up front on one thread instead (for
/// hu-convert's 130 MB volume, a serial 40-60 ms before its decoding could start).
pub fn zeroed<T: Clone + Default>(shape: (usize, usize, usize)) -> Array3<T> {
    // `from_elem` is `vec![elem; n]`, which asks the allocator for zeroed memory (calloc) when
    // the element is zero: fresh pages, untouched until the pass writes them.
    Array3::from_elem(shape, T::default())
}

/// Element-wise map into a new C-order array, in parallel.
pub fn map_par<T: Copy + Sync, U: Copy + Send + Default>(a: ArrayView3<T>, f: impl Fn(T) -> U + Sync + Send) -> Array3<U> {
    let mut out = zeroed::<U>(a.dim());
    Zip::from(&mut out).and(&a).par_for_each(|o, &v| *o = f(v));
    out
}

/// A 3-D image: voxels, grid, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub data: VolumeData,
    pub geometry: Geometry,
    pub meta: Meta,
}

/// Everything about a volume but its voxels: what a file header holds.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// `[z, y, x]`.
    pub shape: [usize; 3],
    pub dtype: DType,
    pub geometry: &'a Geometry,
    pub meta: &'a Meta,
}

impl Volume {
    pub fn new(data: VolumeData, geometry: Geometry, meta: Meta) -> Self {
        Volume { data, geometry, meta }
    }
    pub fn header(&self) -> Header<'_> {
        Header { shape: self.shape(), dtype: self.data.dtype(), geometry: &self.geometry, meta: &self.meta }
    }
    /// Shape `[z, y, x]`.
    pub fn shape(&self) -> [usize; 3] {
        self.data.shape()
    }
    /// The same image with its array axes reordered: new array axis k is old axis `perm[k]`
    /// (array order [z, y, x]); the voxels are copied into standard layout and the geometry
    /// follows, so every voxel keeps its LPS position.
    pub fn permuted(&self, perm: [usize; 3]) -> Volume {
        let data = crate::with_data!(&self.data, a => Voxel::wrap(a.view().permuted_axes(perm).as_standard_layout().into_owned()));
        let g = &self.geometry;
        // Index axis i is array axis 2 - i.
        let old_index = |i: usize| 2 - perm[2 - i];
        let geometry = Geometry {
            spacing: std::array::from_fn(|i| g.spacing[old_index(i)]),
            origin: g.origin,
            direction: std::array::from_fn(|i| g.direction[old_index(i)]),
        };
        Volume { data, geometry, meta: self.meta.clone() }
    }

    /// Real values (rescale applied) as f32.
    pub fn real_f32(&self) -> Array3<f32> {
        self.data.to_f32(self.meta.rescale)
    }
    /// Physical size of one voxel, mm^3 (handles sheared grids).
    pub fn voxel_volume_mm3(&self) -> f64 {
        let m = self.geometry.index_matrix();
        let c = |a: usize| [m[0][a], m[1][a], m[2][a]];
        crate::geometry::dot(c(0), crate::geometry::cross(c(1), c(2))).abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integer_conversion_rounds_half_away_from_zero_and_saturates() {
        assert_eq!((i16::from_f64(2.5), i16::from_f64(-2.5), i16::from_f64(-0.5)), (3, -3, -1));
        assert_eq!((i16::from_f64(0.499_999_97_f32 as f64), i16::from_f64(-1.49)), (0, -1));
        assert_eq!((i16::from_f64(1e9), i16::from_f64(-1e9), i16::from_f64(f64::NAN)), (i16::MAX, i16::MIN, 0));
        assert_eq!((u8::from_f64(-3.7), u8::from_f64(254.5), u16::from_f64(f64::INFINITY)), (0, 255, u16::MAX));
    }

    /// `zeroed` stands in for `Array3::default` in the kernels: same shape, layout and values.
    #[test]
    fn zeroed_arrays_equal_default_ones() {
        fn check<T: Clone + Default + PartialEq + std::fmt::Debug>() {
            for shape in [(0, 3, 4), (2, 3, 4), (5, 1, 7)] {
                let z = zeroed::<T>(shape);
                assert_eq!(z, Array3::<T>::default(shape));
                assert!(z.is_standard_layout());
            }
        }
        check::<u8>();
        check::<bool>();
        check::<i16>();
        check::<f32>();
        check::<f64>();
    }

    proptest! {
        #[test]
        fn integer_conversion_equals_round_for_f32_values(v in -70000.0f32..70000.0) {
            let r = (v as f64).round();
            prop_assert_eq!(i16::from_f64(v as f64), r as i16);
            prop_assert_eq!(i32::from_f64(v as f64), r as i32);
            prop_assert_eq!(u16::from_f64(v as f64), r as u16);
        }
    }

    #[test]
    fn permuted_keeps_every_voxel_at_its_world_position() {
        let g = Geometry {
            spacing: [0.7, 0.8, 2.5],
            origin: [10.0, -20.0, 30.0],
            direction: [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
        };
        let a = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| (100 * z + 10 * y + x) as i16);
        let v = Volume::new(VolumeData::I16(a.clone()), g, Meta::default());
        for perm in [[1, 0, 2], [2, 0, 1], [0, 2, 1]] {
            let p = v.permuted(perm);
            let VolumeData::I16(b) = &p.data else { unreachable!() };
            assert!(b.is_standard_layout());
            for ((z, y, x), &val) in a.indexed_iter() {
                let old = [z, y, x];
                let new: [usize; 3] = std::array::from_fn(|k| old[perm[k]]);
                assert_eq!(b[new], val);
                let (w0, w1) = (
                    v.geometry.index_to_world([x as f64, y as f64, z as f64]),
                    p.geometry.index_to_world([new[2] as f64, new[1] as f64, new[0] as f64]),
                );
                assert!((0..3).all(|k| (w0[k] - w1[k]).abs() < 1e-9), "{perm:?}: {w0:?} vs {w1:?}");
            }
        }
    }
}
