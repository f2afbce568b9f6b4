//! Host configuration for `weir serve`: the admin API, the plugin directory and the
//! tenants with their pipelines, limits and tokens.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Error, LimitsConfig, Millis, read_toml, resolve_path};

/// `HOST.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The admin API.
    pub admin: AdminConfig,
    /// Plugin delivery and caching.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// The tenants, each with its pipelines.
    #[serde(rename = "tenant", default)]
    pub tenants: Vec<TenantConfig>,
    /// Directory the config was read from; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on (default `127.0.0.1:7878`: loopback only).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token of the operator, who may do everything.
    pub operator_token: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7878))
}

/// `[plugins]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// A directory watched for new versions, laid out as `<tenant>/<pipeline>.wasm`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Where compiled artifacts are cached by content hash across restarts.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// How many versions each pipeline keeps for rollback, the live one included (default 5).
    #[serde(default = "default_keep")]
    pub keep_versions: usize,
    /// Quiet time after the last change to a file before it is loaded (default `200ms`).
    #[serde(default = "default_debounce")]
    pub debounce: Millis,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: None,
            cache_dir: None,
            keep_versions: default_keep(),
            debounce: default_debounce(),
        }
    }
}

fn default_keep() -> usize {
    5
}
fn default_debounce() -> Millis {
    Millis(200)
}

/// `[[tenant]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant name: letters, digits, `-` and `_`.
    pub name: String,
    /// Bearer token that may touch only this tenant's pipelines.
    pub token: String,
    /// Pipeline files, relative to the host config.
    #[serde(default)]
    pub pipelines: Vec<PathBuf>,
    /// Ceilings on every pipeline's `[plugin.limits]`.
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl HostConfig {
    /// Reads, parses and validates a host file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let (mut cfg, base_dir): (HostConfig, _) = read_toml(path)?;
        cfg.base_dir = base_dir;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        resolve_path(&self.base_dir, path)
    }

    fn validate(&self) -> Result<(), Error> {
        if self.admin.operator_token.len() < 16 {
            return Err(Error::Invalid {
                key: "admin.operator_token".into(),
                problem: "is shorter than 16 characters".into(),
                fix: "use a long random token, e.g. the output of `openssl rand -hex 24`".into(),
            });
        }
        if self.plugins.keep_versions < 2 {
            return Err(Error::Invalid {
                key: "plugins.keep_versions".into(),
                problem: format!("is {}", self.plugins.keep_versions),
                fix: "keep at least 2 versions so that a rollback has something to go back to"
                    .into(),
            });
        }
        let mut names = BTreeSet::new();
        let mut tokens = BTreeSet::from([self.admin.operator_token.as_str()]);
        for (i, t) in self.tenants.iter().enumerate() {
            let ok = !t.name.is_empty()
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(Error::Invalid {
                    key: format!("tenant[{i}].name"),
                    problem: format!("`{}` is not a valid tenant name", t.name),
                    fix: "use letters, digits, `-` and `_` only".into(),
                });
            }
            if !names.insert(t.name.as_str()) {
                return Err(Error::Invalid {
                    key: format!("tenant[{i}].name"),
                    problem: format!("`{}` is declared twice", t.name),
                    fix: "give every tenant its own name".into(),
                });
            }
            if t.token.len() < 16 || !tokens.insert(t.token.as_str()) {
                return Err(Error::Invalid {
                    key: format!("tenant[{i}].token"),
                    problem: "is shorter than 16 characters or not unique".into(),
                    fix: "give every tenant its own long random token".into(),
                });
            }
        }
        Ok(())
    }
}
