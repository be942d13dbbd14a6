//! Core errors as Python exceptions. The classes live in Python (`ctprep/_errors.py`) so they can
//! also derive from the built-in ones a Python user catches (`OSError`, `ValueError`,
//! `MemoryError`); here we only pick the class and fill it.

use ctprep_core::{Error, ErrorKind};
use pyo3::prelude::*;

/// The exception for a core error: the class by kind, with `message`, `hint`, `path` and `kind`.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let class = match e.kind {
        ErrorKind::Io => "CtprepIOError",
        ErrorKind::BadInput => "InputError",
        ErrorKind::Unsupported => "UnsupportedError",
        ErrorKind::TooLarge => "TooLargeError",
        ErrorKind::Usage => "UsageError",
        ErrorKind::Empty => "EmptyResultError",
    };
    let kind = format!("{:?}", e.kind).to_lowercase();
    // The causes the CLI prints after the message, once each.
    let message = ctprep_core::dicom::error_chain(&e);
    let path = e.path.as_ref().map(|p| p.display().to_string());
    let built =
        py.import("ctprep._errors").and_then(|m| m.getattr(class)).and_then(|c| c.call1((message.clone(), e.hint.clone(), path, kind)));
    match built {
        Ok(exc) => PyErr::from_value(exc),
        // Only when the package's Python half is missing (the bare extension imported alone).
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
    }
}

/// `Result<T, core::Error>` -> `PyResult<T>`.
pub trait IntoPy<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for ctprep_core::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// A usage error raised from the bindings themselves (a bad argument value).
pub fn usage(py: Python<'_>, message: impl Into<String>, hint: impl Into<String>) -> PyErr {
    to_py(py, Error::usage(message).with_hint(hint))
}

/// Each core warning as a Python `UserWarning` (so `warnings.filterwarnings` and pytest see them).
pub fn warn_all(py: Python<'_>, warnings: &[String]) -> PyResult<()> {
    let category = py.get_type::<pyo3::exceptions::PyUserWarning>();
    for w in warnings {
        let text = std::ffi::CString::new(w.replace('\0', " ")).unwrap_or_default();
        PyErr::warn(py, &category, &text, 1)?;
    }
    Ok(())
}
