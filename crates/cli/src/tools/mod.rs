//! One module per tool: its arguments (the help text is the doc comments) and its `run`.

pub mod ct_phantom;
pub mod dcm_inspect;
pub mod dcm_stack;
pub mod hu_convert;
pub mod lung_seg;
pub mod vol_mesh;
pub mod vol_normalize;
pub mod vol_resample;
pub mod vol_view;
