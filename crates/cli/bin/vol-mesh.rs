fn main() -> std::process::ExitCode {
    ctprep_cli::main("vol-mesh", ctprep_cli::tools::vol_mesh::run)
}
