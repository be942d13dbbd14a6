fn main() -> std::process::ExitCode {
    ctprep_cli::main("vol-normalize", ctprep_cli::tools::vol_normalize::run)
}
