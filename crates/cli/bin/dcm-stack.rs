fn main() -> std::process::ExitCode {
    ctprep_cli::main("dcm-stack", ctprep_cli::tools::dcm_stack::run)
}
