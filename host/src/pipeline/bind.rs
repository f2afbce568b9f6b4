//! Binding a plugin to a pipeline: loading the component, configuring it with the
//! pipeline's params and checking what it declares against the schema and the host's
//! columns.

use super::*;

/// Loads a pipeline's plugin from its `plugin.path`, configures it and checks it against
/// the schema.
///
/// This is all of `weir check` beyond config validation, and the first step of a run. A
/// component that passes is kept in the runtime's compiled caches ([`Runtime::keep`]).
pub fn load_plugin(spec: &PipelineSpec, runtime: &Runtime) -> anyhow::Result<PluginInstance> {
    let cfg = &spec.cfg;
    let path = cfg.resolve(&cfg.plugin.path);
    let code: Arc<PluginCode> = runtime.load_file(&path).map_err(|e| {
        anyhow::anyhow!(
            "{e}{}",
            if path.exists() {
                String::new()
            } else {
                "; plugin.path is relative to the pipeline file — build the plugin first (see README)".to_string()
            }
        )
    })?;
    let owner = Owner {
        tenant: String::new(),
        pipeline: cfg.name.clone(),
    };
    let inst = instantiate_checked(spec, code.clone(), owner)?;
    // Validated: cache the compiled code (on disk too when the runtime has a cache dir).
    runtime.keep(&code);
    Ok(inst)
}

/// Instantiates compiled plugin code for a pipeline, under the spec's limits: configures it with the pipeline's
/// params, checks its declared inputs against the schema and its outputs against the
/// columns the host writes ([`plugin::check_outputs`]). Used at start-up and for
/// every hot swap, so both validate the same way.
pub fn instantiate_checked(
    spec: &PipelineSpec,
    code: Arc<PluginCode>,
    owner: Owner,
) -> Result<PluginInstance, plugin::Error> {
    let (cfg, schema) = (&spec.cfg, &spec.schema);
    let params = cfg
        .plugin
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let inst = PluginInstance::with_keys(code, spec.limits, params, cfg.schema.key.clone(), owner)?;
    plugin::check_inputs(inst.info(), |n| schema.type_of(n))?;
    plugin::check_outputs(inst.info(), &cfg.schema.key)?;
    Ok(inst)
}

/// Schema index of each plugin input, in input order (inputs were checked against the schema).
pub(super) fn input_indices(schema: &Schema, info: &PluginInfo) -> Vec<usize> {
    info.inputs
        .iter()
        .filter_map(|(n, _)| schema.index_of(n))
        .collect()
}
