//! Host configuration for `weir serve`: the admin API, the plugin directory, the state
//! directory and the tenants with their pipelines, limits and tokens.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ByteSize, Error, LimitsConfig, Millis, read_toml, resolve_path};

/// `HOST.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The admin API.
    pub admin: AdminConfig,
    /// Plugin delivery and caching.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// The web console.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Where deploys, rollbacks, pauses and quarantines are kept across restarts (none: a
    /// restart starts every pipeline on its configured plugin).
    #[serde(default)]
    pub state: Option<StateConfig>,
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
    /// How long a client has to send a request's headers, from the connection's first byte
    /// or the end of its previous request (default `10s`); the connection is closed after.
    /// Ten seconds is ample for any client on a network a host's admin API should be on.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Millis,
    /// How long a whole request may take once its headers are in, body upload and handling
    /// included (default `60s`); over it the client gets 408 and the request's memory is
    /// released. A 16 MiB plugin at a slow 1 MB/s plus its compile fits in a minute.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Millis,
    /// How many connections the API holds open at once (default 256); more wait in the
    /// kernel's accept queue until one closes. Each open connection costs a task and its
    /// buffers; 256 is far more than operators and CI jobs need at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How many deploys of one tenant may be in flight at once (default 2: one, and a second
    /// that replaces it); one more gets 429 before its body is read.
    #[serde(default = "default_max_uploads")]
    pub max_uploads_per_tenant: usize,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7878))
}
fn default_header_timeout() -> Millis {
    Millis(10_000)
}
fn default_request_timeout() -> Millis {
    Millis(60_000)
}
fn default_max_connections() -> usize {
    256
}
fn default_max_uploads() -> usize {
    2
}

/// `[console]`: the web page at `/` of the admin API's address, and what it keeps.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console and keep its telemetry (default true). Off: `/` answers 404, and
    /// pipelines keep no copies of their rows and take no samples.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Result rows each pipeline keeps in memory for the console's chart and table
    /// (default 1000, at most 100 000): about 400 bytes each for a row of ten columns.
    #[serde(default = "default_keep_rows")]
    pub keep_rows: usize,
    /// Error records (late events, dead letters, plugin errors) each pipeline keeps
    /// (default 100, at most 10 000).
    #[serde(default = "default_keep_errors")]
    pub keep_errors: usize,
    /// Bytes of result rows each pipeline keeps, whatever their count (default `"1MiB"`, at
    /// most `"256MiB"`): about 1 100 rows of ten columns, a little more than `keep_rows`, so
    /// the count binds for ordinary rows and this for large ones. A row's bytes are
    /// estimated from its strings' lengths, its column names and a fixed overhead per cell
    /// and per row (about 930 for a `stats` row); the estimate bounds both the memory the
    /// row holds and its JSON.
    #[serde(default = "default_keep_bytes")]
    pub keep_bytes: ByteSize,
    /// Bytes of error records each pipeline keeps (default `"256KiB"`, at most `"64MiB"`).
    #[serde(default = "default_keep_error_bytes")]
    pub keep_error_bytes: ByteSize,
    /// Bytes of rows and error records all the pipelines of one tenant keep together
    /// (default `"4MiB"`, at most `"1GiB"`): a tenant's pipelines cannot fill the host's
    /// memory, however many. When it is reached, the pipeline writing a row forgets its own
    /// oldest to make room, and keeps nothing of the row if it has nothing left to forget.
    #[serde(default = "default_keep_bytes_per_tenant")]
    pub keep_bytes_per_tenant: ByteSize,
    /// The largest row the console keeps as it is (default `"16KiB"`, between `"1KiB"` and
    /// `"256KiB"`, at most `keep_bytes` and `keep_error_bytes`): a larger one is kept with
    /// its longest strings cut to a prefix ending in `…(<length> bytes)`, or as a note that
    /// it was too large. The sinks always get the whole row.
    #[serde(default = "default_max_row_bytes")]
    pub max_row_bytes: ByteSize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            keep_rows: default_keep_rows(),
            keep_errors: default_keep_errors(),
            keep_bytes: default_keep_bytes(),
            keep_error_bytes: default_keep_error_bytes(),
            keep_bytes_per_tenant: default_keep_bytes_per_tenant(),
            max_row_bytes: default_max_row_bytes(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_keep_rows() -> usize {
    1_000
}
fn default_keep_errors() -> usize {
    100
}
fn default_keep_bytes() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_keep_error_bytes() -> ByteSize {
    ByteSize(256 << 10)
}
fn default_keep_bytes_per_tenant() -> ByteSize {
    ByteSize(4 << 20)
}
fn default_max_row_bytes() -> ByteSize {
    ByteSize(16 << 10)
}

/// `[state]`: the state directory of `weir serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The directory (relative to the host file; created if missing) where each pipeline's
    /// kept versions (their components, stored once each by SHA-256), which of them is
    /// live, its last rejected deploy, and whether it is paused or quarantined are written
    /// after every change, and read back when the host starts.
    pub dir: PathBuf,
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
    /// The largest plugin component accepted (default `"16MiB"`), whether deployed through
    /// the API, dropped in `dir` (checked from the file's size before it is read) or
    /// configured as a pipeline's `plugin.path`. Our example plugins are 100–300 KiB; a
    /// release build of a large plugin stays well under 16 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// How long compiling one component may take (default `20s`); a compile over it is
    /// rejected with the reason. A 16 MiB component compiles in a few seconds on one core.
    #[serde(default = "default_compile_timeout")]
    pub compile_timeout: Millis,
    /// Bytes of compiled code kept in memory for versions no pipeline keeps (default
    /// `"256MiB"`), least recently used evicted first. Versions pipelines keep for rollback
    /// are never evicted and are not limited by this.
    #[serde(default = "default_compiled_cache")]
    pub compiled_cache: ByteSize,
    /// Bytes of precompiled artifacts kept in `cache_dir` (default `"1GiB"`), oldest deleted
    /// first.
    #[serde(default = "default_cache_dir_max")]
    pub cache_dir_max: ByteSize,
    /// Compiles that may run on the host at once (default 1): Cranelift already uses every
    /// core for one, and cannot be stopped once started, so a compile over its timeout
    /// keeps its slot until it ends. A deploy waits for a slot for at most
    /// `compile_timeout`, then is refused with the reason.
    #[serde(default = "default_one")]
    pub max_compiles: usize,
    /// Compiles of one tenant's versions that may run at once (default 1), timed-out ones
    /// included: a further deploy is refused at once until they end.
    #[serde(default = "default_one")]
    pub max_compiles_per_tenant: usize,
    /// The most bytes of function bodies a component may hold, over all its core modules
    /// (default `"8MiB"`; our example plugins hold 60–150 KiB): compile time and memory grow
    /// with it. Checked by a parse before anything is compiled.
    #[serde(default = "default_max_code_bytes")]
    pub max_code_bytes: ByteSize,
    /// The largest single function body (default `"1MiB"`): Cranelift's cost grows faster
    /// than linearly in one function's size.
    #[serde(default = "default_max_function_bytes")]
    pub max_function_bytes: ByteSize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: None,
            cache_dir: None,
            keep_versions: default_keep(),
            debounce: default_debounce(),
            max_bytes: default_max_bytes(),
            compile_timeout: default_compile_timeout(),
            compiled_cache: default_compiled_cache(),
            cache_dir_max: default_cache_dir_max(),
            max_compiles: default_one(),
            max_compiles_per_tenant: default_one(),
            max_code_bytes: default_max_code_bytes(),
            max_function_bytes: default_max_function_bytes(),
        }
    }
}

fn default_keep() -> usize {
    5
}
fn default_debounce() -> Millis {
    Millis(200)
}
fn default_max_bytes() -> ByteSize {
    ByteSize(16 * 1024 * 1024)
}
fn default_compile_timeout() -> Millis {
    Millis(20_000)
}
fn default_compiled_cache() -> ByteSize {
    ByteSize(256 * 1024 * 1024)
}
fn default_cache_dir_max() -> ByteSize {
    ByteSize(1024 * 1024 * 1024)
}
fn default_one() -> usize {
    1
}
fn default_max_code_bytes() -> ByteSize {
    ByteSize(8 * 1024 * 1024)
}
fn default_max_function_bytes() -> ByteSize {
    ByteSize(1024 * 1024)
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
    /// Cores of CPU the tenant's plugin calls may use together, averaged over a few seconds
    /// (default 1.0): after a batch whose calls went over, the tenant's pipelines wait until
    /// the budget has refilled (at most 60 s). A call's deadline bounds one call; this bounds
    /// the tenant, however many pipelines and calls it has.
    #[serde(default = "default_cpu")]
    pub cpu: f64,
}

fn default_cpu() -> f64 {
    1.0
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
        let positive = [
            ("admin.header_timeout", self.admin.header_timeout),
            ("admin.request_timeout", self.admin.request_timeout),
            ("plugins.compile_timeout", self.plugins.compile_timeout),
        ];
        for (key, value) in positive {
            if value.0 <= 0 {
                return Err(Error::invalid(
                    key,
                    format!("is {} ms", value.0),
                    "give a positive duration, e.g. \"10s\"",
                ));
            }
        }
        let counts = [
            ("admin.max_connections", self.admin.max_connections),
            (
                "admin.max_uploads_per_tenant",
                self.admin.max_uploads_per_tenant,
            ),
            ("plugins.max_compiles", self.plugins.max_compiles),
            (
                "plugins.max_compiles_per_tenant",
                self.plugins.max_compiles_per_tenant,
            ),
        ];
        for (key, value) in counts {
            if value == 0 {
                return Err(Error::invalid(
                    key,
                    "is 0, which would refuse every request",
                    "give at least 1 (the default is usually right)",
                ));
            }
        }
        if self.plugins.max_bytes.0 == 0 || self.plugins.max_bytes.0 > 1 << 30 {
            return Err(Error::invalid(
                "plugins.max_bytes",
                format!("is {} bytes", self.plugins.max_bytes.0),
                "pick a size between 1 byte and 1GiB, e.g. \"16MiB\"",
            ));
        }
        let kept = [
            ("console.keep_rows", self.console.keep_rows, 100_000),
            ("console.keep_errors", self.console.keep_errors, 10_000),
        ];
        for (key, value, most) in kept {
            if value == 0 || value > most {
                return Err(Error::invalid(
                    key,
                    format!("is {value}"),
                    format!(
                        "keep between 1 and {most}; to keep nothing, set console.enabled = false"
                    ),
                ));
            }
        }
        let c = &self.console;
        let row = c.max_row_bytes.0;
        let sizes = [
            ("console.max_row_bytes", row, 1 << 10, 256 << 10),
            ("console.keep_bytes", c.keep_bytes.0, row, 256 << 20),
            (
                "console.keep_error_bytes",
                c.keep_error_bytes.0,
                row,
                64 << 20,
            ),
            (
                "console.keep_bytes_per_tenant",
                c.keep_bytes_per_tenant.0,
                row,
                1 << 30,
            ),
        ];
        for (key, value, least, most) in sizes {
            if value < least || value > most {
                return Err(Error::invalid(
                    key,
                    format!("is {value} bytes"),
                    format!(
                        "pick a size between {least} and {most} bytes (the byte bounds start at console.max_row_bytes); to keep nothing, set console.enabled = false"
                    ),
                ));
            }
        }
        if let Some(state) = &self.state {
            let dir = self.resolve(&state.dir);
            if state.dir.as_os_str().is_empty() {
                return Err(Error::invalid(
                    "state.dir",
                    "is empty",
                    "name the directory where the host keeps its pipelines' versions, e.g. \"state\" (relative to this file), or remove [state]",
                ));
            }
            if dir.exists() && !dir.is_dir() {
                return Err(Error::invalid(
                    "state.dir",
                    format!("{} is not a directory", dir.display()),
                    "point it at a directory (it is created if missing), or remove [state]",
                ));
            }
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
            if !(t.cpu.is_finite() && t.cpu > 0.0 && t.cpu <= 1024.0) {
                return Err(Error::invalid(
                    format!("tenant[{i}].cpu"),
                    format!("is {}", t.cpu),
                    "give the cores the tenant's plugins may use together, above 0, e.g. 0.5",
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra_admin: &str, plugins: &str) -> Result<HostConfig, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            format!(
                "[admin]\noperator_token = \"0123456789abcdef0123\"\n{extra_admin}\n[plugins]\n{plugins}\n"
            ),
        )
        .unwrap();
        HostConfig::load(&path)
    }

    #[test]
    fn admin_and_plugin_limits_have_documented_defaults() {
        let cfg = load("", "").unwrap();
        let a = crate::admin::AdminLimits::of(&cfg);
        assert_eq!(a.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(a.request_timeout, std::time::Duration::from_secs(60));
        assert_eq!(a.max_connections, 256);
        assert_eq!(a.max_uploads_per_tenant, 2);
        assert_eq!(a.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(
            crate::plugin::LoadLimits::of(&cfg.plugins),
            crate::plugin::LoadLimits::default()
        );
        assert!(cfg.console.enabled);
        assert_eq!(cfg.console.keep_rows, 1_000);
        assert_eq!(cfg.console.keep_errors, 100);
        let kept = crate::console::Limits::of(&cfg.console);
        assert_eq!(kept.keep_bytes, 1 << 20);
        assert_eq!(kept.keep_error_bytes, 256 << 10);
        assert_eq!(kept.max_row_bytes, 16 << 10);
        assert_eq!(
            crate::console::TenantBudget::of(&cfg.console).limit(),
            4 << 20
        );
        assert_eq!(kept, crate::console::Limits::default());
        let off = load("", "[console]\nenabled = false\nkeep_rows = 50").unwrap();
        assert!(!off.console.enabled);
        assert_eq!(off.console.keep_rows, 50);
    }

    #[test]
    fn the_state_directory_resolves_against_the_host_file_and_must_be_a_directory() {
        assert!(load("", "").unwrap().state.is_none());
        let cfg = load("", "[state]\ndir = \"state\"").unwrap();
        let dir = cfg.resolve(&cfg.state.as_ref().unwrap().dir);
        assert_eq!(dir, cfg.base_dir.join("state"));
        for (state, problem) in [
            ("dir = \"\"", "state.dir is empty"),
            (
                "dir = \"/dev/null\"",
                "state.dir /dev/null is not a directory",
            ),
        ] {
            let e = load("", &format!("[state]\n{state}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(problem), "{state}: {e}");
            assert!(e.contains("remove [state]"), "{state}: {e}");
        }
        let e = load("", "[state]\npath = \"x\"").unwrap_err().to_string();
        assert!(e.contains("path"), "{e}");
    }

    #[test]
    fn limits_are_read_and_bad_values_name_the_key_and_the_fix() {
        let cfg = load(
            "header_timeout = \"2s\"\nmax_uploads_per_tenant = 5",
            "max_bytes = \"1MiB\"\ncompiled_cache = \"8MiB\"",
        )
        .unwrap();
        assert_eq!(
            crate::admin::AdminLimits::of(&cfg)
                .header_timeout
                .as_millis(),
            2000
        );
        assert_eq!(crate::admin::AdminLimits::of(&cfg).max_body_bytes, 1 << 20);
        assert_eq!(
            crate::plugin::LoadLimits::of(&cfg.plugins).compiled_cache_bytes,
            8 << 20
        );
        for (admin, plugins, key) in [
            ("max_connections = 0", "", "admin.max_connections"),
            (
                "max_uploads_per_tenant = 0",
                "",
                "admin.max_uploads_per_tenant",
            ),
            ("request_timeout = \"0ms\"", "", "admin.request_timeout"),
            ("", "max_bytes = 0", "plugins.max_bytes"),
            ("", "max_bytes = \"2GiB\"", "plugins.max_bytes"),
            ("", "[console]\nkeep_rows = 0", "console.keep_rows"),
            ("", "[console]\nkeep_errors = 20000", "console.keep_errors"),
            ("", "[console]\nkeep_bytes = 0", "console.keep_bytes"),
            (
                "",
                "[console]\nkeep_error_bytes = \"1GiB\"",
                "console.keep_error_bytes",
            ),
            (
                "",
                "[console]\nkeep_bytes_per_tenant = \"8KiB\"",
                "console.keep_bytes_per_tenant",
            ),
            (
                "",
                "[console]\nmax_row_bytes = 100",
                "console.max_row_bytes",
            ),
            (
                "",
                "[console]\nmax_row_bytes = \"1MiB\"",
                "console.max_row_bytes",
            ),
        ] {
            let e = load(admin, plugins).unwrap_err().to_string();
            assert!(e.contains(key), "{admin}{plugins}: {e}");
        }
    }
}
