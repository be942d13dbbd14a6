//! `ctprep.Volume`: a core volume seen from Python.

use crate::errors::usage;
use ctprep_core::geometry::{Geometry, xyz_from_zyx, zyx_from_xyz};
use ctprep_core::{Kind, Meta, Volume, VolumeData};
use ndarray::Array3;
use numpy::{Element, PyArray2, PyArray3, PyReadonlyArray3};
use pyo3::prelude::*;
use pyo3::types::IntoPyDict;

/// A CT volume, mask or normalized input: `array` is ``[z, y, x]`` (the tutorial's order);
/// the grid is in DICOM patient space (LPS, millimetres).
///
/// - ``spacing``: voxel size along the array's axes ``(z, y, x)``, mm, as the tutorial's
///   ``spacing``;
/// - ``origin``: LPS position ``(x, y, z)`` of voxel ``[0, 0, 0]``'s centre;
/// - ``direction``: 3x3, column ``j`` the LPS unit vector of index axis ``j`` in ``(x, y, z)``
///   order (SimpleITK's ``GetDirection()``);
/// - ``affine``: 4x4 index ``(x, y, z)`` -> RAS, equal to nibabel's ``img.affine`` for the NIfTI
///   that ``write`` makes (nibabel's array is ``array.T``);
/// - ``kind``: ``"stored"``, ``"hu"``, ``"mask"``, ``"labels"``, ``"normalized"`` or ``"unknown"``;
/// - ``meta``: everything else as a dict (series facts, per-slice provenance, rescale, QC, steps).
///
/// ``array`` shares the volume's memory and is read-only; ``array.copy()`` to change values,
/// then ``vol.like(new_array)`` to put them back on the grid.
#[pyclass(name = "Volume", module = "ctprep", frozen)]
pub struct PyVolume {
    pub inner: Volume,
}

impl PyVolume {
    pub fn wrap(inner: Volume) -> Self {
        PyVolume { inner }
    }
}

fn kind_named(py: Python<'_>, name: &str) -> PyResult<Kind> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| usage(py, format!("unknown kind '{name}'"), "use stored, hu, mask, labels, normalized or unknown"))
}

/// The numpy array's voxels, copied into a C-order array of a type the core knows.
fn data_from_numpy(py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<VolumeData> {
    let np = py.import("numpy")?;
    let array = np.call_method1("asarray", (array,))?;
    let ndim: usize = array.getattr("ndim")?.extract()?;
    if ndim != 3 {
        return Err(usage(py, format!("the array has {ndim} dimension(s), a volume has 3"), "pass a [z, y, x] array"));
    }
    // Types numpy users hold that the core stores wider, as the NIfTI/NPY readers do.
    let dtype: String = array.getattr("dtype")?.getattr("name")?.extract()?;
    let array = match dtype.as_str() {
        "bool" => array.call_method1("astype", ("uint8",))?,
        "int8" => array.call_method1("astype", ("int16",))?,
        "float16" => array.call_method1("astype", ("float32",))?,
        _ => array,
    };
    fn take<T: Element + Copy>(a: &Bound<'_, PyAny>) -> Option<Array3<T>> {
        let a = a.extract::<PyReadonlyArray3<T>>().ok()?;
        Some(a.as_array().as_standard_layout().into_owned())
    }
    let data = take::<u8>(&array)
        .map(VolumeData::U8)
        .or_else(|| take::<i16>(&array).map(VolumeData::I16))
        .or_else(|| take::<u16>(&array).map(VolumeData::U16))
        .or_else(|| take::<i32>(&array).map(VolumeData::I32))
        .or_else(|| take::<f32>(&array).map(VolumeData::F32))
        .or_else(|| take::<f64>(&array).map(VolumeData::F64));
    data.ok_or_else(|| {
        usage(
            py,
            format!("arrays of {dtype} are not volumes ctprep stores"),
            "convert it first, e.g. array.astype(np.int16) for HU or np.float32 for intensities",
        )
    })
}

/// A read-only numpy view of `a`, kept alive by `owner`.
fn view<'py, T: Element>(a: &Array3<T>, owner: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `owner` is the frozen `Volume` that holds `a`; nothing replaces or reallocates a
    // frozen volume's data, so the memory stays valid for as long as the view keeps `owner` alive.
    let arr = unsafe { PyArray3::borrow_from_array(a, owner) };
    arr.call_method("setflags", (), Some(&[("write", false)].into_py_dict(arr.py())?))?;
    Ok(arr.into_any())
}

/// A 4x4 matrix as numpy.
pub fn matrix4<'py>(py: Python<'py>, m: [[f64; 4]; 4]) -> Bound<'py, PyArray2<f64>> {
    PyArray2::from_owned_array(py, ndarray::Array2::from_shape_fn((4, 4), |(r, c)| m[r][c]))
}

#[pymethods]
impl PyVolume {
    /// Volume(array, spacing=(1, 1, 1), origin=(0, 0, 0), direction=None, kind="unknown", meta=None)
    ///
    /// A volume from a ``[z, y, x]`` numpy array (copied). ``spacing`` is ``(z, y, x)`` mm,
    /// ``origin`` LPS ``(x, y, z)`` mm, ``direction`` 3x3 (identity: axial, LPS-aligned).
    #[new]
    #[pyo3(signature = (array, spacing = (1.0, 1.0, 1.0), origin = [0.0, 0.0, 0.0], direction = None, kind = "unknown", meta = None))]
    fn new(
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        spacing: (f64, f64, f64),
        origin: [f64; 3],
        direction: Option<[[f64; 3]; 3]>,
        kind: &str,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let data = data_from_numpy(py, array)?;
        let mut m: Meta = match meta {
            Some(d) => {
                let text: String = py.import("json")?.call_method1("dumps", (d,))?.extract()?;
                serde_json::from_str(&text)
                    .map_err(|e| usage(py, format!("meta is not a ctprep meta dict: {e}"), "pass vol.meta of another volume, or nothing"))?
            }
            None => Meta::default(),
        };
        m.kind = kind_named(py, kind)?;
        // Columns in, rows (one per index axis) inside.
        let d = direction.unwrap_or([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let geometry = Geometry {
            spacing: xyz_from_zyx([spacing.0, spacing.1, spacing.2]),
            origin,
            direction: [[d[0][0], d[1][0], d[2][0]], [d[0][1], d[1][1], d[2][1]], [d[0][2], d[1][2], d[2][2]]],
        };
        if let Some(why) = geometry.invalid() {
            return Err(usage(py, format!("impossible geometry: {why}"), "spacing must be positive, direction 3 independent unit columns"));
        }
        Ok(PyVolume::wrap(Volume::new(data, geometry, m)))
    }

    /// The voxels, ``[z, y, x]``, read-only and sharing the volume's memory.
    #[getter]
    fn array<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let owner = slf.clone().into_any();
        match &slf.get().inner.data {
            VolumeData::U8(a) => view(a, owner),
            VolumeData::I16(a) => view(a, owner),
            VolumeData::U16(a) => view(a, owner),
            VolumeData::I32(a) => view(a, owner),
            VolumeData::F32(a) => view(a, owner),
            VolumeData::F64(a) => view(a, owner),
        }
    }

    /// Voxel size along the array's axes ``(z, y, x)``, mm.
    #[getter]
    fn spacing(&self) -> (f64, f64, f64) {
        let s = zyx_from_xyz(self.inner.geometry.spacing);
        (s[0], s[1], s[2])
    }

    /// LPS position ``(x, y, z)`` of voxel ``[0, 0, 0]``'s centre, mm.
    #[getter]
    fn origin(&self) -> (f64, f64, f64) {
        let o = self.inner.geometry.origin;
        (o[0], o[1], o[2])
    }

    /// 3x3: column ``j`` is the LPS unit vector of index axis ``j`` (x, y, z).
    #[getter]
    fn direction<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let d = self.inner.geometry.direction;
        PyArray2::from_owned_array(py, ndarray::Array2::from_shape_fn((3, 3), |(r, c)| d[c][r]))
    }

    /// 4x4 index ``(x, y, z)`` -> RAS mm: nibabel's ``img.affine`` for the NIfTI of this volume.
    #[getter]
    fn affine<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        matrix4(py, self.inner.geometry.affine_ras())
    }

    /// 4x4 index ``(x, y, z)`` -> LPS mm (DICOM patient space; ITK's convention).
    #[getter]
    fn affine_lps<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        matrix4(py, self.inner.geometry.affine_lps())
    }

    /// ``(z, y, x)``.
    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let s = self.inner.shape();
        (s[0], s[1], s[2])
    }

    /// The numpy dtype name of ``array``.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.data.dtype().name()
    }

    /// What the values are: stored, hu, mask, labels, normalized or unknown.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.meta.kind.name()
    }

    /// Everything else known about the volume, as a dict (a copy).
    #[getter]
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::to_python(py, &self.inner.meta)
    }

    /// A new volume on this grid with other voxels (same metadata; ``kind`` if given).
    #[pyo3(signature = (array, kind = None))]
    fn like(&self, py: Python<'_>, array: &Bound<'_, PyAny>, kind: Option<&str>) -> PyResult<Self> {
        let data = data_from_numpy(py, array)?;
        if data.shape() != self.inner.shape() {
            return Err(usage(
                py,
                format!("the array is {:?} (z, y, x), the grid {:?}", data.shape(), self.inner.shape()),
                "pass an array of the volume's shape, or build a Volume with its own spacing",
            ));
        }
        let mut meta = self.inner.meta.clone();
        if let Some(k) = kind {
            meta.kind = kind_named(py, k)?;
        }
        Ok(PyVolume::wrap(Volume::new(data, self.inner.geometry.clone(), meta)))
    }

    fn __repr__(&self) -> String {
        let [nz, ny, nx] = self.inner.shape();
        let (sz, sy, sx) = self.spacing();
        format!(
            "<ctprep.Volume {} {} [z, y, x] = [{nz}, {ny}, {nx}], spacing (z, y, x) = ({sz:.3}, {sy:.3}, {sx:.3}) mm, {}>",
            self.inner.meta.kind.name(),
            self.inner.data.dtype().name(),
            self.inner.geometry.axis_codes()
        )
    }
}
