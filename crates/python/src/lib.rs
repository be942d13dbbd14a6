//! # `ctprep` for Python
//!
//! The tutorial's steps on numpy arrays, in memory, over the same core as the command-line
//! tools: `volume::PyVolume` wraps a core volume (array `[z, y, x]` + LPS geometry + metadata),
//! each function releases the GIL while it works, and core errors become the Python exceptions
//! of `ctprep._errors` with the CLI's message and hint. `_cli_main` runs a tool inside the
//! interpreter: the package's console scripts are thin shims over it.

mod errors;
mod ops;
mod volume;

use pyo3::prelude::*;

/// Run the command-line tool `tool` with `args` (without the program name); returns its exit
/// code. The GIL is released: the tool may take seconds and print to the process's stdout.
#[pyfunction]
fn _cli_main(py: Python<'_>, tool: &str, args: Vec<String>) -> PyResult<u8> {
    let argv: Vec<String> = std::iter::once(tool.to_string()).chain(args).collect();
    let tool = tool.to_string();
    py.detach(move || ctprep_cli::run_tool(&tool, argv)).ok_or_else(|| pyo3::exceptions::PyValueError::new_err("no such ctprep tool"))
}

/// A serializable core value (QC numbers, metadata, tags) as the Python object `json.loads`
/// makes of it: dicts, lists, str, int, float, None.
pub(crate) fn to_python<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

#[pymodule]
fn _ctprep(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<volume::PyVolume>()?;
    m.add_function(wrap_pyfunction!(_cli_main, m)?)?;
    ops::register(m)
}
