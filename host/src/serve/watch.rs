//! The watched plugin directory: turns files appearing under `<dir>/<tenant>/<pipeline>.wasm`
//! into [`PluginDrop`]s, one per new or changed content.
//!
//! Owns the `notify` watcher and its debouncer, the layout rule (which paths are plugins
//! and which are temp files or strays), and per-path de-duplication by SHA-256 of the
//! bytes, and the checks made before a file is read ([`Rules`]: its tenant and pipeline
//! exist, it is a regular file with one link and not a symlink, its size is within the
//! cap). It does not compile or validate anything, and never rolls back: removing a file
//! does nothing.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify_debouncer_full::notify::{self, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use sha2::{Digest, Sha256};
use tracing::{debug, error, info, warn};

use super::PipelineId;

/// A plugin file that appeared or changed, read in full after the debounce.
#[derive(Debug, Clone)]
pub struct PluginDrop {
    /// The pipeline: its tenant is the name of the directory the file is in, its name the
    /// file name without `.wasm`.
    pub id: PipelineId,
    /// The file, under the (canonicalized) watched directory.
    pub path: PathBuf,
    /// Its complete content, as read after the debounce.
    pub bytes: Vec<u8>,
    /// When the debounced event batch that carried this file was received; the start of
    /// the swap-latency measurement on the host side.
    pub seen_at: Instant,
}

/// The plugin directory `dir`, canonical; [`WatchError::DirMissing`] when it is not a
/// directory. `weir serve` asks before any pipeline starts.
pub fn check_plugin_dir(dir: &Path) -> Result<PathBuf, WatchError> {
    match fs::canonicalize(dir) {
        Ok(root) if root.is_dir() => Ok(root),
        _ => Err(WatchError::DirMissing {
            dir: dir.to_path_buf(),
        }),
    }
}

/// Why the plugin directory cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The directory does not exist or is not a directory.
    #[error(
        "plugin directory {} does not exist or is not a directory; create it or fix `plugins.dir` in the host config",
        .dir.display()
    )]
    DirMissing {
        /// The directory as configured.
        dir: PathBuf,
    },
    /// The OS watcher could not be set up (on Linux often the inotify watch limit,
    /// `fs.inotify.max_user_watches`).
    #[error("cannot watch plugin directory {}: {source}", .dir.display())]
    Watch {
        /// The directory as configured.
        dir: PathBuf,
        /// The underlying `notify` error.
        #[source]
        source: notify::Error,
    },
}

/// Whether a pipeline exists.
pub type KnownFn = Box<dyn Fn(&PipelineId) -> bool + Send>;

/// What a file must pass before the watcher reads a byte of it.
pub struct Rules {
    /// The largest file read (from its metadata, before opening it, and again while reading
    /// in case it grew); a larger file is refused with a warning.
    pub max_bytes: u64,
    /// Whether a pipeline exists; a file for an unknown one is refused unread.
    pub known: KnownFn,
}

impl Rules {
    /// Any name, files up to the default `plugins.max_bytes` (16 MiB).
    pub fn any_name() -> Self {
        Rules {
            max_bytes: crate::plugin::LoadLimits::default().max_bytes,
            known: Box::new(|_| true),
        }
    }
}

/// Watches the plugin directory. Dropping it stops watching (the debouncer thread exits
/// within one tick, a quarter of the debounce).
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Watches `dir` recursively; calls `on_drop` on a background thread for every new or
    /// changed `<tenant>/<pipeline>.wasm`, after `debounce` of quiet.
    ///
    /// - A file is read only once no event touched it for `debounce`, so a plugin written
    ///   in several chunks is delivered once, complete. (A writer that pauses longer than
    ///   `debounce` mid-file gets a half file delivered, which fails validation, then the
    ///   full one: write to a temp name and rename instead.)
    /// - Writing `<tenant>/.name.tmp` (or any hidden, `.tmp`, `.part`, `~` or
    ///   non-`.wasm` name) and renaming it to `<tenant>/<pipeline>.wasm` delivers the
    ///   rename target once; the temp file is ignored.
    /// - Content identical to what was last delivered for the same path is not delivered
    ///   again; that memory is forgotten when the file disappears.
    /// - Empty files, files directly in `dir`, and files nested deeper than
    ///   `<tenant>/` are ignored (logged at debug).
    /// - Files already present when watching starts are not delivered (see [`present`]).
    ///
    /// `on_drop` runs on the debouncer's thread, one call at a time: it should hand the
    /// drop off (e.g. into a channel) rather than compile in place.
    pub fn start(
        dir: &Path,
        debounce: Duration,
        on_drop: impl Fn(PluginDrop) + Send + 'static,
    ) -> Result<Self, WatchError> {
        Self::start_with(dir, debounce, Rules::any_name(), move |d| {
            on_drop(d);
            true
        })
    }

    /// Like [`Watcher::start`], with `rules` checked before a file is read: a file whose
    /// tenant or pipeline is unknown, a symlink (or a file in a symlinked tenant directory),
    /// anything but a regular file, a file with more than one hard link, and a file larger
    /// than `rules.max_bytes` are refused with a warning, unread. The file is opened without
    /// following symlinks or blocking, and checked to be the file whose metadata was
    /// checked, so a swap in between is refused too.
    /// `on_drop` returns whether it took the drop; if not, the content is not remembered as
    /// delivered, so the next change of the file is delivered again.
    pub fn start_with(
        dir: &Path,
        debounce: Duration,
        rules: Rules,
        on_drop: impl Fn(PluginDrop) -> bool + Send + 'static,
    ) -> Result<Self, WatchError> {
        // Canonical, so that event paths (absolute, symlinks resolved on some platforms)
        // strip cleanly against it.
        let root = check_plugin_dir(dir)?;
        let watch_error = |source| WatchError::Watch {
            dir: dir.to_path_buf(),
            source,
        };
        let mut state = State {
            root: root.clone(),
            delivered: HashMap::new(),
            rules,
        };
        let mut debouncer =
            new_debouncer(debounce, None, move |result| state.handle(result, &on_drop))
                .map_err(watch_error)?;
        debouncer
            .watch(&root, RecursiveMode::Recursive)
            .map_err(watch_error)?;
        info!(path = %root.display(), debounce_ms = debounce.as_millis() as u64, "watching plugin directory");
        Ok(Watcher {
            _debouncer: debouncer,
        })
    }
}

/// Every plugin file in `dir` now (`<tenant>/<pipeline>.wasm`), read with the checks a
/// dropped file passes ([`Rules`]: a known pipeline, a regular file with one link, within
/// the size cap; a refused one is logged and left out), in path order. `weir serve` with a
/// state directory asks at start, for the files written while it was down.
pub fn present(dir: &Path, rules: &Rules) -> Result<Vec<PluginDrop>, WatchError> {
    let root = check_plugin_dir(dir)?;
    let seen_at = Instant::now();
    let mut paths = BTreeSet::new();
    if let Ok(entries) = fs::read_dir(&root) {
        for entry in entries.flatten() {
            // A symlinked tenant directory is not followed (a file in it is refused anyway).
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                scan_tenant(&entry.path(), &mut paths);
            }
        }
    }
    let mut drops = Vec::new();
    for path in paths {
        let Place::Plugin(id) = place(&root, &path) else {
            continue;
        };
        if !(rules.known)(&id) {
            warn!(tenant = %id.tenant, pipeline = %id.pipeline, path = %path.display(), "plugin file present at start for an unknown tenant or pipeline (not read); the layout is <dir>/<tenant>/<pipeline>.wasm with names from the host config");
            continue;
        }
        match read_plugin(&path, rules.max_bytes) {
            Ok(Some(bytes)) => drops.push(PluginDrop {
                id,
                path,
                bytes,
                seen_at,
            }),
            Ok(None) => {}
            Err(e) => {
                warn!(tenant = %id.tenant, pipeline = %id.pipeline, path = %path.display(), error = %e, "plugin file present at start refused");
            }
        }
    }
    Ok(drops)
}

/// What the debouncer thread remembers between batches.
struct State {
    root: PathBuf,
    /// SHA-256 of the bytes last delivered, per plugin path.
    delivered: HashMap<PathBuf, [u8; 32]>,
    rules: Rules,
}

/// Where a path sits in the `<dir>/<tenant>/<pipeline>.wasm` layout.
#[derive(Debug, PartialEq)]
enum Place {
    /// `<dir>/<tenant>/<pipeline>.wasm`.
    Plugin(PipelineId),
    /// `<dir>/<name>`: a tenant directory, or a stray file.
    TopLevel,
    /// A hidden, temporary or non-`.wasm` name under a tenant directory.
    Ignored,
    /// Deeper than `<tenant>/`, or outside the directory.
    Elsewhere,
}

impl State {
    fn handle(&mut self, result: DebounceEventResult, on_drop: &impl Fn(PluginDrop) -> bool) {
        let seen_at = Instant::now();
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                for error in errors {
                    warn!(path = %self.root.display(), error = %error, "plugin directory watch error");
                }
                return;
            }
        };
        // Collect every path touched in the batch once, in a stable order; what matters is
        // what is on disk now, after the quiet period, not the sequence of events.
        let mut candidates = BTreeSet::new();
        for event in &events {
            if event.need_rescan() {
                debug!(path = %self.root.display(), "watch events were lost; rescanning plugin directory");
                self.scan_all(&mut candidates);
                continue;
            }
            if touches_content(&event.kind) {
                candidates.extend(event.paths.iter().cloned());
            }
        }
        for path in candidates {
            self.consider(path, seen_at, on_drop);
        }
    }

    fn consider(&mut self, path: PathBuf, seen_at: Instant, on_drop: &impl Fn(PluginDrop) -> bool) {
        let id = match place(&self.root, &path) {
            Place::Plugin(id) => id,
            Place::TopLevel => {
                let meta = fs::symlink_metadata(&path);
                if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
                    warn!(path = %path.display(), "refusing a symlink in the plugin directory; put tenant directories and plugin files there, not links");
                } else if meta.is_ok_and(|m| m.is_dir()) {
                    // A tenant directory created or renamed into place: files written into
                    // it before the recursive watch reached it raise no event of their own.
                    let mut inside = BTreeSet::new();
                    scan_tenant(&path, &mut inside);
                    for file in inside {
                        self.consider(file, seen_at, on_drop);
                    }
                } else if path.exists() {
                    debug!(path = %path.display(), "ignoring file directly in the plugin directory; expected <tenant>/<pipeline>.wasm");
                }
                return;
            }
            Place::Ignored => {
                debug!(path = %path.display(), "ignoring temporary or non-.wasm file");
                return;
            }
            Place::Elsewhere => {
                if path.is_file() {
                    debug!(path = %path.display(), "ignoring file nested deeper than <tenant>/<pipeline>.wasm");
                }
                return;
            }
        };
        let (tenant, pipeline) = (&*id.tenant, &*id.pipeline);
        if !(self.rules.known)(&id) {
            if path.exists() {
                warn!(tenant, pipeline, path = %path.display(), "refusing plugin file for an unknown tenant or pipeline (not read); the layout is <dir>/<tenant>/<pipeline>.wasm with names from the host config");
            }
            return;
        }
        let bytes = match read_plugin(&path, self.rules.max_bytes) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                debug!(tenant, pipeline, path = %path.display(), "plugin file is empty; waiting for content");
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Removed or renamed away. Rollback is explicit, so nothing is undeployed;
                // forgetting the hash lets the same bytes be dropped in again later.
                if self.delivered.remove(&path).is_some() {
                    debug!(tenant, pipeline, path = %path.display(), "plugin file removed; the deployed version stays");
                }
                return;
            }
            Err(e) => {
                warn!(tenant, pipeline, path = %path.display(), error = %e, "plugin file refused");
                return;
            }
        };
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if self.delivered.get(&path) == Some(&hash) {
            debug!(tenant, pipeline, path = %path.display(), "plugin file unchanged; not delivered again");
            return;
        }
        self.delivered.insert(path.clone(), hash);
        info!(tenant, pipeline, path = %path.display(), bytes = bytes.len(), "plugin file dropped");
        let drop = PluginDrop {
            id: id.clone(),
            path: path.clone(),
            bytes,
            seen_at,
        };
        // A panicking handler must not end the debouncer thread, which would stop
        // watching without a word.
        match std::panic::catch_unwind(AssertUnwindSafe(|| on_drop(drop))) {
            Ok(true) => {}
            Ok(false) => {
                self.delivered.remove(&path);
            }
            Err(_) => {
                error!(tenant, pipeline, path = %path.display(), "plugin drop handler panicked; still watching");
            }
        }
    }

    /// Every `<tenant>/*` entry, after events were lost.
    fn scan_all(&self, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                scan_tenant(&entry.path(), out);
            }
        }
    }
}

/// Adds the entries of one tenant directory.
fn scan_tenant(tenant_dir: &Path, out: &mut BTreeSet<PathBuf>) {
    if let Ok(entries) = fs::read_dir(tenant_dir) {
        out.extend(entries.flatten().map(|e| e.path()));
    }
}

/// Whether an event may mean new content at its paths. Opens and reads (including the
/// watcher's own reads) and metadata-only changes do not; removals do, in the sense that
/// the path's remembered hash must be forgotten.
fn touches_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
    }
}

/// Classifies `path` against the `<root>/<tenant>/<pipeline>.wasm` layout.
fn place(root: &Path, path: &Path) -> Place {
    let Ok(relative) = path.strip_prefix(root) else {
        return Place::Elsewhere;
    };
    let parts: Vec<&str> = match relative
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()
    {
        Some(parts) => parts,
        None => return Place::Elsewhere,
    };
    match parts.as_slice() {
        [_] => Place::TopLevel,
        [tenant, file] => {
            if tenant.starts_with('.') || is_temporary(file) {
                return Place::Ignored;
            }
            match file.strip_suffix(".wasm") {
                Some(pipeline) if !pipeline.is_empty() => {
                    Place::Plugin(PipelineId::new(*tenant, pipeline))
                }
                _ => Place::Ignored,
            }
        }
        _ => Place::Elsewhere,
    }
}

/// Names writers use for files that are not finished yet.
fn is_temporary(file: &str) -> bool {
    file.starts_with('.')
        || file.ends_with(".tmp")
        || file.ends_with(".part")
        || file.ends_with('~')
}

/// Reads a plugin file; `None` if it is empty (just created, content not written yet).
///
/// Refused unread: a symlink, a file in a symlinked directory, anything but a regular file,
/// a file with more than one hard link (a link to a file elsewhere, say a secret of the
/// host's, whose first bytes a rejection would quote), a file larger than `max_bytes` (from
/// its metadata). It is opened with `O_NOFOLLOW` and `O_NONBLOCK` (a FIFO swapped in after
/// the check cannot block the watcher), the open file is checked to be the file whose
/// metadata was checked (device and inode), to be a regular file and to have one link, and
/// it is read through `take(max_bytes + 1)`, so neither a swap nor a file growing after the
/// check gets more than `max_bytes` read. A refusal says why, never what the file holds.
fn read_plugin(path: &Path, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "is a symlink; copy the component into the directory instead of linking it".into(),
        ));
    }
    if !meta.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    if let Some(parent) = path.parent()
        && fs::symlink_metadata(parent)?.file_type().is_symlink()
    {
        return Err(refuse(
            "is in a symlinked tenant directory; make it a real directory".into(),
        ));
    }
    if meta.len() > max_bytes {
        return Err(refuse(format!(
            "is {} bytes; the limit is {max_bytes} bytes (plugins.max_bytes)",
            meta.len()
        )));
    }
    read_checked(path, &meta, max_bytes)
}

/// A refusal of a plugin file, saying why.
fn refuse(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// Opens `path` (without following a symlink or blocking) and reads it, if it is still the
/// file `meta` describes, a regular file with a single link; see [`read_plugin`].
fn read_checked(path: &Path, meta: &fs::Metadata, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let opened = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(refuse("was replaced while it was being checked".into()));
        }
    }
    if !opened.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if opened.nlink() > 1 {
            return Err(refuse(format!(
                "has {} hard links; copy the component into the directory (or write it there) instead of linking it",
                opened.nlink()
            )));
        }
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(refuse(format!(
            "grew past the limit of {max_bytes} bytes (plugins.max_bytes) while it was read"
        )));
    }
    Ok((!bytes.is_empty()).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{self, Receiver};

    const DEBOUNCE: Duration = Duration::from_millis(100);
    const WAIT: Duration = Duration::from_secs(5);

    /// A watched tempdir with tenant `acme` and the sentinel tenant `zz` already created.
    fn watched() -> (tempfile::TempDir, Watcher, Receiver<PluginDrop>) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("acme")).unwrap();
        fs::create_dir(dir.path().join("zz")).unwrap();
        let (tx, rx) = mpsc::channel();
        let watcher = Watcher::start(dir.path(), DEBOUNCE, move |d| {
            let _ = tx.send(d);
        })
        .unwrap();
        (dir, watcher, rx)
    }

    fn next(rx: &Receiver<PluginDrop>) -> PluginDrop {
        rx.recv_timeout(WAIT).expect("a plugin drop within 5 s")
    }

    /// Proves nothing else was delivered before now: writes `zz/sentinel.wasm` (which
    /// sorts after every other tenant in a batch, and whose events come after every
    /// earlier write) and expects it to be the very next drop.
    fn assert_nothing_before_sentinel(dir: &Path, rx: &Receiver<PluginDrop>, content: &[u8]) {
        fs::write(dir.join("zz/sentinel.wasm"), content).unwrap();
        let d = next(rx);
        assert_eq!(
            d.id.to_string(),
            "zz/sentinel",
            "unexpected drop {} before the sentinel",
            d.path.display()
        );
    }

    #[test]
    fn direct_write_is_one_drop_with_the_bytes() {
        let (dir, _w, rx) = watched();
        fs::write(dir.path().join("acme/fares.wasm"), b"\0asm version one").unwrap();
        let d = next(&rx);
        assert_eq!(d.id, PipelineId::new("acme", "fares"));
        assert_eq!(d.bytes, b"\0asm version one");
        assert!(d.path.ends_with("acme/fares.wasm"));
        assert_nothing_before_sentinel(dir.path(), &rx, b"s");
    }

    #[test]
    fn rename_into_place_is_one_complete_drop_and_the_temp_is_ignored() {
        let (dir, _w, rx) = watched();
        let tmp = dir.path().join("acme/.fares.wasm.tmp");
        fs::write(&tmp, b"first half, ").unwrap();
        // Longer than the debounce: the half-written temp file sits quiet on disk.
        std::thread::sleep(DEBOUNCE * 3);
        let mut full = b"first half, ".to_vec();
        full.extend_from_slice(b"second half");
        fs::write(&tmp, &full).unwrap();
        fs::rename(&tmp, dir.path().join("acme/fares.wasm")).unwrap();
        let d = next(&rx);
        assert_eq!(d.id, PipelineId::new("acme", "fares"));
        assert_eq!(d.bytes, full);
        assert_nothing_before_sentinel(dir.path(), &rx, b"s");
    }

    #[test]
    fn same_bytes_are_not_delivered_again_but_new_bytes_are() {
        let (dir, _w, rx) = watched();
        let path = dir.path().join("acme/fares.wasm");
        fs::write(&path, b"v1").unwrap();
        assert_eq!(next(&rx).bytes, b"v1");

        fs::write(&path, b"v1").unwrap();
        assert_nothing_before_sentinel(dir.path(), &rx, b"s1");

        fs::write(&path, b"v2").unwrap();
        let d = next(&rx);
        assert_eq!((&*d.id.pipeline, d.bytes.as_slice()), ("fares", &b"v2"[..]));
    }

    #[test]
    fn strays_temps_and_deep_files_are_ignored() {
        let (dir, _w, rx) = watched();
        let root = dir.path();
        fs::write(root.join("top.wasm"), b"x").unwrap();
        fs::write(root.join("acme/notes.txt"), b"x").unwrap();
        fs::write(root.join("acme/.hidden.wasm"), b"x").unwrap();
        fs::write(root.join("acme/fares.wasm.part"), b"x").unwrap();
        fs::write(root.join("acme/fares.wasm~"), b"x").unwrap();
        fs::write(root.join("acme/fares.tmp"), b"x").unwrap();
        fs::write(root.join("acme/empty.wasm"), b"").unwrap();
        fs::create_dir(root.join("acme/deep")).unwrap();
        fs::write(root.join("acme/deep/fares.wasm"), b"x").unwrap();
        assert_nothing_before_sentinel(root, &rx, b"s");
    }

    #[test]
    fn removal_delivers_nothing_and_the_same_bytes_can_return() {
        let (dir, _w, rx) = watched();
        let path = dir.path().join("acme/fares.wasm");
        fs::write(&path, b"v1").unwrap();
        assert_eq!(next(&rx).bytes, b"v1");
        fs::remove_file(&path).unwrap();
        assert_nothing_before_sentinel(dir.path(), &rx, b"s1");
        fs::write(&path, b"v1").unwrap();
        assert_eq!(next(&rx).bytes, b"v1");
    }

    #[test]
    fn a_new_tenant_directory_is_picked_up() {
        let (dir, _w, rx) = watched();
        let staging = dir.path().join(".staging");
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("fares.wasm"), b"v1").unwrap();
        fs::rename(&staging, dir.path().join("bravo")).unwrap();
        let d = next(&rx);
        assert_eq!(d.id, PipelineId::new("bravo", "fares"));
        assert_eq!(d.bytes, b"v1");
    }

    #[test]
    fn a_panicking_handler_does_not_stop_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("acme")).unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = Watcher::start(dir.path(), DEBOUNCE, move |d| {
            assert_ne!(d.bytes, b"boom", "handler panics on purpose");
            let _ = tx.send(d);
        })
        .unwrap();
        fs::write(dir.path().join("acme/fares.wasm"), b"boom").unwrap();
        std::thread::sleep(DEBOUNCE * 3);
        fs::write(dir.path().join("acme/fares.wasm"), b"v2").unwrap();
        assert_eq!(next(&rx).bytes, b"v2");
    }

    /// A watched tempdir with `acme` and `zz`, under rules: files up to 64 bytes, names
    /// known only for tenants `acme` and `zz`; `on_drop` takes a drop when `take` says so.
    fn watched_with_rules(
        take: impl Fn(&PluginDrop) -> bool + Send + 'static,
    ) -> (tempfile::TempDir, Watcher, Receiver<PluginDrop>) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("acme")).unwrap();
        fs::create_dir(dir.path().join("zz")).unwrap();
        fs::create_dir(dir.path().join("nobody")).unwrap();
        let (tx, rx) = mpsc::channel();
        let rules = Rules {
            max_bytes: 64,
            known: Box::new(|id| {
                (&*id.tenant == "acme" && &*id.pipeline == "fares") || &*id.tenant == "zz"
            }),
        };
        let watcher = Watcher::start_with(dir.path(), DEBOUNCE, rules, move |d| {
            let took = take(&d);
            if took {
                let _ = tx.send(d);
            }
            took
        })
        .unwrap();
        (dir, watcher, rx)
    }

    #[test]
    fn oversized_unknown_and_symlinked_files_are_refused() {
        let (dir, _w, rx) = watched_with_rules(|_| true);
        let root = dir.path();
        fs::write(root.join("acme/fares.wasm"), [1u8; 65]).unwrap();
        fs::write(root.join("acme/other.wasm"), b"small").unwrap();
        fs::write(root.join("nobody/fares.wasm"), b"small").unwrap();
        assert_nothing_before_sentinel(root, &rx, b"s1");
        fs::remove_file(root.join("acme/fares.wasm")).unwrap();
        let outside = root.join("outside.bin");
        fs::write(&outside, b"linked").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("acme/fares.wasm")).unwrap();
        assert_nothing_before_sentinel(root, &rx, b"s2");
        // A symlinked tenant directory: nothing inside it is read either.
        let real = root.join(".real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("fares.wasm"), b"x").unwrap();
        std::os::unix::fs::symlink(&real, root.join("zz2")).unwrap();
        assert_nothing_before_sentinel(root, &rx, b"s3");
        // At the limit, a regular file of a known pipeline is delivered.
        fs::remove_file(root.join("acme/fares.wasm")).unwrap();
        fs::write(root.join("acme/fares.wasm"), [2u8; 64]).unwrap();
        assert_eq!(next(&rx).bytes, [2u8; 64]);
    }

    #[test]
    fn files_present_are_read_with_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["acme", "nobody", "acme/deep"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        fs::write(root.join("acme/fares.wasm"), b"v1").unwrap();
        fs::write(root.join("acme/.fares.wasm.tmp"), b"temp").unwrap();
        fs::write(root.join("acme/other.wasm"), b"unknown pipeline").unwrap();
        fs::write(root.join("acme/deep/fares.wasm"), b"deep").unwrap();
        fs::write(root.join("nobody/fares.wasm"), b"unknown tenant").unwrap();
        fs::write(root.join("zz.wasm"), b"top").unwrap();
        fs::create_dir(root.join("zz")).unwrap();
        fs::write(root.join("zz/big.wasm"), [0u8; 65]).unwrap();
        fs::write(root.join("zz/empty.wasm"), b"").unwrap();
        fs::write(root.join("zz/ok.wasm"), b"v2").unwrap();
        let rules = Rules {
            max_bytes: 64,
            known: Box::new(|id| {
                (&*id.tenant == "acme" && &*id.pipeline == "fares") || &*id.tenant == "zz"
            }),
        };
        let found: Vec<(String, Vec<u8>)> = present(root, &rules)
            .unwrap()
            .into_iter()
            .map(|d| (d.id.to_string(), d.bytes))
            .collect();
        assert_eq!(
            found,
            [
                ("acme/fares".to_string(), b"v1".to_vec()),
                ("zz/ok".to_string(), b"v2".to_vec())
            ]
        );
        assert!(present(&root.join("missing"), &rules).is_err());
    }

    #[test]
    fn read_plugin_refuses_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.wasm");
        let f = fs::File::create(&big).unwrap();
        // Sparse: reading it whole would allocate 1 GiB.
        f.set_len(1 << 30).unwrap();
        let e = read_plugin(&big, 1024).unwrap_err().to_string();
        assert!(e.contains("plugins.max_bytes"), "{e}");
        let link = dir.path().join("link.wasm");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        let e = read_plugin(&link, 1 << 31).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(read_plugin(dir.path(), 1024).is_err(), "a directory");
    }

    #[test]
    fn read_plugin_refuses_hard_links_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.txt");
        fs::write(&secret, "root:x:0:0:the first line\n").unwrap();
        let link = dir.path().join("fares.wasm");
        fs::hard_link(&secret, &link).unwrap();
        let e = read_plugin(&link, 1024).unwrap_err().to_string();
        assert!(e.contains("has 2 hard links"), "{e}");
        assert!(!e.contains("root"), "the refusal quotes the file: {e}");
        // Once the other name is gone, the file is the plugin's own.
        fs::remove_file(&secret).unwrap();
        assert!(read_plugin(&link, 1024).unwrap().is_some());
    }

    #[test]
    fn a_fifo_swapped_in_after_the_check_does_not_block_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let checked = dir.path().join("checked.wasm");
        fs::write(&checked, b"x").unwrap();
        let meta = fs::symlink_metadata(&checked).unwrap();
        let fifo = dir.path().join("fares.wasm");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(
            read_plugin(&fifo, 1024)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
        // As if the FIFO replaced the file between the check of its metadata and the open:
        // the open returns at once (no writer needed) and the swap is refused.
        let (tx, rx) = mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_checked(&path, &meta, 1024).map_err(|e| e.to_string()));
        });
        let result = rx.recv_timeout(Duration::from_secs(5));
        if result.is_err() {
            // Unblock the reader so the test process can end.
            let _ = fs::OpenOptions::new().write(true).open(&fifo);
        }
        let e = result
            .expect("opening a FIFO blocked the watcher")
            .unwrap_err();
        assert!(e.contains("replaced"), "{e}");
    }

    #[test]
    fn a_drop_not_taken_is_delivered_again_with_the_same_bytes() {
        // The first delivery of each content is turned away (a full queue).
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        let (dir, _w, rx) = watched_with_rules(move |d| {
            &*d.id.tenant == "zz" || !seen.lock().unwrap().insert(d.bytes.clone())
        });
        let path = dir.path().join("acme/fares.wasm");
        fs::write(&path, b"v1").unwrap();
        assert_nothing_before_sentinel(dir.path(), &rx, b"s1");
        fs::write(&path, b"v1").unwrap();
        assert_eq!(next(&rx).bytes, b"v1");
    }

    #[test]
    fn missing_directory_names_it_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("plugins");
        let err = Watcher::start(&missing, DEBOUNCE, |_| {}).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&missing.display().to_string()),
            "{message}"
        );
        assert!(message.contains("plugins.dir"), "{message}");
    }

    #[test]
    fn layout() {
        let root = Path::new("/p");
        let plugin = |t: &str, p: &str| Place::Plugin(PipelineId::new(t, p));
        assert_eq!(
            place(root, Path::new("/p/acme/fares.wasm")),
            plugin("acme", "fares")
        );
        assert_eq!(
            place(root, Path::new("/p/acme/a.b.wasm")),
            plugin("acme", "a.b")
        );
        assert_eq!(place(root, Path::new("/p/acme")), Place::TopLevel);
        assert_eq!(place(root, Path::new("/p/x.wasm")), Place::TopLevel);
        assert_eq!(place(root, Path::new("/p/acme/.wasm")), Place::Ignored);
        assert_eq!(
            place(root, Path::new("/p/.acme/fares.wasm")),
            Place::Ignored
        );
        assert_eq!(
            place(root, Path::new("/p/acme/fares.wasm.tmp")),
            Place::Ignored
        );
        assert_eq!(place(root, Path::new("/p/acme/fares")), Place::Ignored);
        assert_eq!(place(root, Path::new("/p/a/b/c.wasm")), Place::Elsewhere);
        assert_eq!(
            place(root, Path::new("/q/acme/fares.wasm")),
            Place::Elsewhere
        );
    }
}
