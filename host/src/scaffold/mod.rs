//! `weir plugin new` writes a ready plugin crate; `weir plugin build` builds its component;
//! `weir plugin exec` runs a wasip2 command component, the test runner that crate's
//! `cargo test` uses; `weir.toml` holds the crate's defaults for `weir plugin deploy`.
//!
//! The crate: `Cargo.toml` (the SDK by a path relative to the crate, the release profile of
//! a plugin), `src/lib.rs` (a working aggregate using `#[derive(Output)]`, whole-window or
//! incremental, and its unit tests), `.cargo/config.toml` (builds for `wasm32-wasip2`,
//! `weir plugin exec` as the test runner), a sample `pipeline.toml` over the bundled
//! `events.jsonl`, a `weir.toml`, a `README.md` of next steps and a `.gitignore`; then its
//! `Cargo.lock` ([`lock`]).

mod cargo;
mod exec;
mod weir_toml;

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

pub use cargo::{Built, Lock, build, component_path, lock};
pub use exec::exec;
pub use weir_toml::{DEFAULT_URL, Defaults, WeirToml};

/// The SDK of the source tree this binary was built from, the default for `--sdk`.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// What `weir plugin new` writes.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The crate's name; also the directory written, under the parent given to
    /// [`NewPlugin::write`].
    pub name: String,
    /// An `Incremental` plugin instead of a whole-window `Plugin`.
    pub incremental: bool,
    /// The `weir-guest` SDK crate: the guest-sdk directory of a Weir checkout or an
    /// unpacked package. `None`: the guest-sdk of the tree this binary was built from.
    pub sdk: Option<PathBuf>,
}

impl NewPlugin {
    /// Writes the crate into `parent/<name>` and returns that directory. Refuses a name
    /// that is not a valid crate name and a directory that exists and is not empty.
    pub fn write(&self, parent: &Path) -> anyhow::Result<PathBuf> {
        check_crate_name(&self.name)?;
        let dir = parent.join(&self.name);
        if dir.exists() {
            let mut entries = std::fs::read_dir(&dir).with_context(|| {
                format!("{} exists and is not a readable directory", dir.display())
            })?;
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty: choose another name or remove it",
                    dir.display()
                );
            }
        }
        let sdk = Sdk::locate(self.sdk.as_deref())?;
        // Paths from the crate to the SDK are relative, so that the crate and the SDK
        // (e.g. a checkout holding both) can move together.
        let at = parent
            .canonicalize()
            .with_context(|| format!("{} is not a directory", parent.display()))?
            .join(&self.name);
        let crate_name = self.name.replace('-', "_");
        let render = |template: &str| {
            template
                .replace("{{name}}", &self.name)
                .replace("{{crate_name}}", &crate_name)
        };

        let mut extra = String::new();
        if self.incremental {
            extra.push_str("serde = { version = \"1\", features = [\"derive\"] }\n");
        }
        let patch = match &sdk.derive_patch {
            Some(path) => format!(
                "\n# The packaged SDK names its derive crate as a registry dependency: use the\n\
                 # unpacked one beside it.\n[patch.crates-io]\nweir-guest-derive = {{ path = {} }}\n",
                toml_string(&relative_path(&at, path))?
            ),
            None => String::new(),
        };
        let manifest = render(include_str!("templates/Cargo.toml.tmpl"))
            .replace("{{sdk_path}}", &toml_string(&relative_path(&at, &sdk.dir))?)
            .replace("{{extra_dependencies}}", &extra)
            .replace("{{patch}}", &patch);
        let lib = if self.incremental {
            include_str!("templates/lib-incremental.rs.tmpl")
        } else {
            include_str!("templates/lib-whole.rs.tmpl")
        };
        let kind_note = if self.incremental {
            " --incremental (an `Incremental` aggregate: the host keeps one state per pane)"
        } else {
            " (a whole-window aggregate)"
        };
        let files: [(&str, String); 8] = [
            ("Cargo.toml", manifest),
            ("src/lib.rs", render(lib)),
            (
                ".cargo/config.toml",
                render(include_str!("templates/cargo-config.toml.tmpl")),
            ),
            (
                "pipeline.toml",
                render(include_str!("templates/pipeline.toml.tmpl")),
            ),
            (
                weir_toml::FILE_NAME,
                render(include_str!("templates/weir.toml.tmpl")),
            ),
            (
                "events.jsonl",
                include_str!("templates/events.jsonl").to_string(),
            ),
            (
                "README.md",
                render(include_str!("templates/README.md.tmpl"))
                    .replace("{{kind_note}}", kind_note),
            ),
            (
                ".gitignore",
                include_str!("templates/gitignore.tmpl").to_string(),
            ),
        ];
        for (path, contents) in files {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(dir)
    }
}

/// Where the SDK is, and its derive crate when the SDK's manifest does not name it by path.
struct Sdk {
    dir: PathBuf,
    derive_patch: Option<PathBuf>,
}

impl Sdk {
    fn locate(given: Option<&Path>) -> anyhow::Result<Sdk> {
        let dir = match given {
            Some(dir) => dir.to_path_buf(),
            None => {
                let built_from = Path::new(BUILT_FROM_SDK);
                if !built_from.join("Cargo.toml").is_file() {
                    bail!(
                        "this weir was built without its source tree at hand (no {}): pass \
                         --sdk DIR, the guest-sdk directory of a Weir checkout or an unpacked \
                         weir-guest package",
                        built_from.display()
                    );
                }
                built_from.to_path_buf()
            }
        };
        let dir = dir
            .canonicalize()
            .with_context(|| format!("--sdk {}: no such directory", dir.display()))?;
        let manifest = read_manifest(&dir)?;
        let name = package_name(&manifest);
        if name != Some("weir-guest") {
            bail!(
                "--sdk {}: not the weir-guest SDK (its Cargo.toml names the package {})",
                dir.display(),
                name.map_or("nothing".to_string(), |n| format!("`{n}`"))
            );
        }
        let derive = manifest
            .get("dependencies")
            .and_then(|d| d.get("weir-guest-derive"));
        if derive.and_then(|d| d.get("path")).is_some() || derive.is_none() {
            return Ok(Sdk {
                dir,
                derive_patch: None,
            });
        }
        // A packaged SDK: the derive crate comes "from crates.io"; find it unpacked
        // beside the SDK.
        let version = derive
            .and_then(|d| d.get("version").or(Some(d)))
            .and_then(toml::Value::as_str)
            .unwrap_or("")
            .trim_start_matches('=');
        let candidates = [
            dir.parent()
                .map(|p| p.join(format!("weir-guest-derive-{version}"))),
            Some(dir.join("derive")),
        ];
        for candidate in candidates.into_iter().flatten() {
            if let Ok(m) = read_manifest(&candidate)
                && package_name(&m) == Some("weir-guest-derive")
            {
                return Ok(Sdk {
                    dir,
                    derive_patch: Some(candidate),
                });
            }
        }
        bail!(
            "--sdk {}: this packaged SDK needs weir-guest-derive {version}; unpack \
             weir-guest-derive-{version}.crate beside it (as {}/weir-guest-derive-{version})",
            dir.display(),
            dir.parent().unwrap_or(&dir).display()
        )
    }
}

fn read_manifest(dir: &Path) -> anyhow::Result<toml::Table> {
    let path = dir.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("parsing {}", path.display()))
}

fn package_name(manifest: &toml::Table) -> Option<&str> {
    manifest.get("package")?.get("name")?.as_str()
}

/// The path from the directory `from` to `to`, both absolute and without `.` or `..`:
/// `..` for each of `from`'s components below their common ancestor, then the rest of `to`.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf = std::iter::repeat_n(Component::ParentDir, from.len() - common)
        .chain(to[common..].iter().copied())
        .collect();
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

/// `path` as a TOML string (quoted and escaped).
fn toml_string(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    Ok(toml::Value::String(text.to_string()).to_string())
}

/// Cargo's rules for a new package name, with the reason when one is broken.
fn check_crate_name(name: &str) -> anyhow::Result<()> {
    const RESERVED: [&str; 8] = [
        "test",
        "std",
        "core",
        "alloc",
        "proc_macro",
        "weir_guest",
        "weir_guest_derive",
        "serde",
    ];
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > 64 {
        Some("it is longer than 64 characters".to_string())
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(format!(
            "it contains {c:?}; use ASCII letters, digits, `-` and `_`"
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("it must start with an ASCII letter".to_string())
    } else if is_keyword(&name.replace('-', "_")) {
        Some("it is a Rust keyword".to_string())
    } else if RESERVED.contains(&name.replace('-', "_").as_str()) {
        Some("it is the name of a crate the plugin uses".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => bail!("`{name}` is not a valid crate name: {reason}"),
        None => Ok(()),
    }
}

fn is_keyword(word: &str) -> bool {
    const KEYWORDS: [&str; 51] = [
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait",
        "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
        "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
    ];
    KEYWORDS.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_follow_cargo_rules() {
        for ok in ["my-plugin", "p95", "Median_Plugin", "a"] {
            assert!(check_crate_name(ok).is_ok(), "{ok}");
        }
        let reason = |name: &str| check_crate_name(name).unwrap_err().to_string();
        assert_eq!(
            reason("my plugin"),
            "`my plugin` is not a valid crate name: it contains ' '; use ASCII letters, digits, `-` and `_`"
        );
        assert!(reason("9lives").ends_with("must start with an ASCII letter"));
        assert!(reason("-x").ends_with("must start with an ASCII letter"));
        assert!(reason("").ends_with("it is empty"));
        assert!(reason("fn").ends_with("a Rust keyword"));
        assert!(reason("weir-guest").ends_with("a crate the plugin uses"));
        assert!(reason("../x").contains("'.'"));
    }

    #[test]
    fn an_existing_non_empty_directory_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("taken")).unwrap();
        std::fs::write(parent.path().join("taken/notes.txt"), "mine").unwrap();
        let new = NewPlugin {
            name: "taken".into(),
            incremental: false,
            sdk: None,
        };
        let err = new.write(parent.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("already exists and is not empty: choose another name or remove it"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(parent.path().join("taken/notes.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn writes_the_crate_against_the_repository_sdk() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("empty-ok")).unwrap();
        let new = NewPlugin {
            name: "empty-ok".into(),
            incremental: true,
            sdk: None,
        };
        let dir = new.write(parent.path()).unwrap();
        let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let sdk = Path::new(BUILT_FROM_SDK).canonicalize().unwrap();
        let path = manifest["dependencies"]["weir-guest"]["path"]
            .as_str()
            .unwrap();
        assert!(path.starts_with("../"), "{path}");
        assert_eq!(dir.join(path).canonicalize().unwrap(), sdk);
        assert!(manifest["dependencies"].get("serde").is_some());
        assert!(manifest.get("patch").is_none());
        assert_eq!(manifest["lib"]["crate-type"].as_array().unwrap().len(), 2);
        let pipeline = std::fs::read_to_string(dir.join("pipeline.toml")).unwrap();
        assert!(pipeline.contains("target/wasm32-wasip2/release/empty_ok.wasm"));
        assert!(
            std::fs::read_to_string(dir.join("src/lib.rs"))
                .unwrap()
                .contains("export_incremental!(Summary)")
        );
        let weir_toml: WeirToml =
            toml::from_str(&std::fs::read_to_string(dir.join("weir.toml")).unwrap()).unwrap();
        assert_eq!(
            weir_toml,
            WeirToml {
                component: Some("target/wasm32-wasip2/release/empty_ok.wasm".into()),
                ..WeirToml::default()
            }
        );
        for file in [
            ".cargo/config.toml",
            "events.jsonl",
            "README.md",
            ".gitignore",
        ] {
            assert!(dir.join(file).is_file(), "{file}");
        }
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        let rel = |from: &str, to: &str| relative_path(Path::new(from), Path::new(to));
        assert_eq!(
            rel("/w/plugins/mine", "/w/guest-sdk"),
            Path::new("../../guest-sdk")
        );
        assert_eq!(
            rel("/tmp/x/mine", "/w/guest-sdk"),
            Path::new("../../../w/guest-sdk")
        );
        assert_eq!(
            rel("/w", "/w/guest-sdk/derive"),
            Path::new("guest-sdk/derive")
        );
        assert_eq!(rel("/w/sdk", "/w/sdk"), Path::new("."));
    }

    #[test]
    fn a_directory_that_is_not_the_sdk_is_refused() {
        let err = Sdk::locate(Some(Path::new(env!("CARGO_MANIFEST_DIR"))))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.ends_with("not the weir-guest SDK (its Cargo.toml names the package `weir`)"),
            "{err}"
        );
    }
}
