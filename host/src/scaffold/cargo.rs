//! The cargo runs of a tenant's plugin crate: its `Cargo.lock` right after `weir plugin new`
//! ([`lock`]), and its component at `weir plugin build` ([`build`]), copied to where the
//! crate's pipeline file and `weir.toml` name it whatever cargo's target directory is.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The target a plugin is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Where a crate's component is expected, relative to the crate: the path
/// `cargo build --release` writes without `CARGO_TARGET_DIR`.
pub fn component_path(crate_name: &str) -> PathBuf {
    release_dir().join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// `target/wasm32-wasip2/release`, relative to a crate.
fn release_dir() -> PathBuf {
    Path::new("target").join(TARGET).join("release")
}

/// The cargo to run: `$CARGO` (set when `weir` itself runs under cargo), else `cargo` on
/// `PATH`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// What became of a new crate's `Cargo.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// `cargo generate-lockfile` wrote it.
    Written,
    /// The registry could not be reached (the reason); it was written from the crates
    /// this machine has cached (`--offline`).
    WrittenOffline(String),
    /// Not written (the reason): the crate's first build writes it.
    NotWritten(String),
}

impl std::fmt::Display for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lock::Written => write!(f, "wrote Cargo.lock"),
            Lock::WrittenOffline(why) => write!(
                f,
                "wrote Cargo.lock from the crates cached on this machine (the registry could \
                 not be reached: {why})"
            ),
            Lock::NotWritten(why) => write!(
                f,
                "no Cargo.lock written ({why}); the first `weir plugin build` or `cargo build` \
                 writes it"
            ),
        }
    }
}

/// Runs `cargo generate-lockfile` in the crate at `dir`, again `--offline` when that
/// fails; never an error: a crate without a lock file still builds.
pub fn lock(dir: &Path) -> Lock {
    // `Ok(Err(reason))`: cargo ran and failed; `Err(reason)`: it could not be run.
    let attempt = |offline: bool| -> Result<Result<(), String>, String> {
        let mut cmd = cargo();
        cmd.current_dir(dir).arg("generate-lockfile");
        if offline {
            cmd.arg("--offline");
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cargo could not be run: {e}"))?;
        if out.status.success() && dir.join("Cargo.lock").is_file() {
            return Ok(Ok(()));
        }
        Ok(Err(first_error(&String::from_utf8_lossy(&out.stderr))
            .unwrap_or_else(|| {
                format!("cargo exited with {}", out.status)
            })))
    };
    match attempt(false) {
        Ok(Ok(())) => Lock::Written,
        Err(why) => Lock::NotWritten(why),
        Ok(Err(why)) => match attempt(true) {
            Ok(Ok(())) => Lock::WrittenOffline(why),
            _ => Lock::NotWritten(format!("`cargo generate-lockfile` failed: {why}")),
        },
    }
}

/// The first `error: …` line of cargo's stderr, without the prefix; else its last line.
fn first_error(stderr: &str) -> Option<String> {
    let lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    lines
        .clone()
        .find_map(|l| l.strip_prefix("error: "))
        .or_else(|| lines.clone().next_back())
        .map(str::to_string)
}

/// A component `weir plugin build` built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Where the crate's files expect it: [`component_path`] under the crate's directory.
    pub component: PathBuf,
    /// Where cargo wrote it, when that is elsewhere (`CARGO_TARGET_DIR`, a `target-dir`
    /// setting): it was copied from there.
    pub copied_from: Option<PathBuf>,
}

/// Builds the plugin crate at `dir` with `cargo build --release --target wasm32-wasip2`
/// (and `cargo_args`), cargo's messages going to stderr, and makes sure its component is
/// at [`component_path`] under `dir`, copying it there when cargo's target directory is
/// elsewhere.
pub fn build(dir: &Path, cargo_args: &[String]) -> anyhow::Result<Built> {
    let manifest = dir.join("Cargo.toml");
    let manifest = manifest.canonicalize().with_context(|| {
        format!(
            "no {}: run `weir plugin build` in a plugin crate, or pass its directory",
            manifest.display()
        )
    })?;
    let mut cmd = cargo();
    // In the crate's directory, so that its `.cargo/config.toml` applies.
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .args(cargo_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .context("running cargo (is it on PATH? https://rustup.rs)")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut built = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        if let Some(wasm) = cdylib_of(&line, &manifest) {
            built = Some(wasm);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); its errors are above (a missing target: `rustup \
             target add {TARGET}`)"
        );
    }
    let Some(built) = built else {
        bail!(
            "cargo built no {TARGET} component of {}: its [lib] crate-type must include \
             \"cdylib\"",
            manifest.display()
        );
    };
    let name = built.file_name().context("the component has a file name")?;
    let expected = release_dir().join(name);
    let component = if dir == Path::new(".") {
        expected
    } else {
        dir.join(expected)
    };
    let same = component
        .canonicalize()
        .is_ok_and(|c| built.canonicalize().is_ok_and(|b| b == c));
    if same {
        return Ok(Built {
            component,
            copied_from: None,
        });
    }
    let parent = component
        .parent()
        .context("the component has a directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Copied beside it, then renamed: a reader never sees half a component.
    let partial = component.with_extension("wasm.partial");
    std::fs::copy(&built, &partial)
        .with_context(|| format!("copying {} to {}", built.display(), partial.display()))?;
    std::fs::rename(&partial, &component)
        .with_context(|| format!("renaming {} to {}", partial.display(), component.display()))?;
    Ok(Built {
        component,
        copied_from: Some(built),
    })
}

/// The `.wasm` file of a `compiler-artifact` message for the cdylib of the package whose
/// manifest is `manifest`.
fn cdylib_of(line: &str, manifest: &Path) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let ours = message["manifest_path"]
        .as_str()
        .and_then(|p| Path::new(p).canonicalize().ok())
        .is_some_and(|p| p == manifest);
    let cdylib = message["target"]["kind"]
        .as_array()
        .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
    if !(ours && cdylib) {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_found_among_cargos_messages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        let manifest = dir.path().join("Cargo.toml").canonicalize().unwrap();
        let artifact = |manifest: &Path, kinds: &str| {
            format!(
                r#"{{"reason":"compiler-artifact","manifest_path":{},"target":{{"kind":{kinds}}},"filenames":["/t/wasm32-wasip2/release/libp.rlib","/t/wasm32-wasip2/release/p.wasm"],"fresh":true}}"#,
                serde_json::to_string(manifest.to_str().unwrap()).unwrap()
            )
        };
        assert_eq!(
            cdylib_of(&artifact(&manifest, r#"["cdylib","rlib"]"#), &manifest),
            Some(PathBuf::from("/t/wasm32-wasip2/release/p.wasm"))
        );
        // A dependency's artifact, an rlib only, and other messages are not it.
        let other = std::env::current_dir().unwrap().join("Cargo.toml");
        assert_eq!(
            cdylib_of(&artifact(&other, r#"["cdylib"]"#), &manifest),
            None
        );
        assert_eq!(
            cdylib_of(&artifact(&manifest, r#"["rlib"]"#), &manifest),
            None
        );
        assert_eq!(
            cdylib_of(r#"{"reason":"build-finished","success":true}"#, &manifest),
            None
        );
        assert_eq!(cdylib_of("not json", &manifest), None);
    }

    #[test]
    fn the_reason_is_cargos_first_error_line() {
        let stderr = "    Updating crates.io index\nerror: failed to get `serde` as a dependency\n\nCaused by:\n  network down\n";
        assert_eq!(
            first_error(stderr).as_deref(),
            Some("failed to get `serde` as a dependency")
        );
        assert_eq!(
            first_error("warning: x\nsomething broke\n\n").as_deref(),
            Some("something broke")
        );
        assert_eq!(first_error(""), None);
    }

    #[test]
    fn the_component_path_is_the_release_builds() {
        assert_eq!(
            component_path("my-summary"),
            Path::new("target/wasm32-wasip2/release/my_summary.wasm")
        );
    }
}
