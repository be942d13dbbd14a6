//! # ctprep-core
//!
//! All the domain logic of ctprep: DICOM series, the volume model, NIfTI/NPY I/O, Hounsfield
//! units, resampling, morphology and segmentation, normalization, meshing and pictures.
//!
//! Conventions that hold everywhere:
//! - voxel arrays are `[z, y, x]` (C order, slice-major; `ndarray::Array3`);
//! - geometry is DICOM patient space (LPS), millimetres; index order in [`geometry`] is (x, y, z);
//! - the core never prints and never exits: it returns [`Error`]s (with a hint) and warnings.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod dicom;
pub mod error;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod geometry;
pub mod hu;
pub mod io;
pub mod mesh;
pub mod meta;
pub mod morph;
pub mod normalize;
pub mod progress;
pub mod resample;
pub mod seg;
pub mod view;
pub mod volume;

pub use error::{Error, ErrorKind, Result};
pub use geometry::Geometry;
pub use meta::{Kind, Meta};
pub use volume::{DType, Volume, VolumeData};
