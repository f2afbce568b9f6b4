//! The `weir` binary: see [`weir::cli`].

fn main() -> std::process::ExitCode {
    match weir::cli::try_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
