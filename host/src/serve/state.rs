//! The state directory of `weir serve` (`[state] dir`): what each pipeline keeps across a
//! restart, on disk. It owns the layout, the file format, the atomic writes and the checks
//! made when the files are read back; which version a pipeline starts with is decided in
//! `mod.rs` (`Host::start`), and the changes come from `deploy.rs`, the control calls and
//! the pipeline thread (`worker.rs`, a quarantine).
//!
//! Layout, one directory per pipeline (names escaped by [`dir_name`]):
//!
//! ```text
//! <state.dir>/<tenant>/<pipeline>/state                      the Record
//! <state.dir>/<tenant>/<pipeline>/components/<sha256>.wasm   each kept version's component
//! ```
//!
//! A component is stored once per pipeline under its SHA-256, before any record names it,
//! and removed once no record of the pipeline names it. The `state` file is a header line,
//! `weir-serve-state format=1 crc32=<8 hex digits>`, then the [`Record`] as JSON (so an
//! operator can read it); the CRC-32 covers the JSON. Every file is written through
//! [`crate::checkpoint::write_atomically`] (a temporary file, `fsync`, rename, `fsync` of
//! the directory), so a crash leaves the previous file or the new one, never a mix. A
//! file that does not read back is never dropped silently: the host refuses to start and
//! names it.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::worker::lock;
use super::{PipelineId, RejectedView, VersionStatus, VersionView};

/// The layout of [`Record`]; a change to it bumps this number.
pub(super) const FORMAT: u32 = 1;

/// The first word of a state file.
const HEADER: &str = "weir-serve-state";

/// A pipeline's state file, inside its directory.
const FILE_NAME: &str = "state";

/// The directory of a pipeline's components, inside its directory.
const COMPONENTS: &str = "components";

/// What a pipeline keeps across a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Record {
    /// The pipeline, `tenant/pipeline`: checked against the directory it is read from.
    pub(super) pipeline: String,
    /// The Weir version that wrote it (for the operator; not checked).
    pub(super) written_by: String,
    /// SHA-256 of the pipeline's configured plugin (`plugin.path`) when the host last
    /// started: when it differs at the next start, the operator changed the plugin, and the
    /// configured one goes live as a deploy would.
    pub(super) config_sha256: String,
    /// The kept versions, oldest first, as the API showed them when this was written
    /// (`live`, `previous`, `rolled_back`, `quarantined` or `kept`; read back, `live` and
    /// `previous` are worked out again from `went_live`).
    pub(super) versions: Vec<VersionView>,
    /// The ids of the versions that went live, in the order they did; the last is `live`.
    /// A rollback returns through them.
    pub(super) went_live: Vec<String>,
    /// The id of the live version.
    pub(super) live: String,
    /// The last deploy that was refused (its component is not kept).
    pub(super) last_rejected: Option<RejectedView>,
    /// Paused through the API: it starts paused.
    pub(super) paused: bool,
    /// Quarantined while `version` was live: if that version is still live at the next
    /// start, the pipeline starts quarantined (reading nothing) until a deploy or rollback.
    pub(super) quarantine: Option<Quarantine>,
}

/// A quarantine the state directory recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Quarantine {
    /// The version live when the pipeline was quarantined.
    pub(super) version: String,
    /// Why, as the API showed it.
    pub(super) reason: String,
}

impl Record {
    /// A record of pipeline `id` whose configured plugin has SHA-256 `config_sha256`, with
    /// the history `versions`, `went_live` (the last one live) and `last_rejected`, running.
    pub(super) fn new(
        id: &PipelineId,
        config_sha256: &str,
        versions: Vec<VersionView>,
        went_live: Vec<String>,
        last_rejected: Option<RejectedView>,
    ) -> Self {
        let mut r = Record {
            pipeline: id.to_string(),
            written_by: env!("CARGO_PKG_VERSION").to_string(),
            config_sha256: config_sha256.to_string(),
            versions: Vec::new(),
            went_live: Vec::new(),
            live: String::new(),
            last_rejected: None,
            paused: false,
            quarantine: None,
        };
        r.set_history(versions, went_live, last_rejected);
        r
    }

    /// Replaces the versions, the way back and the last rejected deploy; the live version
    /// is the last that went live.
    pub(super) fn set_history(
        &mut self,
        versions: Vec<VersionView>,
        went_live: Vec<String>,
        last_rejected: Option<RejectedView>,
    ) {
        self.live = went_live.last().cloned().unwrap_or_default();
        self.versions = versions
            .into_iter()
            .map(|mut v| {
                v.live = v.id == self.live;
                v
            })
            .collect();
        self.went_live = went_live;
        self.last_rejected = last_rejected;
    }

    /// Records that the pipeline was quarantined while `version` was live, for `reason`.
    pub(super) fn quarantined(&mut self, version: &str, reason: &str) {
        if let Some(v) = self.versions.iter_mut().find(|v| v.id == version) {
            v.status = VersionStatus::Quarantined;
            v.status_reason = Some(reason.to_string());
        }
        self.quarantine = Some(Quarantine {
            version: version.to_string(),
            reason: reason.to_string(),
        });
    }

    /// The reason the live version was quarantined, if the pipeline was quarantined while
    /// it was live.
    pub(super) fn live_quarantine(&self) -> Option<&str> {
        self.quarantine
            .as_ref()
            .filter(|q| q.version == self.live)
            .map(|q| q.reason.as_str())
    }

    /// The live version's view.
    pub(super) fn live_version(&self) -> &VersionView {
        self.versions
            .iter()
            .find(|v| v.id == self.live)
            .expect("a checked record keeps its live version")
    }

    /// The file's bytes: the header line with the format and the CRC-32 of the JSON, then
    /// the JSON.
    pub(super) fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec_pretty(self).expect("a record encodes as JSON");
        let mut bytes = format!(
            "{HEADER} format={FORMAT} crc32={:08x}\n",
            crc32fast::hash(&json)
        )
        .into_bytes();
        bytes.extend_from_slice(&json);
        bytes.push(b'\n');
        bytes
    }

    /// Reads back what [`Record::encode`] wrote for pipeline `id`; why not, when it does
    /// not (not a state file, another format, a CRC that does not match, JSON that does not
    /// decode, or a record that contradicts itself or names another pipeline).
    pub(super) fn decode(id: &PipelineId, bytes: &[u8]) -> Result<Record, String> {
        let (header, json) = match bytes.iter().position(|&b| b == b'\n') {
            Some(at) => (&bytes[..at], &bytes[at + 1..]),
            None => return Err("it has no header line".into()),
        };
        let header = std::str::from_utf8(header).map_err(|_| "not a Weir state file")?;
        let mut words = header.split(' ');
        if words.next() != Some(HEADER) {
            return Err("not a Weir state file".into());
        }
        let (Some(format), Some(crc), None) = (
            words.next().and_then(|w| w.strip_prefix("format=")),
            words.next().and_then(|w| w.strip_prefix("crc32=")),
            words.next(),
        ) else {
            return Err("its header line is not `weir-serve-state format=N crc32=X`".into());
        };
        if format != FORMAT.to_string() {
            return Err(format!(
                "it is in state format {format}; this weir {} reads format {FORMAT}",
                env!("CARGO_PKG_VERSION")
            ));
        }
        let json = json.strip_suffix(b"\n").unwrap_or(json);
        if u32::from_str_radix(crc, 16).ok() != Some(crc32fast::hash(json)) {
            return Err("its CRC does not match".into());
        }
        let record: Record =
            serde_json::from_slice(json).map_err(|e| format!("it does not decode: {e}"))?;
        record.check(id)?;
        Ok(record)
    }

    /// Whether the record is one [`Record::set_history`] could have made for pipeline `id`.
    fn check(&self, id: &PipelineId) -> Result<(), String> {
        if self.pipeline != id.to_string() {
            return Err(format!("it is the state of pipeline {}", self.pipeline));
        }
        let mut ids = BTreeSet::new();
        for v in &self.versions {
            if !is_sha256(&v.sha256) {
                return Err(format!("version {} has no SHA-256", v.id));
            }
            if !ids.insert(v.id.as_str()) {
                return Err(format!("version {} is listed twice", v.id));
            }
        }
        if let Some(id) = self.went_live.iter().find(|v| !ids.contains(v.as_str())) {
            return Err(format!("version {id} went live but is not kept"));
        }
        if self.went_live.last() != Some(&self.live) || !ids.contains(self.live.as_str()) {
            return Err(format!(
                "its live version `{}` is not the last that went live",
                self.live
            ));
        }
        Ok(())
    }
}

/// Whether `s` is a SHA-256 in lowercase hex.
fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// SHA-256 of `bytes`, lowercase hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `name` as one path component: ASCII letters, digits, `-` and `_` as they are, `.` too
/// except in front, every other byte as `%XX`. Different names give different components,
/// and none is `.`, `..` or holds a `/`.
pub(super) fn dir_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One pipeline's store in the state directory: its [`Record`] as last written, and its
/// components.
pub(super) struct Store {
    id: PipelineId,
    /// `<state.dir>/<tenant>/<pipeline>`.
    dir: PathBuf,
    /// The record as last written (or about to be first written).
    record: Mutex<Option<Record>>,
}

impl Store {
    /// Pipeline `id`'s store under the state directory `root`; nothing is read yet.
    pub(super) fn new(root: &Path, id: &PipelineId) -> Self {
        Store {
            id: id.clone(),
            dir: root.join(dir_name(&id.tenant)).join(dir_name(&id.pipeline)),
            record: Mutex::new(None),
        }
    }

    /// The pipeline's directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file.
    pub(super) fn file(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The file of the component with SHA-256 `sha256`.
    pub(super) fn component(&self, sha256: &str) -> PathBuf {
        self.dir.join(COMPONENTS).join(format!("{sha256}.wasm"))
    }

    /// Reads the record, if there is one; a damaged one is an error that names the file and
    /// the fix.
    pub(super) fn read(&self) -> anyhow::Result<Option<Record>> {
        let path = self.file();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!(
                "reading the state of pipeline {} from {}: {e}; make state.dir readable by the host",
                self.id,
                path.display()
            ),
        };
        Record::decode(&self.id, &bytes).map(Some).map_err(|reason| {
            anyhow::anyhow!(
                "the state file {} of pipeline {} is damaged ({reason}); nothing was started. Delete it to start the pipeline from its configured plugin (its kept versions, pause and quarantine are then forgotten), or put back a good copy",
                path.display(),
                self.id
            )
        })
    }

    /// The bytes of the kept component with SHA-256 `sha256`, checked against it; a
    /// missing or damaged one is an error that names the file and the fix.
    pub(super) fn read_component(&self, sha256: &str) -> Result<Vec<u8>, String> {
        let path = self.component(sha256);
        let damaged = |what: String| {
            format!(
                "component {} of pipeline {}'s state {what}; delete the state file {} to start the pipeline from its configured plugin (its kept versions are then forgotten)",
                path.display(),
                self.id,
                self.file().display()
            )
        };
        let bytes = std::fs::read(&path).map_err(|e| damaged(format!("cannot be read: {e}")))?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(damaged(format!(
                "is damaged: its SHA-256 is {actual}, not {sha256}"
            )));
        }
        Ok(bytes)
    }

    /// Stores a component (once: a component already stored is not written again).
    pub(super) fn put_component(&self, bytes: &[u8]) -> io::Result<()> {
        let sha256 = sha256_hex(bytes);
        if self.component(&sha256).is_file() {
            return Ok(());
        }
        crate::checkpoint::write_atomically(
            &self.dir.join(COMPONENTS),
            &format!("{sha256}.wasm"),
            bytes,
        )
    }

    /// Writes `record` as the pipeline's state and keeps it as the base of later updates.
    pub(super) fn save(&self, record: Record) -> io::Result<()> {
        let mut kept = lock(&self.record);
        crate::checkpoint::write_atomically(&self.dir, FILE_NAME, &record.encode())?;
        *kept = Some(record);
        Ok(())
    }

    /// Applies `change` to the record and writes it. A failed write is logged (the change
    /// then does not survive a restart); the next write carries it.
    pub(super) fn update(&self, change: impl FnOnce(&mut Record)) {
        let mut kept = lock(&self.record);
        let Some(record) = kept.as_mut() else {
            return;
        };
        change(record);
        if let Err(e) = crate::checkpoint::write_atomically(&self.dir, FILE_NAME, &record.encode())
        {
            tracing::error!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, path = %self.file().display(), error = %e, "writing the pipeline's state failed: this change will not survive a restart until the next write succeeds; check state.dir (space, permissions)");
        }
    }

    /// Removes the components no version of the record keeps, and temporary files left by
    /// a crash. Call it only while no deploy of the pipeline is under way (under its
    /// deploy lock): a deploy stores its component before the record names it.
    pub(super) fn collect_garbage(&self) {
        let kept: BTreeSet<String> = match lock(&self.record).as_ref() {
            Some(r) => r
                .versions
                .iter()
                .map(|v| format!("{}.wasm", v.sha256))
                .collect(),
            None => return,
        };
        let Ok(entries) = std::fs::read_dir(self.dir.join(COMPONENTS)) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if kept.contains(&*name.to_string_lossy()) {
                continue;
            }
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, path = %entry.path().display(), error = %e, "removing a component no version keeps");
            }
        }
    }
}

/// The pipeline directories under the state directory `root` that hold a state file but
/// are not among `configured` (the directories of the host's pipelines): pipelines
/// removed from the host config, whose state is left alone.
pub(super) fn strays(root: &Path, configured: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(tenants) = std::fs::read_dir(root) else {
        return out;
    };
    for tenant in tenants.flatten() {
        let Ok(pipelines) = std::fs::read_dir(tenant.path()) else {
            continue;
        };
        for p in pipelines.flatten() {
            let dir = p.path();
            if dir.join(FILE_NAME).is_file() && !configured.contains(&dir) {
                out.push(dir);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, sha: char, status: VersionStatus) -> VersionView {
        VersionView {
            id: id.to_string(),
            sha256: sha.to_string().repeat(64),
            origin: "api".into(),
            deployed_at: "2024-05-01T10:00:00.000Z".into(),
            live: false,
            status,
            status_reason: None,
        }
    }

    fn sample(id: &PipelineId) -> Record {
        let mut r = Record::new(
            id,
            &"a".repeat(64),
            vec![
                view("p@1+aaaaaaaaaaaa", 'a', VersionStatus::Kept),
                view("p@2+bbbbbbbbbbbb", 'b', VersionStatus::RolledBack),
                view("p@3+cccccccccccc", 'c', VersionStatus::Kept),
            ],
            vec!["p@1+aaaaaaaaaaaa".into(), "p@3+cccccccccccc".into()],
            Some(RejectedView {
                reason: "cannot load".into(),
                at: "2024-05-01T10:01:00.000Z".into(),
                origin: "file".into(),
                file: Some("/plugins/acme/ticks.wasm".into()),
                sha256: "d".repeat(64),
            }),
        );
        r.paused = true;
        r.quarantined("p@3+cccccccccccc", "3 plugin failures in a row");
        r
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let id = PipelineId::new("acme", "ticks");
        let r = sample(&id);
        assert_eq!(r.live, "p@3+cccccccccccc", "the last that went live");
        assert!(r.versions[2].live && !r.versions[0].live);
        assert_eq!(r.live_quarantine(), Some("3 plugin failures in a row"));
        assert_eq!(r.versions[2].status, VersionStatus::Quarantined);
        let bytes = r.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("weir-serve-state format=1 crc32="),
            "{text}"
        );
        assert_eq!(Record::decode(&id, &bytes).unwrap(), r);
        // Another live version: the quarantine no longer applies.
        let mut other = r.clone();
        other.set_history(r.versions.clone(), vec!["p@1+aaaaaaaaaaaa".into()], None);
        assert_eq!(other.live_quarantine(), None);
        assert_eq!(other.live_version().id, "p@1+aaaaaaaaaaaa");
    }

    #[test]
    fn a_damaged_record_is_refused_with_the_reason() {
        let id = PipelineId::new("acme", "ticks");
        let bytes = sample(&id).encode();
        let err = |b: &[u8]| Record::decode(&id, b).unwrap_err();
        // One changed byte in the JSON fails the CRC.
        let mut flipped = bytes.clone();
        let at = flipped.len() - 20;
        flipped[at] ^= 1;
        assert_eq!(err(&flipped), "its CRC does not match");
        // Cut short: the CRC again (the JSON is what it covers).
        assert_eq!(err(&bytes[..bytes.len() / 2]), "its CRC does not match");
        assert_eq!(err(b""), "it has no header line");
        assert_eq!(err(b"{\"pipeline\": 1}\n"), "not a Weir state file");
        let other = String::from_utf8(bytes.clone())
            .unwrap()
            .replacen("format=1", "format=7", 1);
        assert!(err(other.as_bytes()).contains("state format 7"));
        // Another pipeline's state.
        let e = Record::decode(&PipelineId::new("acme", "other"), &bytes).unwrap_err();
        assert_eq!(e, "it is the state of pipeline acme/ticks");
        // A record that contradicts itself, with a matching CRC.
        let mut bad = sample(&id);
        bad.went_live.push("p@9+999999999999".into());
        assert_eq!(
            err(&bad.encode()),
            "version p@9+999999999999 went live but is not kept"
        );
        let mut bad = sample(&id);
        bad.live = "p@1+aaaaaaaaaaaa".into();
        assert!(err(&bad.encode()).contains("is not the last that went live"));
        let mut bad = sample(&id);
        bad.versions[0].sha256 = "xyz".into();
        assert!(err(&bad.encode()).contains("has no SHA-256"));
    }

    #[test]
    fn writes_are_atomic_and_components_are_stored_once_and_collected() {
        let root = tempfile::tempdir().unwrap();
        let id = PipelineId::new("acme", "ti/cks");
        let store = Store::new(root.path(), &id);
        assert_eq!(store.dir(), root.path().join("acme").join("ti%2Fcks"));
        assert!(store.read().unwrap().is_none());
        let mut r = sample(&id);
        for v in &mut r.versions {
            v.sha256 = sha256_hex(v.id.as_bytes());
            store.put_component(v.id.as_bytes()).unwrap();
        }
        // The same bytes again: still one file.
        store.put_component(r.versions[0].id.as_bytes()).unwrap();
        store.put_component(b"an orphan").unwrap();
        store.save(r.clone()).unwrap();
        store.update(|r| r.paused = false);
        let back = store.read().unwrap().unwrap();
        assert!(!back.paused);
        assert_eq!(back.versions, r.versions);
        // Only the state file is left of the writes: each temporary file was renamed.
        let names = |dir: &Path| -> Vec<String> {
            let mut n: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(store.dir()), [COMPONENTS, FILE_NAME]);
        assert_eq!(names(&store.dir().join(COMPONENTS)).len(), 4);
        store.collect_garbage();
        let mut kept: Vec<String> = r
            .versions
            .iter()
            .map(|v| format!("{}.wasm", v.sha256))
            .collect();
        kept.sort();
        assert_eq!(names(&store.dir().join(COMPONENTS)), kept);
        assert_eq!(
            store.read_component(&r.versions[1].sha256).unwrap(),
            r.versions[1].id.as_bytes()
        );
        // A component that changed on disk is refused, naming the file and the fix.
        let path = store.component(&r.versions[1].sha256);
        std::fs::write(&path, b"something else").unwrap();
        let e = store.read_component(&r.versions[1].sha256).unwrap_err();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("delete the state file"), "{e}");
        // A damaged state file is named with the fix.
        std::fs::write(store.file(), b"garbage").unwrap();
        let e = store.read().unwrap_err().to_string();
        assert!(e.contains(&store.file().display().to_string()), "{e}");
        assert!(e.contains("Delete it"), "{e}");
        // Another pipeline's directory is a stray unless configured.
        let other = Store::new(root.path(), &PipelineId::new("acme", "gone"));
        other
            .save(sample(&PipelineId::new("acme", "gone")))
            .unwrap();
        let configured = BTreeSet::from([store.dir().to_path_buf()]);
        assert_eq!(
            strays(root.path(), &configured),
            [other.dir().to_path_buf()]
        );
    }

    #[test]
    fn directory_names_are_one_component_and_distinct() {
        assert_eq!(dir_name("ticks-1_a.b"), "ticks-1_a.b");
        assert_eq!(dir_name(".."), "%2E.");
        assert_eq!(dir_name("a/b"), "a%2Fb");
        assert_eq!(dir_name("a%2Fb"), "a%252Fb");
        assert_eq!(dir_name("é"), "%C3%A9");
    }
}
