//! End-to-end tests of every tool: one integration binary (as ripgrep and coreutils do), one
//! module per tool. Inputs are generated in Rust (ct-phantom's library); outputs are parsed back
//! with ctprep-core and checked for values, geometry, messages and exit codes.

mod util;

mod common;
mod ct_phantom;
mod ctprep_report;
mod dcm_inspect;
mod dcm_stack;
mod golden;
mod hostile;
mod hu_convert;
mod lung_seg;
mod pipeline;
mod real_data;
mod traps;
mod vol_mesh;
mod vol_normalize;
mod vol_resample;
mod vol_view;
