//! `weir plugin`: the tenant's commands. `new`, `build`, `test` and the hidden `exec` need
//! no host; the others talk to a running `weir serve` through its admin API (`--url`,
//! `--token`), with their defaults (url, tenant, pipeline, component) read from a
//! `weir.toml` in the current directory.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::admin::client::Client;
use crate::scaffold::Defaults;

/// Where the admin API is and who asks: the flags of the commands that talk to a host.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Admin API address [default: `url` in ./weir.toml, else http://127.0.0.1:7878].
    #[arg(long, env = "WEIR_URL")]
    pub url: Option<String>,
    /// Bearer token (operator or tenant).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true, default_value = "")]
    pub token: String,
}

/// Which pipeline a command acts on.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Tenant [default: `tenant` in ./weir.toml].
    #[arg(long)]
    pub tenant: Option<String>,
    /// Pipeline [default: `pipeline` in ./weir.toml].
    #[arg(long)]
    pub pipeline: Option<String>,
}

/// `weir plugin` actions.
#[derive(Debug, Subcommand)]
pub enum PluginAction {
    /// Write a new plugin crate NAME/: an aggregate with its unit tests, a build for
    /// wasm32-wasip2, a sample pipeline over bundled events (no running host needed), a
    /// weir.toml for `weir plugin deploy`, and its Cargo.lock.
    New {
        /// The crate's name, also the directory written (it must not exist, or be empty).
        name: String,
        /// An incremental aggregate (state per pane, merged into windows) instead of a
        /// whole-window one.
        #[arg(long)]
        incremental: bool,
        /// The weir-guest SDK crate: the guest-sdk directory of a Weir checkout, or an
        /// unpacked weir-guest package (with weir-guest-derive unpacked beside it).
        /// Default: the guest-sdk of the source tree this weir was built from.
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate's component (`cargo build --release --target wasm32-wasip2`),
    /// put it at DIR/target/wasm32-wasip2/release/<crate>.wasm (copied there when cargo's
    /// target directory is elsewhere, e.g. CARGO_TARGET_DIR) and print that path.
    Build {
        /// The plugin crate.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// More arguments for `cargo build`, after `--` (e.g. `-- --offline`).
        #[arg(last = true, value_name = "CARGO_ARGS")]
        cargo_args: Vec<String>,
    },
    /// Run a built component over sample events under a pipeline file's settings and print
    /// the result rows as a table (no host needed; the pipeline's sinks are not touched).
    /// Exits with 1 when a plugin call failed.
    Test(crate::sample::Args),
    /// Upload a component as the new version of a pipeline's plugin, or with `--shadow`
    /// as a candidate computing every window beside the live version, compared and never
    /// written (see `weir plugin diff`, `promote`, `discard`). Tenant, pipeline, the
    /// component and the URL default to ./weir.toml's.
    Deploy {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// Run it as the pipeline's shadow instead of making it live.
        #[arg(long)]
        shadow: bool,
        /// With --shadow: promote it by itself once this many windows were compared …
        #[arg(long, requires = "shadow", value_name = "WINDOWS")]
        promote_after_windows: Option<u64>,
        /// … with at most this many of them differing or failed (default 0).
        #[arg(long, requires = "promote_after_windows", value_name = "WINDOWS")]
        promote_after_differing: Option<u64>,
        /// Confirm that the version may remove or rename output columns that readers of
        /// the pipeline's sink may rely on (the operator must allow it too).
        #[arg(long)]
        allow_output_change: bool,
        /// The `.wasm` component [default: `component` in ./weir.toml].
        file: Option<PathBuf>,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// Show what a plugin of a pipeline must match: its events' fields and types, the key,
    /// the window, the watermark, the params `configure` gets and the rows' columns.
    Schema {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// Print the host's JSON (for scripts).
        #[arg(long)]
        json: bool,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// Show what a pipeline's shadow found: windows compared, equal, differing, candidate
    /// errors, both versions' costs, and the first differing windows.
    Diff {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// Print the host's JSON (for scripts).
        #[arg(long)]
        json: bool,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// Make a pipeline's shadow the live version (a hot swap to it).
    Promote {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// End a pipeline's shadow run.
    Discard {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// List pipelines and their plugin versions (one tenant's, or every tenant's).
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Print the host's JSON (the pipelines' list, for scripts).
        #[arg(long)]
        json: bool,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// Make the version before the live one live again.
    Rollback {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop reading a pipeline's input; its state is kept.
    Pause {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// Resume a paused pipeline.
    Resume {
        /// Which pipeline.
        #[command(flatten)]
        target: Target,
        /// The host and the token.
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a wasm32-wasip2 command component with inherited stdio and ARGS, and exit with
    /// its status: the test runner of a plugin crate's `cargo test`.
    #[command(hide = true)]
    Exec {
        /// The component.
        file: PathBuf,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Runs one `weir plugin` action.
pub(super) fn run(action: PluginAction) -> anyhow::Result<()> {
    match action {
        PluginAction::New {
            name,
            incremental,
            sdk,
        } => new(name, incremental, sdk),
        PluginAction::Build { dir, cargo_args } => {
            let built = crate::scaffold::build(&dir, &cargo_args)?;
            if let Some(from) = &built.copied_from {
                eprintln!(
                    "weir plugin build: cargo wrote {}; copied to {}",
                    from.display(),
                    built.component.display()
                );
            }
            println!("{}", built.component.display());
            Ok(())
        }
        PluginAction::Test(args) => test(&args),
        PluginAction::Exec { file, args } => {
            std::process::exit(crate::scaffold::exec(&file, &args)?);
        }
        remote => api(remote),
    }
}

/// `weir plugin new`: the crate, then its lock file.
fn new(name: String, incremental: bool, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    let new = crate::scaffold::NewPlugin {
        name,
        incremental,
        sdk,
    };
    let dir = new.write(Path::new("."))?;
    let lock = crate::scaffold::lock(&dir);
    println!("created {} ({lock})", dir.display());
    println!(
        "next: `cd {}`, then `cargo test`, `weir plugin build` and `weir run pipeline.toml`; \
         to deploy, set url, tenant and pipeline in weir.toml and run `weir plugin deploy` \
         (see its README.md)",
        dir.display()
    );
    Ok(())
}

/// `weir plugin test`: prints the sample run's report; an error when a plugin call failed.
fn test(args: &crate::sample::Args) -> anyhow::Result<()> {
    let outcome = crate::sample::run(args, super::compiled_cache_dir())?;
    print!("{}", outcome.report);
    anyhow::ensure!(
        outcome.summary.counters.plugin_errors == 0,
        "{} plugin call(s) failed (see \"plugin errors\" above)",
        outcome.summary.counters.plugin_errors
    );
    Ok(())
}

/// The actions that talk to a host, with ./weir.toml's defaults.
fn api(action: PluginAction) -> anyhow::Result<()> {
    let defaults = Defaults::load(Path::new("."))?;
    let client = |remote: Remote| Client::new(defaults.url(remote.url), remote.token);
    let target = |t: Target| -> anyhow::Result<(String, String)> {
        Ok((defaults.tenant(t.tenant)?, defaults.pipeline(t.pipeline)?))
    };
    match action {
        PluginAction::Deploy {
            target: t,
            shadow,
            promote_after_windows,
            promote_after_differing,
            allow_output_change,
            file,
            remote,
        } => {
            let (tenant, pipeline) = target(t)?;
            let file = defaults.component(file)?;
            let wasm = std::fs::read(&file).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    "; build it with `weir plugin build`"
                } else {
                    ""
                };
                anyhow::anyhow!("reading {}: {e}{hint}", file.display())
            })?;
            let client = client(remote);
            if shadow {
                let policy = promote_after_windows.map(|windows| crate::pipeline::PromoteAfter {
                    windows,
                    differing: promote_after_differing.unwrap_or(0),
                });
                let options = crate::serve::control::ShadowOptions {
                    promote_after: policy,
                    allow_output_change,
                };
                let s = client.deploy_shadow(&tenant, &pipeline, wasm, options)?;
                println!(
                    "{tenant}/{pipeline}: {} runs as the shadow of {}; see `weir plugin diff --tenant {tenant} --pipeline {pipeline}`",
                    s.report.version, s.live_version
                );
            } else {
                let v = client.deploy_with(&tenant, &pipeline, wasm, allow_output_change)?;
                println!("{tenant}/{pipeline}: {} is live", v.id);
                if let Some(warning) = &v.status_reason {
                    eprintln!("warning: {warning}");
                }
            }
        }
        PluginAction::Schema {
            target: t,
            json,
            remote,
        } => {
            let (tenant, pipeline) = target(t)?;
            let s = client(remote).schema(&tenant, &pipeline)?;
            print_json_or(json, &s, |s| {
                crate::admin::render_schema(&tenant, &pipeline, s)
            })?;
        }
        PluginAction::Diff {
            target: t,
            json,
            remote,
        } => {
            let (tenant, pipeline) = target(t)?;
            let s = client(remote).shadow(&tenant, &pipeline)?;
            print_json_or(json, &s, |s| {
                crate::admin::render_shadow(&tenant, &pipeline, s)
            })?;
        }
        PluginAction::Promote { target: t, remote } => {
            let (tenant, pipeline) = target(t)?;
            let v = client(remote).promote(&tenant, &pipeline)?;
            println!("{tenant}/{pipeline}: the shadow {} is live", v.id);
        }
        PluginAction::Discard { target: t, remote } => {
            let (tenant, pipeline) = target(t)?;
            let s = client(remote).discard(&tenant, &pipeline)?;
            println!(
                "{tenant}/{pipeline}: the shadow {} was discarded; {} is live",
                s.report.version, s.live_version
            );
        }
        PluginAction::List {
            tenant,
            json,
            remote,
        } => {
            let pipelines = client(remote).list(tenant.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pipelines)?);
            } else {
                print!("{}", crate::admin::render_pipelines(&pipelines));
            }
        }
        PluginAction::Rollback { target: t, remote } => {
            let (tenant, pipeline) = target(t)?;
            let v = client(remote).rollback(&tenant, &pipeline)?;
            println!("{tenant}/{pipeline}: rolled back, {} is live", v.id);
        }
        PluginAction::Pause { target: t, remote } => {
            let (tenant, pipeline) = target(t)?;
            let p = client(remote).pause(&tenant, &pipeline)?;
            println!("{tenant}/{pipeline}: {}", p.state.name());
        }
        PluginAction::Resume { target: t, remote } => {
            let (tenant, pipeline) = target(t)?;
            let p = client(remote).resume(&tenant, &pipeline)?;
            println!("{tenant}/{pipeline}: {}", p.state.name());
        }
        PluginAction::New { .. }
        | PluginAction::Build { .. }
        | PluginAction::Test(_)
        | PluginAction::Exec { .. } => unreachable!("run() handles the local actions"),
    }
    Ok(())
}

/// Prints `value` as the host's JSON (`--json`), else as `text` renders it.
fn print_json_or<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text(value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// The long help of `weir plugin <action>`.
    fn help(action: &str) -> String {
        let mut cli = crate::cli::Cli::command();
        let plugin = cli.find_subcommand_mut("plugin").expect("weir plugin");
        let sub = plugin.find_subcommand_mut(action).expect(action);
        sub.render_long_help().to_string()
    }

    #[test]
    fn only_the_commands_that_talk_to_a_host_take_url_and_token() {
        for local in ["new", "build", "test"] {
            let help = help(local);
            assert!(!help.contains("--url"), "{local}:\n{help}");
            assert!(!help.contains("--token"), "{local}:\n{help}");
        }
        assert!(help("new").contains("--incremental"));
        for remote in [
            "deploy", "list", "diff", "promote", "discard", "rollback", "pause", "resume",
        ] {
            let help = help(remote);
            assert!(help.contains("--url"), "{remote}:\n{help}");
            assert!(help.contains("--token"), "{remote}:\n{help}");
        }
    }

    #[test]
    fn deploy_takes_its_flags_after_the_file_too() {
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "weir",
            "plugin",
            "deploy",
            "p.wasm",
            "--tenant",
            "acme",
            "--url",
            "http://h:1",
        ])
        .unwrap();
        let crate::cli::Command::Plugin {
            action:
                PluginAction::Deploy {
                    target,
                    file,
                    remote,
                    ..
                },
        } = cli.command
        else {
            panic!("not a deploy");
        };
        assert_eq!(target.tenant.as_deref(), Some("acme"));
        assert_eq!(target.pipeline, None);
        assert_eq!(file.as_deref(), Some(Path::new("p.wasm")));
        assert_eq!(remote.url.as_deref(), Some("http://h:1"));
    }
}
