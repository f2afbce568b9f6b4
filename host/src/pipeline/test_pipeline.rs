//! For the pipeline's unit tests: a pipeline of ticks `{symbol, t (epoch ms), price}` from
//! a file, keyed by symbol, in tumbling 1 s windows, aggregated by the `stats` component
//! (built by `scripts/setup.sh`), whose source and sinks a test then replaces.

use std::path::{Path, PathBuf};

use super::{Options, Pipeline, load_plugin};
use crate::config::PipelineConfig;
use crate::pipeline::PipelineSpec;
use crate::plugin::Runtime;

/// The `stats` component.
pub(super) fn stats_wasm() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/plugin/stats.wasm");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh first",
        p.display()
    );
    p
}

/// The pipeline `name` in `dir`, reading `input` (created empty if missing), results to
/// `out.jsonl`, with `extra` TOML sections (a `[watermark]`, an `[error_sink]`) added.
pub(super) fn tick_pipeline(name: &str, dir: &Path, input: &str, extra: &str) -> Pipeline {
    tick_pipeline_with(name, dir, input, extra, Options::default())
}

/// [`tick_pipeline`] built with `opts`.
pub(super) fn tick_pipeline_with(
    name: &str,
    dir: &Path,
    input: &str,
    extra: &str,
    opts: Options,
) -> Pipeline {
    let cfg = tick_config(
        name,
        dir,
        input,
        "",
        &format!("kind = \"file\"\npath = \"out.jsonl\"\n{extra}"),
    );
    let spec = PipelineSpec::resolve(cfg, None).expect("spec");
    let runtime = Runtime::new(false).expect("runtime");
    let plugin = load_plugin(&spec, &runtime).expect("plugin");
    Pipeline::build(spec, plugin, opts).expect("pipeline")
}

/// The config of [`tick_pipeline`], with `plugin_extra` keys in `[plugin]` and `sink` as the
/// keys of `[sink]` (and any tables after it).
pub(super) fn tick_config(
    name: &str,
    dir: &Path,
    input: &str,
    plugin_extra: &str,
    sink: &str,
) -> PipelineConfig {
    let input_path = dir.join(input);
    if !input_path.exists() {
        std::fs::write(&input_path, "").expect("input file");
    }
    let mut cfg = PipelineConfig::parse(&format!(
        r#"
        name = "{name}"
        [source]
        kind = "file"
        path = "{input}"
        [schema]
        timestamp = {{ field = "t", format = "epoch_ms" }}
        key = ["symbol"]
        fields = {{ symbol = "string", t = "i64", price = "f64" }}
        [window]
        kind = "tumbling"
        size = "1s"
        [plugin]
        path = "{plugin}"
        params = {{ field = "price" }}
        {plugin_extra}
        [sink]
        {sink}
        "#,
        plugin = stats_wasm().display()
    ))
    .expect("config");
    cfg.base_dir = dir.to_path_buf();
    cfg
}
