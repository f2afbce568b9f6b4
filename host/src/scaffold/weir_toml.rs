//! `weir.toml`: a plugin crate's defaults for the `weir plugin` commands that talk to a
//! host, so that a redeploy is one command (`weir plugin deploy`). `weir plugin new` writes
//! one with the component's path filled in and `url`, `tenant` and `pipeline` commented out.
//!
//! Only the current directory's file is read. A flag overrides its key; `--url` also comes
//! from `WEIR_URL`, which overrides the file too. The token is never read from it: a file
//! in a crate ends up in version control.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The file's name, looked for in the current directory.
pub const FILE_NAME: &str = "weir.toml";

/// The admin API address used when neither `--url`, `WEIR_URL` nor `url` names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7878";

/// The keys of a `weir.toml`, each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeirToml {
    /// The host's admin API (`--url`).
    pub url: Option<String>,
    /// The tenant (`--tenant`).
    pub tenant: Option<String>,
    /// The pipeline (`--pipeline`).
    pub pipeline: Option<String>,
    /// The component `weir plugin deploy` uploads (its FILE argument), relative to the
    /// file's directory.
    pub component: Option<PathBuf>,
}

/// The defaults in force for one command: a directory's `weir.toml`, if it has one.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The file's directory (paths in it are relative to it).
    dir: PathBuf,
    /// Its keys; `None` when there is no file.
    file: Option<WeirToml>,
}

impl Defaults {
    /// Reads `dir/weir.toml`; no file is no defaults. A file that does not parse, has an
    /// unknown key or holds a token is an error naming it.
    pub fn load(dir: &Path) -> anyhow::Result<Defaults> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Defaults {
                    dir: dir.to_path_buf(),
                    file: None,
                });
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file = Self::parse(&text).with_context(|| format!("{}", path.display()))?;
        Ok(Defaults {
            dir: dir.to_path_buf(),
            file: Some(file),
        })
    }

    fn parse(text: &str) -> anyhow::Result<WeirToml> {
        let table: toml::Table = text.parse()?;
        if table.contains_key("token") {
            bail!(
                "`token` is not read from {FILE_NAME} (the file is easily committed): set \
                 WEIR_TOKEN or pass --token"
            );
        }
        Ok(WeirToml::deserialize(table)?)
    }

    /// The admin API address: `flag` (`--url` or `WEIR_URL`), else the file's `url`, else
    /// [`DEFAULT_URL`].
    pub fn url(&self, flag: Option<String>) -> String {
        flag.or_else(|| self.key(|f| f.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_string())
    }

    /// The tenant: `flag` (`--tenant`), else the file's `tenant`.
    pub fn tenant(&self, flag: Option<String>) -> anyhow::Result<String> {
        flag.or_else(|| self.key(|f| f.tenant.clone()))
            .ok_or_else(|| self.missing("tenant", "--tenant", "tenant"))
    }

    /// The pipeline: `flag` (`--pipeline`), else the file's `pipeline`.
    pub fn pipeline(&self, flag: Option<String>) -> anyhow::Result<String> {
        flag.or_else(|| self.key(|f| f.pipeline.clone()))
            .ok_or_else(|| self.missing("pipeline", "--pipeline", "pipeline"))
    }

    /// The component to deploy: `flag` (the FILE argument), else the file's `component`,
    /// relative to the file's directory.
    pub fn component(&self, flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        if let Some(path) = flag {
            return Ok(path);
        }
        let from_file = self
            .file
            .as_ref()
            .and_then(|f| f.component.clone())
            .filter(|p| !p.as_os_str().is_empty());
        match from_file {
            Some(path) if self.dir == Path::new(".") => Ok(path),
            Some(path) => Ok(self.dir.join(path)),
            None => Err(self.missing("component", "the .wasm file (FILE)", "component")),
        }
    }

    /// A non-empty key of the file.
    fn key(&self, get: impl Fn(&WeirToml) -> Option<String>) -> Option<String> {
        self.file.as_ref().and_then(get).filter(|v| !v.is_empty())
    }

    fn missing(&self, what: &str, flag: &str, key: &str) -> anyhow::Error {
        match &self.file {
            Some(_) => anyhow::anyhow!(
                "no {what}: pass {flag}, or set `{key}` in {}",
                self.dir.join(FILE_NAME).display()
            ),
            None => anyhow::anyhow!(
                "no {what}: pass {flag}, or set `{key}` in a {FILE_NAME} in this directory \
                 (`weir plugin new` writes one)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(text: &str) -> Defaults {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        Defaults::load(dir.path()).unwrap()
    }

    #[test]
    fn flags_override_the_file_and_the_file_fills_in_the_rest() {
        let d = defaults(
            "url = \"http://10.0.0.7:7878\"\ntenant = \"acme\"\npipeline = \"ticks\"\n\
             component = \"target/wasm32-wasip2/release/p.wasm\"\n",
        );
        assert_eq!(d.url(None), "http://10.0.0.7:7878");
        assert_eq!(d.url(Some("http://h:1".into())), "http://h:1");
        assert_eq!(d.tenant(None).unwrap(), "acme");
        assert_eq!(d.tenant(Some("globex".into())).unwrap(), "globex");
        assert_eq!(d.pipeline(None).unwrap(), "ticks");
        assert_eq!(d.pipeline(Some("fares".into())).unwrap(), "fares");
        // Relative to the file's directory.
        assert_eq!(
            d.component(None).unwrap(),
            d.dir.join("target/wasm32-wasip2/release/p.wasm")
        );
        assert_eq!(
            d.component(Some("v2.wasm".into())).unwrap(),
            Path::new("v2.wasm")
        );
    }

    #[test]
    fn a_missing_value_names_the_flag_and_the_key() {
        // The scaffold's file: placeholders commented out, an empty key counts as unset.
        let d = defaults("# tenant = \"your-tenant\"\npipeline = \"\"\n");
        let file = d.dir.join(FILE_NAME);
        assert_eq!(
            d.tenant(None).unwrap_err().to_string(),
            format!(
                "no tenant: pass --tenant, or set `tenant` in {}",
                file.display()
            )
        );
        assert_eq!(
            d.pipeline(None).unwrap_err().to_string(),
            format!(
                "no pipeline: pass --pipeline, or set `pipeline` in {}",
                file.display()
            )
        );
        assert_eq!(
            d.component(None).unwrap_err().to_string(),
            format!(
                "no component: pass the .wasm file (FILE), or set `component` in {}",
                file.display()
            )
        );
        assert_eq!(d.url(None), DEFAULT_URL);
        // No file at all.
        let empty = tempfile::tempdir().unwrap();
        let none = Defaults::load(empty.path()).unwrap();
        assert_eq!(
            none.tenant(None).unwrap_err().to_string(),
            "no tenant: pass --tenant, or set `tenant` in a weir.toml in this directory \
             (`weir plugin new` writes one)"
        );
    }

    #[test]
    fn unknown_keys_and_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "token = \"s3cret\"\n").unwrap();
        let err = format!("{:#}", Defaults::load(dir.path()).unwrap_err());
        assert!(err.contains("`token` is not read from weir.toml"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::write(dir.path().join(FILE_NAME), "tenannt = \"acme\"\n").unwrap();
        let err = format!("{:#}", Defaults::load(dir.path()).unwrap_err());
        assert!(err.contains("unknown field `tenannt`"), "{err}");
    }
}
