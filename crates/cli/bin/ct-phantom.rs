fn main() -> std::process::ExitCode {
    ctprep_cli::main("ct-phantom", ctprep_cli::tools::ct_phantom::run)
}
