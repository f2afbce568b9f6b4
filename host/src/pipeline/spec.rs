//! A pipeline's config resolved once: the schema built from `[schema]`, the window
//! assigner, and the plugin limits in force under the tenant's ceiling, with the per-event
//! window budget checked against them. Everything that loads, checks, deploys or builds a
//! pipeline takes a [`PipelineSpec`]; nothing rebuilds the schema or resolves the limits
//! again. (The output row layout depends on the plugin version as well, so it is made
//! from the spec and the plugin: [`super::output_columns`].)

use crate::config::{Limits, LimitsConfig, PipelineConfig};
use crate::decode::Schema;
use crate::window::WindowKind;

/// A pipeline's config, resolved.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// The config as loaded (paths in it are relative to its `base_dir`).
    pub cfg: PipelineConfig,
    /// The event schema, resolved for decoding.
    pub schema: Schema,
    /// The window assigner.
    pub window: WindowKind,
    /// The plugin limits every version of this pipeline runs under: the pipeline's own
    /// `[plugin.limits]`, each capped by the tenant's ceiling when there is one.
    pub limits: Limits,
}

impl PipelineSpec {
    /// Resolves `cfg` under a tenant's `ceiling` (`None` for `weir run` and `weir check`):
    /// builds the schema and the limits, and checks the per-event window budget against the
    /// limit in force, naming the setting that set it.
    pub fn resolve(cfg: PipelineConfig, ceiling: Option<&LimitsConfig>) -> anyhow::Result<Self> {
        let schema = Schema::new(&cfg.schema).map_err(|e| anyhow::anyhow!("schema: {e}"))?;
        let limits = cfg.plugin.limits.resolve(ceiling);
        let budget = limits.state.max_windows_per_event;
        let own = match ceiling {
            Some(_) => cfg.plugin.limits.resolve(None).state.max_windows_per_event,
            None => budget,
        };
        let budget_key = if budget < own {
            "the tenant's limits.max_windows_per_event"
        } else {
            "plugin.limits.max_windows_per_event"
        };
        cfg.check_window_budget(budget, budget_key)?;
        Ok(PipelineSpec {
            window: cfg.window_kind(),
            schema,
            limits,
            cfg,
        })
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PipelineConfig {
        PipelineConfig::parse(
            r#"
name = "p"
[source]
kind = "stdin"
[schema]
timestamp = { field = "ts", format = "epoch_ms" }
key = ["symbol"]
fields = { symbol = "string", price = "f64" }
[window]
kind = "sliding"
size = "10s"
slide = "1s"
[plugin]
path = "p.wasm"
[sink]
kind = "stdout"
"#,
        )
        .expect("config")
    }

    #[test]
    fn the_tenant_ceiling_caps_the_limits_and_is_named_when_it_refuses_the_window() {
        // 10 s / 1 s: an event belongs to 10 windows.
        let own = PipelineSpec::resolve(config(), None).expect("spec");
        assert!(own.limits.state.max_windows_per_event >= 10);
        assert_eq!(own.schema.fields.len(), 2);
        let ceiling = LimitsConfig {
            max_windows_per_event: Some(5),
            ..LimitsConfig::default()
        };
        let err = PipelineSpec::resolve(config(), Some(&ceiling))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the tenant's limits.max_windows_per_event"),
            "{err}"
        );
        let roomy = LimitsConfig {
            max_windows_per_event: Some(100),
            ..LimitsConfig::default()
        };
        let spec = PipelineSpec::resolve(config(), Some(&roomy)).expect("spec");
        assert_eq!(
            spec.limits.state.max_windows_per_event,
            own.limits.state.max_windows_per_event.min(100)
        );
    }
}
