//! The SDK stands alone: its version agrees with the workspace's, and its packaged crates
//! (`cargo package -p weir-guest -p weir-guest-derive`), unpacked into an empty directory,
//! build a plugin that the host loads and runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::root;

fn manifest(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

fn str_at<'a>(table: &'a toml::Table, keys: &[&str]) -> &'a str {
    let mut value = table.get(keys[0]).unwrap_or_else(|| panic!("no {keys:?}"));
    for key in &keys[1..] {
        value = value.get(key).unwrap_or_else(|| panic!("no {keys:?}"));
    }
    value
        .as_str()
        .unwrap_or_else(|| panic!("{keys:?} is not a string"))
}

#[test]
fn sdk_versions_follow_the_workspace() {
    // The SDK writes its package fields out (so that it builds outside the workspace); they
    // must still be the workspace's.
    let workspace = manifest(&root().join("Cargo.toml"));
    let sdk = manifest(&root().join("guest-sdk/Cargo.toml"));
    let derive = manifest(&root().join("guest-sdk/derive/Cargo.toml"));
    let version = str_at(&workspace, &["workspace", "package", "version"]);
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "the host inherits it");
    for key in ["version", "edition", "rust-version", "license"] {
        let expected = str_at(&workspace, &["workspace", "package", key]);
        assert_eq!(
            str_at(&sdk, &["package", key]),
            expected,
            "weir-guest {key}"
        );
        assert_eq!(
            str_at(&derive, &["package", key]),
            expected,
            "weir-guest-derive {key}"
        );
    }
    assert_eq!(
        str_at(&sdk, &["dependencies", "weir-guest-derive", "version"]),
        format!("={version}"),
        "weir-guest pins the derive crate of the same release"
    );
    // No inheritance left in either manifest.
    for (name, text) in [
        ("guest-sdk", "guest-sdk/Cargo.toml"),
        ("derive", "guest-sdk/derive/Cargo.toml"),
    ] {
        let text = std::fs::read_to_string(root().join(text)).expect("manifest reads");
        assert!(
            !text.contains("workspace = true"),
            "{name} inherits from the workspace"
        );
        assert!(
            !text.contains(".workspace"),
            "{name} inherits from the workspace"
        );
    }
}

/// Runs `cmd`, panicking with its output when it fails.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// A plugin written as a tenant would: events and the sum of `price` per key and window,
/// outputs from `#[derive(Output)]`.
const PLUGIN: &str = r#"
use weir_guest::prelude::*;

struct Totals;

#[derive(Output)]
struct Out {
    events: i64,
    #[output(name = "price_sum")]
    sum: f64,
}

impl Plugin for Totals {
    fn configure(_params: &Params) -> Result<Self> {
        Ok(Totals)
    }
    fn describe(&self) -> Describe {
        Describe::new().input("price", Type::F64).outputs_of::<Out>()
    }
    fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let sum = events.f64("price")?.non_null().sum();
        Ok(vec![Out { events: events.len() as i64, sum }.into()])
    }
}

weir_guest::export_plugin!(Totals);
"#;

#[test]
fn packaged_sdk_builds_a_plugin_the_host_runs() {
    // Package both crates (interdependent: cargo verifies them together through a local
    // registry). Its own target dir under the workspace's keeps reruns warm.
    let package_target = root().join("target/sdk-package");
    run(
        cargo()
            .current_dir(root())
            .env("CARGO_TARGET_DIR", &package_target)
            .args([
                "package",
                "--offline",
                "--allow-dirty",
                "--quiet",
                "-p",
                "weir-guest",
                "-p",
                "weir-guest-derive",
            ]),
        "cargo package",
    );

    let scratch = tempfile::tempdir().expect("temp dir");
    let vendor = scratch.path().join("vendor");
    std::fs::create_dir(&vendor).expect("vendor dir");
    let version = env!("CARGO_PKG_VERSION");
    for krate in ["weir-guest", "weir-guest-derive"] {
        let file = package_target.join(format!("package/{krate}-{version}.crate"));
        assert!(file.is_file(), "{} was not written", file.display());
        run(
            Command::new("tar")
                .arg("xzf")
                .arg(&file)
                .arg("-C")
                .arg(&vendor),
            "unpacking",
        );
    }
    let sdk = vendor.join(format!("weir-guest-{version}"));
    let derive = vendor.join(format!("weir-guest-derive-{version}"));
    // The WIT contract travels in the package; the repository does not.
    assert!(sdk.join("wit/plugin.wit").is_file());
    assert!(sdk.join("README.md").is_file());

    scaffold_against(&sdk, &derive, scratch.path());

    let plugin = scratch.path().join("totals");
    std::fs::create_dir_all(plugin.join("src")).expect("plugin dir");
    let manifest = format!(
        r#"[package]
name = "packaged-totals"
version = "0.3.1"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
weir-guest = {{ path = {sdk} }}

[patch.crates-io]
weir-guest-derive = {{ path = {derive} }}

[workspace]
"#,
        sdk = toml::Value::String(sdk.display().to_string()),
        derive = toml::Value::String(derive.display().to_string()),
    );
    std::fs::write(plugin.join("Cargo.toml"), manifest).expect("manifest");
    std::fs::write(plugin.join("src/lib.rs"), PLUGIN).expect("lib.rs");
    // The workspace's lock file: the same dependency versions, resolvable offline.
    std::fs::copy(root().join("Cargo.lock"), plugin.join("Cargo.lock")).expect("Cargo.lock");

    let plugin_target = root().join("target/sdk-package-plugin");
    run(
        cargo()
            .current_dir(&plugin)
            .env("CARGO_TARGET_DIR", &plugin_target)
            .args([
                "build",
                "--offline",
                "--quiet",
                "--release",
                "--target",
                "wasm32-wasip2",
            ]),
        "building the plugin against the packaged SDK",
    );
    let wasm: PathBuf = plugin_target.join("wasm32-wasip2/release/packaged_totals.wasm");
    assert!(wasm.is_file(), "{} was not built", wasm.display());

    // Two keys, two 10 s windows.
    let events = [
        (1_000, "a", Some(1.5)),
        (2_000, "b", Some(10.0)),
        (3_000, "a", None),
        (4_000, "a", Some(2.25)),
        (12_000, "b", Some(4.0)),
    ];
    let lines: Vec<String> = events
        .iter()
        .map(|(ts, k, p)| match p {
            Some(p) => format!(r#"{{"ts":{ts},"k":"{k}","price":{p}}}"#),
            None => format!(r#"{{"ts":{ts},"k":"{k}"}}"#),
        })
        .collect();
    std::fs::write(scratch.path().join("events.jsonl"), lines.join("\n") + "\n").expect("events");
    let pipeline = scratch.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"name = "packaged"
[source]
kind = "file"
path = "events.jsonl"
format = "jsonl"
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["k"]
fields = {{ k = "string", price = "f64" }}
[window]
kind = "tumbling"
size = "10s"
[plugin]
path = {wasm}
[sink]
kind = "stdout"
"#,
            wasm = toml::Value::String(wasm.display().to_string())
        ),
    )
    .expect("pipeline");

    let check = run(support::weir().arg("check").arg(&pipeline), "weir check");
    // The name and version come from the plugin's Cargo.toml.
    assert!(check.contains("plugin   packaged-totals 0.3.1"), "{check}");
    assert!(
        check.contains("columns  k, window_start, window_end, events, price_sum"),
        "{check}"
    );

    let stdout = run(
        support::weir()
            .args(["run", "--no-progress"])
            .arg(&pipeline),
        "weir run",
    );
    let mut rows: Vec<(String, String, i64, f64)> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            (
                v["k"].as_str().expect("k").to_string(),
                v["window_start"]
                    .as_str()
                    .expect("window_start")
                    .to_string(),
                v["events"].as_i64().expect("events"),
                v["price_sum"].as_f64().expect("price_sum"),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    // a in [0, 10 s): 3 events, 1.5 + 2.25 = 3.75 (one null); b: 10.0; b in [10 s, 20 s): 4.0.
    let w0 = "1970-01-01T00:00:00.000Z".to_string();
    let w1 = "1970-01-01T00:00:10.000Z".to_string();
    assert_eq!(
        rows,
        [
            ("a".to_string(), w0.clone(), 3, 3.75),
            ("b".to_string(), w0, 1, 10.0),
            ("b".to_string(), w1, 1, 4.0),
        ]
    );
}

/// `weir plugin new --sdk <the unpacked SDK>` patches the derive crate to the one unpacked
/// beside it, and the crate builds and loads.
fn scaffold_against(sdk: &Path, derive: &Path, parent: &Path) {
    run(
        support::weir()
            .current_dir(parent)
            .args(["plugin", "new", "vendored", "--sdk"])
            .arg(sdk),
        "weir plugin new --sdk",
    );
    let dir = parent.join("vendored");
    let written = manifest(&dir.join("Cargo.toml"));
    // Both by paths relative to the crate, leading to the unpacked crates.
    let leads_to = |path: &str, to: &Path| {
        assert!(Path::new(path).is_relative(), "{path}");
        assert_eq!(
            dir.join(path)
                .canonicalize()
                .expect("the path leads somewhere"),
            to.canonicalize().expect("exists")
        );
    };
    leads_to(
        str_at(&written, &["dependencies", "weir-guest", "path"]),
        sdk,
    );
    leads_to(
        str_at(
            &written,
            &["patch", "crates-io", "weir-guest-derive", "path"],
        ),
        derive,
    );
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
    let target = root().join("target/sdk-package-plugin");
    run(
        cargo()
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--offline", "--quiet", "--release"]),
        "building the scaffolded crate against the packaged SDK",
    );
    let wasm = dir.join("target/wasm32-wasip2/release/vendored.wasm");
    std::fs::create_dir_all(wasm.parent().expect("has a parent")).expect("target dir");
    std::fs::copy(target.join("wasm32-wasip2/release/vendored.wasm"), &wasm).expect("component");
    let check = run(
        support::weir()
            .current_dir(&dir)
            .args(["check", "pipeline.toml"]),
        "weir check on the scaffolded crate",
    );
    assert!(check.contains("plugin   vendored 0.1.0"), "{check}");
}
