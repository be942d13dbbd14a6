//! One error type for the whole core: every error names what it was reading (a file, a series,
//! a header field) and, where we know it, the fix. The CLI prints it; the core never does.

use std::path::{Path, PathBuf};

/// What kind of failure this is; the CLI maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Reading or writing failed at the OS level (missing file, permissions, full disk).
    Io,
    /// The input is malformed, truncated or inconsistent.
    BadInput,
    /// The input is valid but uses something we cannot handle (a codec, a dtype).
    Unsupported,
    /// The input claims more memory than we allow; refused before allocating.
    TooLarge,
    /// The caller asked for something contradictory or impossible (exit 2 in the CLI).
    Usage,
    /// The computation ran fine but found nothing (no series, no lungs): exit 3 in the CLI.
    Empty,
}

/// A core error: kind, optional path, message, optional hint, optional cause.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub path: Option<PathBuf>,
    pub message: String,
    pub hint: Option<String>,
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, path: None, message: message.into(), hint: None, source: None }
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    pub fn empty(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Empty, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, message)
    }
    /// An I/O error while doing `what` (e.g. "cannot read") on `path`.
    pub fn io(what: &str, path: &Path, source: std::io::Error) -> Self {
        let kind = ErrorKind::Io;
        let hint = match source.kind() {
            std::io::ErrorKind::NotFound => Some("check the path; `-` reads standard input".to_string()),
            std::io::ErrorKind::PermissionDenied => Some("check the file's permissions, or write somewhere else with -o".to_string()),
            std::io::ErrorKind::UnexpectedEof => Some("the file is truncated: re-export or re-copy it".to_string()),
            _ if is_disk_full(&source) => Some("the disk is full: free space or write elsewhere with -o".to_string()),
            _ => None,
        };
        Error { kind, path: Some(path.to_path_buf()), message: format!("{what}: {source}"), hint, source: Some(Box::new(source)) }
    }
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        // An encoder that cannot know its file says "" (a Cursor, a writer): the caller's name wins.
        if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
            self.path = Some(path.as_ref().to_path_buf());
        }
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    /// True when the underlying cause is a closed pipe on our output (the reader went away).
    pub fn is_broken_pipe(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(f, "'{}': {}", p.display(), self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
