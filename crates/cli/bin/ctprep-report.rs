fn main() -> std::process::ExitCode {
    ctprep_cli::main("ctprep-report", ctprep_cli::tools::ctprep_report::run)
}
