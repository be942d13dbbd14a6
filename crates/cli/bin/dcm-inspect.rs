fn main() -> std::process::ExitCode {
    ctprep_cli::main("dcm-inspect", ctprep_cli::tools::dcm_inspect::run)
}
