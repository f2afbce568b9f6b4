//! `weir check`: a pipeline file read, resolved and its plugin loaded and checked, without
//! running it; a PostgreSQL result table connected to and checked, not created.

use std::path::PathBuf;

use super::load;
use crate::pipeline::{self, PipelineSpec};
use crate::plugin::{Plugin as _, Runtime};

/// Checks the pipeline file at `path` and prints what it found.
pub(super) fn check(path: PathBuf) -> anyhow::Result<()> {
    let spec = PipelineSpec::resolve(load(&path)?, None)?;
    let cfg = &spec.cfg;
    let runtime = Runtime::new(cfg.plugin.limits.fuel.is_some())?;
    let inst = pipeline::load_plugin(&spec, &runtime)?;
    let info = inst.info();
    let table_line = if let crate::config::SinkConfig::Postgres { table, create, .. } = &cfg.sink {
        // Connects and checks the table as a start would, without creating it.
        let mut probe = cfg.clone();
        if let crate::config::SinkConfig::Postgres { create, .. } = &mut probe.sink {
            *create = false;
        }
        let opts = pipeline::Options::default();
        let columns = pipeline::output_columns(cfg, info, &opts);
        let types = pipeline::output_types(cfg, &spec.schema, info, &opts);
        match crate::sink::open_results(&probe, columns, &types) {
            Ok(_) => Some(format!("  table    {table}: fits")),
            Err(e) if *create && e.to_string().contains("does not exist") => Some(format!(
                "  table    {table}: missing, created at start (create = true)"
            )),
            Err(e) => return Err(anyhow::Error::new(e).context("sink")),
        }
    } else {
        None
    };
    println!("{}: ok", path.display());
    println!("  plugin   {} {}", info.name, info.version);
    let inputs: Vec<String> = info
        .inputs
        .iter()
        .map(|(n, t)| format!("{n}: {t}"))
        .collect();
    println!("  inputs   {}", inputs.join(", "));
    println!("  filter   {}", if info.has_filter { "yes" } else { "no" });
    println!(
        "  columns  {}",
        pipeline::output_columns(cfg, info, &pipeline::Options::default()).join(", ")
    );
    if let Some(line) = table_line {
        println!("{line}");
    }
    Ok(())
}
