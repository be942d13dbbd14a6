//! One module per tool: its arguments (the help text is the doc comments) and its `run`.

// The argument docs are --help text, written for a terminal: `Sequence[0]` and `vol<SUFFIX>`
// are what the user types, not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

pub mod ct_phantom;
pub mod ctprep_report;
pub mod dcm_inspect;
pub mod dcm_stack;
pub mod hu_convert;
pub mod lung_seg;
pub mod vol_mesh;
pub mod vol_normalize;
pub mod vol_resample;
pub mod vol_view;
