fn main() -> std::process::ExitCode {
    ctprep_cli::main("vol-resample", ctprep_cli::tools::vol_resample::run)
}
