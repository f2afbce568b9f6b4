//! Compiled code kept for reuse: the in-memory [`CodeCache`] of versions that passed
//! validation (bounded by bytes, least recently used evicted first) and the precompiled
//! artifacts on disk (`<sha256>.cwasm`: written, read back, trimmed oldest first). It does
//! not compile, validate or decide what is kept; `runtime.rs` does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginCode;

/// Compiled code by SHA-256, bounded by bytes, least recently used evicted first.
#[derive(Default)]
pub(super) struct CodeCache {
    pub(super) entries: HashMap<String, CacheEntry>,
    /// Sum of the entries' `bytes`.
    pub(super) total: u64,
    /// A counter standing for time: larger is more recent.
    clock: u64,
}

/// One cached component's code, its size and when it was last used.
pub(super) struct CacheEntry {
    code: Arc<PluginCode>,
    bytes: u64,
    used: u64,
}

impl CodeCache {
    /// The code of `sha256`, if cached, now the most recently used.
    pub(super) fn get(&mut self, sha256: &str) -> Option<Arc<PluginCode>> {
        self.clock = self.clock.wrapping_add(1);
        let e = self.entries.get_mut(sha256)?;
        e.used = self.clock;
        Some(e.code.clone())
    }

    /// Inserts `code`, then evicts least recently used code nobody else holds until the
    /// cache is within `cap` (it may stay above while pipelines hold more than `cap`).
    pub(super) fn insert(&mut self, code: Arc<PluginCode>, cap: u64) {
        self.clock = self.clock.wrapping_add(1);
        let bytes = code.code_bytes;
        let sha = code.sha256.clone();
        if let Some(old) = self.entries.insert(
            sha.clone(),
            CacheEntry {
                code,
                bytes,
                used: self.clock,
            },
        ) {
            self.total = self.total.saturating_sub(old.bytes);
        }
        // Saturating: a sum of in-memory sizes cannot reach u64::MAX, but it costs nothing.
        self.total = self.total.saturating_add(bytes);
        self.trim(cap, Some(&sha));
    }

    /// Evicts least recently used code nobody else holds until the cache is within `cap`;
    /// `spare` (just inserted) is not evicted.
    pub(super) fn trim(&mut self, cap: u64, spare: Option<&str>) {
        while self.total > cap {
            // Only the map holds it: no pipeline keeps this version, nobody is using it.
            let victim = self
                .entries
                .iter()
                .filter(|(k, e)| Some(k.as_str()) != spare && Arc::strong_count(&e.code) == 1)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            if let Some(e) = self.entries.remove(&victim) {
                self.total = self.total.saturating_sub(e.bytes);
                tracing::debug!(sha256 = %victim, bytes = e.bytes, "compiled code evicted");
            }
        }
    }
}

/// Writes the precompiled artifact of `code` to `dir` as `<sha256>.cwasm` (through a
/// temporary file, then renamed) unless it is there already, then trims `dir` to `cap`
/// bytes of artifacts. A failure is logged, not returned: the disk cache only saves time.
pub(super) fn write_artifact(dir: &Path, code: &PluginCode, cap: u64) {
    let path = dir.join(format!("{}.cwasm", code.sha256));
    if path.exists() {
        return;
    }
    let written = code
        .component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))
        .and_then(|artifact| {
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".{}.tmp", code.sha256));
            std::fs::write(&tmp, &artifact)?;
            std::fs::rename(&tmp, &path)
        });
    match written {
        Ok(()) => trim_cache_dir(dir, &path, cap),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compiled-artifact cache")
        }
    }
}

/// The precompiled artifact of the component `sha256` in `dir`, if there is a usable one;
/// an unusable one is logged and ignored (the caller compiles instead).
pub(super) fn read_artifact(engine: &Engine, dir: &Path, sha256: &str) -> Option<Component> {
    let path = dir.join(format!("{sha256}.cwasm"));
    if !path.exists() {
        return None;
    }
    // SAFETY: the cache dir is private to this host and holds only artifacts this engine
    // configuration wrote (checked by wasmtime's compatibility header).
    match unsafe { Component::deserialize_file(engine, &path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached artifact");
            None
        }
    }
}

/// Deletes the oldest `*.cwasm` files in `dir` (by modification time) until their total
/// is at most `cap`; `keep` (just written) is never deleted.
pub(super) fn trim_cache_dir(dir: &Path, keep: &Path, cap: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total = files.iter().fold(0u64, |t, f| t.saturating_add(f.1));
    files.sort();
    for (_, len, path) in files {
        if total <= cap {
            break;
        }
        if path == keep {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => total = total.saturating_sub(len),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot trim the compiled-artifact cache")
            }
        }
    }
}

/// `bytes` in lower-case hex (the names of cached code and artifacts).
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_disk_cache_is_trimmed_oldest_first_and_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, len: usize| {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; len]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            p
        };
        write("a.cwasm", 100);
        write("b.cwasm", 100);
        write("notes.txt", 1000);
        let newest = write("c.cwasm", 100);
        trim_cache_dir(dir.path(), &newest, 250);
        let left = |n: &str| dir.path().join(n).exists();
        assert!(!left("a.cwasm") && left("b.cwasm") && left("c.cwasm") && left("notes.txt"));
        trim_cache_dir(dir.path(), &newest, 0);
        assert!(!left("b.cwasm") && left("c.cwasm"));
    }
}
