fn main() -> std::process::ExitCode {
    ctprep_cli::main("hu-convert", ctprep_cli::tools::hu_convert::run)
}
