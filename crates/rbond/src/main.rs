//! The `rbond` command (and `ifenslave`, when called by that name): see `rbond::cli`.

fn main() -> std::process::ExitCode {
    rbond::cli::main()
}
