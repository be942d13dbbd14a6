fn main() -> std::process::ExitCode {
    ctprep_cli::main("lung-seg", ctprep_cli::tools::lung_seg::run)
}
