fn main() -> std::process::ExitCode {
    storenode::cli::main()
}
