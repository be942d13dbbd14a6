fn main() -> std::process::ExitCode {
    ctprep_cli::main("vol-view", ctprep_cli::tools::vol_view::run)
}
