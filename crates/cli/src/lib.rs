//! # ctprep CLI plumbing
//!
//! Everything the tools share lives here once, so no tool can drift: argument groups
//! (`-` for stdin/stdout, output format, verbosity), the error report (`tool: error: ...` then
//! `  hint: ...`), exit codes, logging to stderr, refusing binary on a terminal, interrupt
//! clean-up, and man pages/completions. Each tool is a module in [`tools`] with an `Args`
//! struct and a `run` function; each binary is a three-line `main`.

#[cfg(target_os = "linux")]
mod alloc;
pub mod args;
pub mod stacking;
pub mod tools;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: alloc::HugePages = alloc::HugePages;

use anyhow::Result;
use clap::Parser;
use ctprep_core::{Error as CoreError, ErrorKind};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit codes, the same for every tool (documented in each `--help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Failure: bad input, I/O error, a computation that failed.
    pub const FAILURE: u8 = 1;
    /// Usage error: bad arguments (clap's own code too).
    pub const USAGE: u8 = 2;
    /// Ran correctly but the result is empty (no series matched, no lungs found, no tag found).
    pub const EMPTY: u8 = 3;
}

/// The text appended to every tool's `--help`.
pub const EXIT_HELP: &str = "Exit status: 0 success; 1 failure (bad input, I/O); 2 usage error; \
3 ran fine but the result is empty.\n\nAxes: volumes are [z, y, x] in memory and on disk (NIfTI \
i/j/k = x/y/z); world coordinates are DICOM patient space (LPS), millimetres.";

/// How a run ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// The run was fine but produced nothing (exit 3).
    Empty,
    /// Some inputs failed, the rest was processed (exit 1 at the end).
    PartialFailure,
}

/// Per-run context: the tool's name, verbosity, and logging to stderr.
pub struct Cx {
    pub tool: &'static str,
    pub verbosity: i8,
    pub args: Vec<String>,
}

impl Cx {
    pub fn new(tool: &'static str, verbosity: i8) -> Self {
        Cx::with_args(tool, verbosity, std::env::args().skip(1).collect())
    }
    /// A context for a run whose arguments are not the process's (the Python shims).
    pub fn with_args(tool: &'static str, verbosity: i8, args: Vec<String>) -> Self {
        Cx { tool, verbosity, args }
    }
    /// Normal progress messages (hidden by -q).
    pub fn info(&self, msg: impl AsRef<str>) {
        if self.verbosity >= 0 {
            eprintln!("{}: {}", self.tool, msg.as_ref());
        }
    }
    /// Explanations of what was inferred or chosen (shown with -v).
    pub fn verbose(&self, msg: impl AsRef<str>) {
        if self.verbosity >= 1 {
            eprintln!("{}: {}", self.tool, msg.as_ref());
        }
    }
    /// Under -v, how long the work itself took (no file I/O), in the one wording
    /// `make bench` reads: `time in memory: X s (what)`.
    pub fn time_in_memory(&self, took: std::time::Duration, what: &str) {
        self.verbose(format!("time in memory: {:.3} s ({what})", took.as_secs_f64()));
    }
    /// Warnings (hidden only by -q).
    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.verbosity >= 0 {
            eprintln!("{}: warning: {}", self.tool, msg.as_ref());
        }
    }
    /// Record this run in a volume's provenance.
    pub fn stamp(&self, meta: &mut ctprep_core::Meta) {
        meta.push_step(self.tool, env!("CARGO_PKG_VERSION"), self.args.clone());
    }
}

/// The core's progress drawn as a bar on stderr: only on a terminal, not with -q, and only once a
/// task has run for a while (`CTPREP_PROGRESS_AFTER_MS`, default 1000), so quick steps stay quiet.
struct ProgressBar {
    tool: &'static str,
    after: std::time::Duration,
    state: std::sync::Mutex<Option<BarState>>,
}

struct BarState {
    what: String,
    total: u64,
    done: u64,
    started: std::time::Instant,
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    fn install(tool: &'static str, verbosity: i8) {
        if verbosity < 0 || !std::io::stderr().is_terminal() {
            return;
        }
        let ms = std::env::var("CTPREP_PROGRESS_AFTER_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        let after = std::time::Duration::from_millis(ms);
        ctprep_core::progress::listen(Box::new(ProgressBar { tool, after, state: std::sync::Mutex::new(None) }));
    }
}

impl ctprep_core::progress::Listener for ProgressBar {
    fn start(&self, what: &str, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            *s = Some(BarState { what: what.into(), total, done: 0, started: std::time::Instant::now(), bar: None });
        }
    }
    fn advance(&self, n: u64) {
        let Ok(mut guard) = self.state.lock() else { return };
        let Some(s) = guard.as_mut() else { return };
        s.done += n;
        if s.bar.is_none() && s.started.elapsed() >= self.after {
            let pb = indicatif::ProgressBar::with_draw_target(Some(s.total), indicatif::ProgressDrawTarget::stderr());
            pb.set_style(
                indicatif::ProgressStyle::with_template("{prefix}: {msg} [{bar:30}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb.set_prefix(self.tool);
            pb.set_message(s.what.clone());
            s.bar = Some(pb);
        }
        if let Some(pb) = &s.bar {
            pb.set_position(s.done);
        }
    }
    fn finish(&self) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(pb) = s.take().and_then(|s| s.bar) {
                pb.finish_and_clear();
            }
        }
    }
}

/// Something a tool's `Args` provide to the shared main.
pub trait ToolArgs: Parser {
    fn verbosity(&self) -> i8;
}

/// `impl ToolArgs` for an `Args` struct with a flattened `common: CommonArgs`.
#[macro_export]
macro_rules! tool_args {
    ($t:ty) => {
        impl $crate::ToolArgs for $t {
            fn verbosity(&self) -> i8 {
                self.common.verbosity()
            }
        }
    };
}

/// The shared `main`: parse, install handlers, run, report errors, map exit codes.
pub fn main<A: ToolArgs>(tool: &'static str, run: fn(A, &mut Cx) -> Result<Exit>) -> ExitCode {
    ExitCode::from(main_with_args(tool, run, std::env::args().collect()))
}

/// [`main`] on a given argv (`argv[0]` is the program's name), returning the exit code: how the
/// Python package's console scripts run a tool inside the interpreter, whose own argv differs.
pub fn main_with_args<A: ToolArgs>(tool: &'static str, run: fn(A, &mut Cx) -> Result<Exit>, argv: Vec<String>) -> u8 {
    // Interrupted (SIGINT, or SIGTERM/SIGHUP from a scheduler or a closed terminal): remove the
    // temporaries in flight, exit 130 like a shell would.
    let _ = ctrlc::set_handler(|| {
        ctprep_core::io::inflight::cleanup();
        std::process::exit(130);
    });
    let cmd = A::command().name(tool).bin_name(tool).after_help(EXIT_HELP);
    // `--generate WHAT` works even when the tool's required arguments are missing.
    if let Some(i) = argv.iter().position(|a| a == "--generate") {
        return match argv.get(i + 1) {
            Some(what) => generate(cmd, what),
            None => {
                eprintln!("{tool}: error: --generate needs man, bash, zsh, fish, elvish or powershell");
                exit::USAGE
            }
        };
    }
    let matches = match cmd.clone().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    let args = match A::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return exit::USAGE;
        }
    };
    let mut cx = Cx::with_args(tool, args.verbosity(), argv.iter().skip(1).cloned().collect());
    ProgressBar::install(tool, args.verbosity());
    match run(args, &mut cx) {
        Ok(Exit::Ok) => exit::OK,
        Ok(Exit::Empty) => exit::EMPTY,
        Ok(Exit::PartialFailure) => exit::FAILURE,
        Err(e) => report(tool, &e),
    }
}

/// Run the tool named `tool` on `argv`; `None` when no tool has that name.
pub fn run_tool(tool: &str, argv: Vec<String>) -> Option<u8> {
    use tools::*;
    Some(match tool {
        "dcm-inspect" => main_with_args("dcm-inspect", dcm_inspect::run, argv),
        "dcm-stack" => main_with_args("dcm-stack", dcm_stack::run, argv),
        "hu-convert" => main_with_args("hu-convert", hu_convert::run, argv),
        "vol-resample" => main_with_args("vol-resample", vol_resample::run, argv),
        "lung-seg" => main_with_args("lung-seg", lung_seg::run, argv),
        "vol-normalize" => main_with_args("vol-normalize", vol_normalize::run, argv),
        "vol-mesh" => main_with_args("vol-mesh", vol_mesh::run, argv),
        "vol-view" => main_with_args("vol-view", vol_view::run, argv),
        "ct-phantom" => main_with_args("ct-phantom", ct_phantom::run, argv),
        "ctprep-report" => main_with_args("ctprep-report", ctprep_report::run, argv),
        _ => return None,
    })
}

/// Print an error as `tool: error: ...` / `  hint: ...` and pick the exit code.
pub fn report(tool: &str, e: &anyhow::Error) -> u8 {
    let core = e.chain().find_map(|c| c.downcast_ref::<CoreError>());
    let broken_pipe = e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
        || core.is_some_and(|c| c.is_broken_pipe());
    if broken_pipe {
        return exit::OK;
    }
    let mut msg = format!("{e}");
    for cause in e.chain().skip(1) {
        let t = cause.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
    }
    eprintln!("{tool}: error: {msg}");
    if let Some(h) = core.and_then(|c| c.hint.as_deref()) {
        eprintln!("  hint: {h}");
    } else if let Some(h) = e.chain().find_map(|c| c.downcast_ref::<Hinted>()).map(|h| h.hint.as_str()) {
        eprintln!("  hint: {h}");
    }
    match core.map(|c| c.kind) {
        Some(ErrorKind::Usage) => exit::USAGE,
        Some(ErrorKind::Empty) => exit::EMPTY,
        _ if e.chain().any(|c| c.downcast_ref::<Hinted>().is_some_and(|h| h.usage)) => exit::USAGE,
        _ => exit::FAILURE,
    }
}

/// A CLI-level error with a hint (for problems the core never sees, like a binary terminal).
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
    pub usage: bool,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Hinted {}

/// A usage error (exit 2) with a hint.
pub fn usage_error(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted { message: message.into(), hint: hint.into(), usage: true })
}

fn generate(mut cmd: clap::Command, what: &str) -> u8 {
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout();
    let res = match what {
        "man" => clap_mangen::Man::new(cmd).render(&mut out).map_err(|e| e.to_string()),
        shell => match shell.parse::<clap_complete::Shell>() {
            Ok(sh) => {
                clap_complete::generate(sh, &mut cmd, name.clone(), &mut out);
                Ok(())
            }
            Err(_) => Err(format!("unknown --generate target '{shell}' (man, bash, zsh, fish, elvish, powershell)")),
        },
    };
    match res {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            exit::USAGE
        }
    }
}
