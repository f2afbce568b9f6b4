//! A tenant's own plugin crate, outside the workspace: `cargo` run in it with the `weir`
//! under test on PATH (the crate's test runner is `weir plugin exec`) and one shared target
//! directory under the workspace's, so that reruns are warm.

use std::path::Path;
use std::process::{Command, Output};

use super::root;

/// `cargo` in the crate at `dir`, building into `target/scaffold` of the workspace.
pub fn cargo_in(dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let weir_dir = Path::new(env!("CARGO_BIN_EXE_weir"))
        .parent()
        .expect("weir has a directory");
    let path = std::env::join_paths(std::iter::once(weir_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH joins");
    cmd.current_dir(dir)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", root().join("target/scaffold"));
    cmd
}

/// Where `cargo build --release` in [`cargo_in`] puts the component of library `lib`.
pub fn built_component(lib: &str) -> std::path::PathBuf {
    root().join(format!("target/scaffold/wasm32-wasip2/release/{lib}.wasm"))
}

/// The stdout of a command that must succeed; its output when it did not.
pub fn succeed(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
