//! Host-owned window state for the whole-window aggregate style, and firing.
//!
//! Each key keeps one time-ordered buffer of its events and the set of its live windows.
//! An event is stored once however many windows contain it; a window's events are the
//! buffer's range `[start, end)` at fire time. That is exact because an event is kept out of
//! a window only when that window is already purged (see `process`), and the buffer is
//! trimmed only below the earliest live window of the key.
//!
//! For the pane-aligned kinds (tumbling, sliding, cumulative) a window is named by its end,
//! and a key's live and pending windows are runs of ends ([`EndSet`]): an event costs
//! O(log) in the number of windows it joins, not one step per window. Only windows that
//! fired and are kept for allowed lateness have an entry each (their firing count, for
//! revisions). Sessions keep one entry per session. Across keys, one queue entry per key
//! (its next pending window) gives the firing order `(end, start, key)`, and one entry per
//! key (its earliest live window) schedules purging, so a watermark step touches only the
//! keys with something due.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::ends::EndSet;
use super::panes::PaneStacks;
use super::{Window, WindowKind};
use crate::value::{Key, Value};

/// One buffered event: its time and the value of every schema field, in schema order (the
/// whole event, so that a hot-swapped version reading other fields finds them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Event time, epoch ms.
    pub ts: i64,
    /// Values of the schema's fields, in schema order.
    pub values: Box<[Value]>,
}

/// Fixed part of the byte estimate of one buffered event: its time, the boxed slice of its
/// values and its slot in the key's buffer (64 bytes).
pub const EVENT_OVERHEAD_BYTES: u64 = 64;

impl StoredEvent {
    /// Estimated bytes an event with these values holds in window state:
    /// [`EVENT_OVERHEAD_BYTES`], plus one `Value` slot per field (24 bytes on 64-bit
    /// targets), plus the length of every string value. Saturating, so it never wraps.
    pub fn estimated_bytes(values: &[Value]) -> u64 {
        let slot = std::mem::size_of::<Value>() as u64;
        values.iter().fold(EVENT_OVERHEAD_BYTES, |acc, v| {
            let heap = match v {
                Value::Str(s) => s.len() as u64,
                _ => 0,
            };
            acc.saturating_add(slot).saturating_add(heap)
        })
    }
}

/// Caps on the state of one pipeline, checked as an event is placed: an event that would
/// go over any of them is refused whole (nothing of it is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Most windows one event may belong to (checked before its windows are computed).
    pub max_windows_per_event: u64,
    /// Most live windows over all keys, counting the windows this event would create.
    pub max_open_windows: u64,
    /// Most events held over all keys.
    pub max_buffered_events: u64,
    /// Most estimated bytes held over all keys ([`StoredEvent::estimated_bytes`]).
    pub max_buffered_bytes: u64,
}

impl StateLimits {
    /// No caps at all.
    pub const UNLIMITED: StateLimits = StateLimits {
        max_windows_per_event: u64::MAX,
        max_open_windows: u64::MAX,
        max_buffered_events: u64::MAX,
        max_buffered_bytes: u64::MAX,
    };
}

impl Default for StateLimits {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

/// Where an event went.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Added to this many windows.
    Added(usize),
    /// Late for every window that contains it: not stored; its values are handed back
    /// for the late sink.
    Late(Box<[Value]>),
    /// Refused whole, with the reason (a state limit, or window bounds that overflow): not
    /// stored; the pipeline sends the record to the dead letter.
    Refused(String),
}

/// One window firing: a key's events in a window, handed to the aggregate.
#[derive(Debug, Clone)]
pub struct Firing<'a> {
    /// The key.
    pub key: &'a Key,
    /// The window.
    pub window: Window,
    /// 0 for the first firing of this window, then 1, 2, … for early or late re-firings.
    pub revision: u32,
    /// The window's events for this key, sorted by time (ties in arrival order).
    pub events: std::collections::vec_deque::Iter<'a, StoredEvent>,
}

/// How many events are before `t` (`events` sorted by time), searched by galloping from
/// the front: O(log n) where n is that count.
fn from_front(events: &VecDeque<StoredEvent>, t: i64) -> usize {
    let before = |i: usize| events.get(i).is_some_and(|e| e.ts < t);
    let mut hi = 1;
    while hi < events.len() && before(hi - 1) {
        hi = hi.saturating_mul(2);
    }
    search(events, hi / 2, hi.min(events.len()), t)
}

/// How many events are before `t` (`events` sorted by time), searched by galloping from
/// the back: O(log n) where n is the number of events at or after `t`.
fn from_back(events: &VecDeque<StoredEvent>, t: i64) -> usize {
    let len = events.len();
    let at_or_after = |back: usize| events.get(len - back).is_some_and(|e| e.ts >= t);
    let mut back = 1;
    while back < len && at_or_after(back) {
        back = back.saturating_mul(2);
    }
    let back = back.min(len);
    search(events, len - back, len - back / 2, t)
}

/// The first index in `lo..hi` whose event is not before `t`, given that every event
/// before `lo` is and none from `hi` on is.
fn search(events: &VecDeque<StoredEvent>, mut lo: usize, mut hi: usize, t: i64) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if events.get(mid).is_some_and(|e| e.ts < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The live windows of one key.
#[derive(Debug, Serialize, Deserialize)]
enum KeyWindows {
    /// A pane-aligned kind: windows named by their ends, `step` ms apart.
    Panes {
        /// Distance between two ends (the pane).
        step: i64,
        /// Live windows.
        live: EndSet,
        /// Live windows holding events not yet emitted (a subset of `live`).
        pending: EndSet,
        /// Firing counts of live windows that fired at least once.
        firings: BTreeMap<i64, u32>,
    },
    /// Sessions, disjoint, so ordering by start orders ends too.
    Sessions {
        /// Live sessions by (start, end), with how many times each fired.
        windows: BTreeMap<(i64, i64), u32>,
        /// Live sessions holding events not yet emitted.
        pending: BTreeSet<(i64, i64)>,
    },
}

impl KeyWindows {
    fn new(kind: WindowKind) -> Self {
        match kind.pane() {
            Some(step) => KeyWindows::Panes {
                step,
                live: EndSet::default(),
                pending: EndSet::default(),
                firings: BTreeMap::new(),
            },
            None => KeyWindows::Sessions {
                windows: BTreeMap::new(),
                pending: BTreeSet::new(),
            },
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            KeyWindows::Panes { live, .. } => live.is_empty(),
            KeyWindows::Sessions { windows, .. } => windows.is_empty(),
        }
    }

    /// The earliest pending window.
    fn first_pending(&self, kind: WindowKind) -> Option<Window> {
        match self {
            KeyWindows::Panes { pending, .. } => pending.first().map(|e| kind.ending_at(e)),
            KeyWindows::Sessions { pending, .. } => {
                pending.first().map(|&(start, end)| Window { start, end })
            }
        }
    }

    /// The earliest live window (also the one with the earliest start).
    fn first_live(&self, kind: WindowKind) -> Option<Window> {
        match self {
            KeyWindows::Panes { live, .. } => live.first().map(|e| kind.ending_at(e)),
            KeyWindows::Sessions { windows, .. } => windows
                .keys()
                .next()
                .map(|&(start, end)| Window { start, end }),
        }
    }

    /// Takes the earliest pending window out of `pending`.
    fn take_first_pending(&mut self) {
        match self {
            KeyWindows::Panes { step, pending, .. } => {
                pending.pop_first(*step);
            }
            KeyWindows::Sessions { pending, .. } => {
                pending.pop_first();
            }
        }
    }

    /// How many times a live window fired; `None` if it is not live.
    fn revision(&self, w: Window) -> Option<u32> {
        match self {
            KeyWindows::Panes { live, firings, .. } => live
                .contains(w.end)
                .then(|| firings.get(&w.end).copied().unwrap_or(0)),
            KeyWindows::Sessions { windows, .. } => windows.get(&(w.start, w.end)).copied(),
        }
    }

    /// Counts one firing of a live window.
    fn fired(&mut self, w: Window) {
        match self {
            KeyWindows::Panes { live, firings, .. } => {
                if live.contains(w.end) {
                    *firings.entry(w.end).or_insert(0) += 1;
                }
            }
            KeyWindows::Sessions { windows, .. } => {
                if let Some(n) = windows.get_mut(&(w.start, w.end)) {
                    *n += 1;
                }
            }
        }
    }

    /// Makes a live window pending again; false if it is not live.
    fn repend(&mut self, w: Window) -> bool {
        match self {
            KeyWindows::Panes {
                step,
                live,
                pending,
                ..
            } => {
                let is_live = live.contains(w.end);
                if is_live {
                    pending.insert(w.end, w.end, *step);
                }
                is_live
            }
            KeyWindows::Sessions { windows, pending } => {
                let is_live = windows.contains_key(&(w.start, w.end));
                if is_live {
                    pending.insert((w.start, w.end));
                }
                is_live
            }
        }
    }

    /// Drops the live windows ending at or before `last` that are not pending; returns
    /// how many.
    fn purge_through(&mut self, last: i64) -> u64 {
        match self {
            KeyWindows::Panes {
                step,
                live,
                pending,
                firings,
            } => {
                let step = *step;
                let gone = live.remove_through(last, step);
                // Pending windows (declined) survive: put them back.
                let mut kept = 0u64;
                for (lo, hi) in pending.runs_through(last, step) {
                    kept = kept.saturating_add(live.insert(lo, hi, step));
                }
                if pending.first().is_none_or(|p| p > last) {
                    // Nothing pending is purged: every count up to `last` goes.
                    while firings
                        .first_key_value()
                        .is_some_and(|(&end, _)| end <= last)
                    {
                        firings.pop_first();
                    }
                } else {
                    let later = match last.checked_add(1) {
                        Some(after) => firings.split_off(&after),
                        None => BTreeMap::new(),
                    };
                    let mut early = std::mem::replace(firings, later);
                    early.retain(|&end, _| pending.contains(end));
                    firings.extend(early);
                }
                gone.saturating_sub(kept)
            }
            KeyWindows::Sessions { windows, pending } => {
                let gone: Vec<(i64, i64)> = windows
                    .keys()
                    .take_while(|&&(_, end)| end <= last)
                    .filter(|w| !pending.contains(w))
                    .copied()
                    .collect();
                for w in &gone {
                    windows.remove(w);
                }
                gone.len() as u64
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyState {
    key: Key,
    events: VecDeque<StoredEvent>,
    windows: KeyWindows,
    /// Pane states of an incremental plugin (a cache over `events`: not checkpointed, rebuilt
    /// from the events at the next firing).
    #[serde(skip)]
    stacks: PaneStacks,
    /// This key's entry in the operator's `queue` (its earliest pending window), if any.
    queued: Option<(i64, i64)>,
    /// This key's entry in the operator's `cleanup` (when its earliest live window may be
    /// purged), if any.
    cleanup_at: Option<i64>,
    /// The input partition of its latest event (a key lives in one partition).
    partition: u32,
}

/// One key's window state as a checkpoint holds it: its events, its live and pending
/// windows and their firing counts (pane states are a cache, rebuilt from the events).
#[derive(Debug, Serialize, Deserialize)]
pub struct KeySnapshot(KeyState);

impl KeySnapshot {
    /// The key.
    pub fn key(&self) -> &Key {
        &self.0.key
    }
}

/// A window due to fire: `(end, start, key id)`, from [`WindowOperator::take_due`].
pub type Due = (i64, i64, u32);

/// Window state and firing for one pipeline (all keys).
#[derive(Debug)]
pub struct WindowOperator {
    kind: WindowKind,
    lateness: i64,
    ids: HashMap<Key, u32>,
    states: Vec<Option<KeyState>>,
    free: Vec<u32>,
    /// Each key's earliest pending window: (end, start, key id).
    queue: BTreeSet<(i64, i64, u32)>,
    /// Each key's earliest purge time (earliest live end + lateness): (time, key id).
    cleanup: BTreeSet<(i64, u32)>,
    open_windows: u64,
    buffered: usize,
    buffered_bytes: u64,
    limits: StateLimits,
    /// The input partition of the events placed now ([`WindowOperator::set_partition`]).
    partition: u32,
}

impl WindowOperator {
    /// An operator for `kind` with `lateness` ms of allowed lateness.
    pub fn new(kind: WindowKind, lateness: i64) -> Self {
        WindowOperator {
            kind,
            lateness,
            ids: HashMap::new(),
            states: Vec::new(),
            free: Vec::new(),
            queue: BTreeSet::new(),
            cleanup: BTreeSet::new(),
            open_windows: 0,
            buffered: 0,
            buffered_bytes: 0,
            limits: StateLimits::UNLIMITED,
            partition: 0,
        }
    }

    /// The window kind.
    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    /// Sets the caps checked by [`WindowOperator::process`] from now on.
    pub fn set_limits(&mut self, limits: StateLimits) {
        self.limits = limits;
    }

    /// Estimated bytes of the events held in window state over all keys.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered_bytes
    }

    /// Why an event creating `new_windows` windows and holding `bytes` may not be stored,
    /// if it may not.
    fn over_limits(&self, new_windows: u64, bytes: u64) -> Option<String> {
        let l = &self.limits;
        let open = self.open_windows;
        if new_windows > 0 && open.saturating_add(new_windows) > l.max_open_windows {
            return Some(format!(
                "limit reached: the event would open {new_windows} new windows with {open} open, over max_open_windows {}; raise plugin.limits.max_open_windows or use fewer keys or windows per event",
                l.max_open_windows
            ));
        }
        let buffered = self.buffered as u64;
        if buffered.saturating_add(1) > l.max_buffered_events {
            return Some(format!(
                "limit reached: {buffered} events buffered, max_buffered_events {}; raise plugin.limits.max_buffered_events or lower watermark.delay / window.allowed_lateness",
                l.max_buffered_events
            ));
        }
        if self.buffered_bytes.saturating_add(bytes) > l.max_buffered_bytes {
            return Some(format!(
                "limit reached: the event's {bytes} bytes (estimated) with {} bytes buffered would exceed max_buffered_bytes {}; raise plugin.limits.max_buffered_bytes or lower watermark.delay / window.allowed_lateness",
                self.buffered_bytes, l.max_buffered_bytes
            ));
        }
        None
    }

    /// Live windows over all keys (fired windows kept for lateness included). Exact: each
    /// key's count is kept arithmetically from its runs of window ends.
    pub fn open_windows(&self) -> usize {
        usize::try_from(self.open_windows).unwrap_or(usize::MAX)
    }

    /// Events held in window state over all keys.
    pub fn buffered_events(&self) -> usize {
        self.buffered
    }

    /// Whether a window is dropped for an event arriving at watermark `w`.
    ///
    /// `end + allowed_lateness` saturates: with event time in its range and durations
    /// bounded by config it never reaches `i64::MAX`, and if it did the window would only
    /// be kept longer (never late, purged at the end of input), never wrapped into the past.
    fn is_late(&self, window: Window, w: i64) -> bool {
        window.end.saturating_add(self.lateness) <= w
    }

    /// The first end of the run `first, first + step, …, last` that is not late at
    /// watermark `w`, if any.
    fn first_on_time(&self, first: i64, last: i64, step: i64, w: i64) -> Option<i64> {
        let late = |end: i64| end.saturating_add(self.lateness) <= w;
        if !late(first) {
            return Some(first);
        }
        if late(last) {
            return None;
        }
        // Ends are late up to w - lateness (no saturation here: `last` is on time).
        let cut = w - self.lateness;
        let k = (i128::from(cut) - i128::from(first)) / i128::from(step.max(1)) + 1;
        let end = i128::from(first) + k * i128::from(step.max(1));
        i64::try_from(end).ok().filter(|&e| e <= last)
    }

    /// Why [`WindowOperator::process`] would refuse an event at `ts` whatever the state
    /// holds, if it would: too many windows per event, or window bounds that overflow.
    /// (The state limits depend on the state, and are checked by `process` only.)
    pub fn refuses(&self, ts: i64) -> Option<String> {
        let per_event = self.kind.windows_per_event();
        if per_event > self.limits.max_windows_per_event {
            return Some(format!(
                "limit reached: the event belongs to {per_event} windows, over max_windows_per_event {}",
                self.limits.max_windows_per_event
            ));
        }
        match self.kind.ends(ts) {
            Err(e) => Some(e.to_string()),
            Ok(Some(_)) => None,
            Ok(None) => {
                let mut scratch = Vec::with_capacity(1);
                self.kind
                    .assign(ts, &mut scratch)
                    .err()
                    .map(|e| e.to_string())
            }
        }
    }

    /// Adds one event, given the watermark as it was before this event.
    ///
    /// The event joins every window it is not late for (`end + allowed_lateness > W`);
    /// if there is none it is a late event and nothing is stored.
    pub fn process(
        &mut self,
        ts: i64,
        key: Key,
        values: Box<[Value]>,
        watermark: i64,
    ) -> Placement {
        let per_event = self.kind.windows_per_event();
        if per_event > self.limits.max_windows_per_event {
            return Placement::Refused(format!(
                "limit reached: the event belongs to {per_event} windows, over max_windows_per_event {}",
                self.limits.max_windows_per_event
            ));
        }
        let (first, last) = match self.kind.ends(ts) {
            Err(e) => return Placement::Refused(e.to_string()),
            Ok(None) => return self.process_session(ts, key, values, watermark),
            Ok(Some(run)) => run,
        };
        let step = self.kind.pane().unwrap_or(1);
        let Some(first) = self.first_on_time(first, last, step, watermark) else {
            return Placement::Late(values);
        };
        // One lookup of the key serves the limit check and the insertion.
        let existing = self.ids.get(&key).copied();
        let joined = (i128::from(last) - i128::from(first)) / i128::from(step.max(1)) + 1;
        let joined = u64::try_from(joined).unwrap_or(u64::MAX);
        let new_windows = match existing
            .and_then(|id| self.states.get(id as usize))
            .and_then(Option::as_ref)
            .map(|st| &st.windows)
        {
            Some(KeyWindows::Panes { live, .. }) => {
                joined.saturating_sub(live.count(first, last, step))
            }
            _ => joined,
        };
        let bytes = StoredEvent::estimated_bytes(&values);
        if let Some(reason) = self.over_limits(new_windows, bytes) {
            return Placement::Refused(reason);
        }
        let id = match existing {
            Some(id) => id,
            None => self.state_id(key),
        };
        self.insert_event(id, StoredEvent { ts, values }, bytes);
        let st = self.state(id);
        let added = match &mut st.windows {
            KeyWindows::Panes {
                live,
                pending,
                step,
                ..
            } => {
                pending.insert(first, last, *step);
                live.insert(first, last, *step)
            }
            KeyWindows::Sessions { .. } => 0,
        };
        self.open_windows = self.open_windows.saturating_add(added);
        self.resync(id);
        Placement::Added(usize::try_from(joined).unwrap_or(usize::MAX))
    }

    fn process_session(
        &mut self,
        ts: i64,
        key: Key,
        values: Box<[Value]>,
        watermark: i64,
    ) -> Placement {
        let mut scratch = Vec::with_capacity(1);
        if let Err(e) = self.kind.assign(ts, &mut scratch) {
            return Placement::Refused(e.to_string());
        }
        let proto = scratch[0];
        let mut merged = proto;
        let mut parts: Vec<(i64, i64)> = Vec::new();
        if let Some(&id) = self.ids.get(&key)
            && let Some(KeyWindows::Sessions { windows, .. }) =
                self.states[id as usize].as_ref().map(|st| &st.windows)
        {
            // Sessions of one key are disjoint, so ordering by start orders ends too.
            for (&(s, e), _) in windows.range(..(proto.end, i64::MIN)).rev() {
                if e <= proto.start {
                    break;
                }
                merged.start = merged.start.min(s);
                merged.end = merged.end.max(e);
                parts.push((s, e));
            }
        }
        if self.is_late(merged, watermark) {
            return Placement::Late(values);
        }
        // A session that merges replaces the sessions it touches: only a lone one is new.
        let bytes = StoredEvent::estimated_bytes(&values);
        if let Some(reason) = self.over_limits(u64::from(parts.is_empty()), bytes) {
            return Placement::Refused(reason);
        }
        let id = self.state_id(key);
        self.insert_event(id, StoredEvent { ts, values }, bytes);
        let st = self.state(id);
        let mut firings = 0;
        if let KeyWindows::Sessions { windows, pending } = &mut st.windows {
            for part in &parts {
                firings = firings.max(windows.remove(part).unwrap_or(0));
                pending.remove(part);
            }
            windows.insert((merged.start, merged.end), firings);
            pending.insert((merged.start, merged.end));
        }
        self.open_windows = (self.open_windows + 1).saturating_sub(parts.len() as u64);
        self.resync(id);
        Placement::Added(1)
    }

    fn state_id(&mut self, key: Key) -> u32 {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let st = KeyState {
            key: key.clone(),
            events: VecDeque::new(),
            windows: KeyWindows::new(self.kind),
            stacks: PaneStacks::default(),
            queued: None,
            cleanup_at: None,
            partition: self.partition,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.states[id as usize] = Some(st);
                id
            }
            None => {
                self.states.push(Some(st));
                (self.states.len() - 1) as u32
            }
        };
        self.ids.insert(key, id);
        id
    }

    fn state(&mut self, id: u32) -> &mut KeyState {
        match self.states.get_mut(id as usize).and_then(Option::as_mut) {
            Some(st) => st,
            None => unreachable!("window timers only name live key states"),
        }
    }

    fn insert_event(&mut self, id: u32, ev: StoredEvent, bytes: u64) {
        let partition = self.partition;
        let st = self.state(id);
        st.partition = partition;
        if st.stacks.covers(ev.ts) {
            // The event changes a pane state already accumulated: rebuild at next firing.
            st.stacks.clear();
        }
        let events = &mut st.events;
        if events.back().is_none_or(|last| last.ts <= ev.ts) {
            events.push_back(ev);
        } else {
            let at = events.partition_point(|e| e.ts <= ev.ts);
            events.insert(at, ev);
        }
        self.buffered += 1;
        self.buffered_bytes = self.buffered_bytes.saturating_add(bytes);
    }

    /// Brings a key's entries in `queue` and `cleanup` in line with its windows.
    fn resync(&mut self, id: u32) {
        let kind = self.kind;
        let lateness = self.lateness;
        let Some(st) = self.states.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let queued = st.windows.first_pending(kind).map(|w| (w.end, w.start));
        if queued != st.queued {
            if let Some((end, start)) = st.queued {
                self.queue.remove(&(end, start, id));
            }
            if let Some((end, start)) = queued {
                self.queue.insert((end, start, id));
            }
            st.queued = queued;
        }
        let cleanup_at = st
            .windows
            .first_live(kind)
            .map(|w| w.end.saturating_add(lateness));
        if cleanup_at != st.cleanup_at {
            if let Some(at) = st.cleanup_at {
                self.cleanup.remove(&(at, id));
            }
            if let Some(at) = cleanup_at {
                self.cleanup.insert((at, id));
            }
            st.cleanup_at = cleanup_at;
        }
    }

    /// The end of the earliest window pending (due or not: held back windows included),
    /// `i64::MAX` when none is.
    pub fn first_pending_end(&self) -> i64 {
        self.queue.first().map_or(i64::MAX, |&(end, _, _)| end)
    }

    /// The lowest watermark at which [`take_due`](Self::take_due) or
    /// [`purge_due`](Self::purge_due) would do anything (`i64::MAX` when the state is
    /// empty): a watermark below it can be skipped.
    pub fn next_due(&self) -> i64 {
        let fire = self.queue.first().map_or(i64::MAX, |&(end, _, _)| end);
        let purge = self.cleanup.first().map_or(i64::MAX, |&(at, _)| at);
        fire.min(purge)
    }

    /// Takes the windows due to fire, in `(end, start, key)` order: every window with
    /// unemitted events whose `end <= watermark`, or every one when `watermark` is `None`
    /// (early firings, end of input). Each must then be either [`fired`](Self::fired) or
    /// [`declined`](Self::declined) (it stays pending and is taken again later).
    pub fn take_due(&mut self, watermark: Option<i64>) -> Vec<Due> {
        let mut due = Vec::new();
        while let Some(&first) = self.queue.first() {
            if watermark.is_some_and(|w| first.0 > w) {
                break;
            }
            self.queue.pop_first();
            let id = first.2;
            let st = self.state(id);
            st.queued = None;
            st.windows.take_first_pending();
            due.push(first);
            self.resync(id);
        }
        let states = &self.states;
        let key_of = |id: u32| states[id as usize].as_ref().map(|s| &s.key);
        due.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| key_of(a.2).cmp(&key_of(b.2)))
        });
        due
    }

    /// The firing of a due window: its key, revision and events, with the key's pane
    /// stacks. `None` if the window is gone.
    pub fn firing(&mut self, (end, start, id): Due) -> Option<(Firing<'_>, &mut PaneStacks)> {
        let st = self.states.get_mut(id as usize).and_then(Option::as_mut)?;
        let revision = st.windows.revision(Window { start, end })?;
        // Windows fire oldest first: the start is near the front of the buffer (trimmed
        // below the earliest live window) and the end near its back.
        let lo = from_front(&st.events, start);
        let hi = from_back(&st.events, end);
        Some((
            Firing {
                key: &st.key,
                window: Window { start, end },
                revision,
                events: st.events.range(lo..hi),
            },
            &mut st.stacks,
        ))
    }

    /// Records that a due window fired (its rows or its error record were written).
    pub fn fired(&mut self, (end, start, id): Due) {
        if let Some(st) = self.states.get_mut(id as usize).and_then(Option::as_mut) {
            st.windows.fired(Window { start, end });
        }
    }

    /// Puts a due window back: it fires at a later step.
    pub fn declined(&mut self, (end, start, id): Due) {
        if let Some(st) = self.states.get_mut(id as usize).and_then(Option::as_mut)
            && st.windows.repend(Window { start, end })
        {
            self.resync(id);
        }
    }

    /// A key's pane stacks, by the key id of a [`Due`].
    pub fn stacks_mut(&mut self, id: u32) -> Option<&mut PaneStacks> {
        self.states
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .map(|st| &mut st.stacks)
    }

    /// Forgets every key's pane states (a plugin with another state type took over).
    pub fn clear_stacks(&mut self) {
        for st in self.states.iter_mut().flatten() {
            st.stacks.clear();
        }
    }

    /// Purges windows whose `end + allowed_lateness <= watermark`, except those still
    /// pending (declined), which are kept until they fire. Touches only the keys whose
    /// earliest live window is due for purging.
    pub fn purge_due(&mut self, watermark: i64) {
        // Windows with end + lateness <= watermark end at or before `last` (saturating
        // as `is_late` does: at i64::MAX every window is due).
        let last = if watermark == i64::MAX {
            i64::MAX
        } else {
            match watermark.checked_sub(self.lateness) {
                Some(last) => last,
                None => return,
            }
        };
        let ids: Vec<u32> = self
            .cleanup
            .range(..=(watermark, u32::MAX))
            .map(|&(_, id)| id)
            .collect();
        for id in ids {
            self.purge(id, last);
        }
    }

    /// End of bounded input, once every window fired: drops all state. Returns false,
    /// keeping the state, while any window is still pending.
    pub fn finish(&mut self) -> bool {
        if !self.queue.is_empty() {
            return false;
        }
        self.ids.clear();
        self.states.clear();
        self.free.clear();
        self.cleanup.clear();
        self.open_windows = 0;
        self.buffered = 0;
        self.buffered_bytes = 0;
        true
    }

    /// Moves the watermark to `watermark`: fires every window with unemitted events whose
    /// `end <= watermark` in `(end, start, key)` order, then purges windows whose
    /// `end + allowed_lateness <= watermark`. A window `fire` declines (returns false)
    /// stays pending, is not purged, and fires at a later call. The pull API
    /// ([`take_due`](Self::take_due)) does the same in steps.
    pub fn advance(&mut self, watermark: i64, fire: &mut dyn FnMut(Firing<'_>) -> bool) {
        let due = self.take_due(Some(watermark));
        self.fire_all(due, fire);
        self.purge_due(watermark);
    }

    /// Fires every window with unemitted events, whatever the watermark (update mode's
    /// early firings). Windows stay open.
    pub fn fire_early(&mut self, fire: &mut dyn FnMut(Firing<'_>) -> bool) {
        let due = self.take_due(None);
        self.fire_all(due, fire);
    }

    /// End of bounded input: fires every window with unemitted events, then drops all state.
    /// Returns false, keeping the state, if `fire` declined any window.
    pub fn flush(&mut self, fire: &mut dyn FnMut(Firing<'_>) -> bool) -> bool {
        self.fire_early(fire);
        self.finish()
    }

    fn fire_all(&mut self, due: Vec<Due>, fire: &mut dyn FnMut(Firing<'_>) -> bool) {
        for d in due {
            let Some((firing, _)) = self.firing(d) else {
                continue;
            };
            if fire(firing) {
                self.fired(d);
            } else {
                self.declined(d);
            }
        }
    }

    /// Drops a key's windows ending at or before `last` that are not pending, the events
    /// before its earliest remaining window, and the key itself once it has no window.
    fn purge(&mut self, id: u32, last: i64) {
        let kind = self.kind;
        let st = self.state(id);
        let gone = st.windows.purge_through(last);
        let cut = match st.windows.first_live(kind) {
            Some(w) => from_front(&st.events, w.start),
            None => st.events.len(),
        };
        let bytes = st
            .events
            .drain(..cut)
            .map(|e| StoredEvent::estimated_bytes(&e.values))
            .fold(0u64, u64::saturating_add);
        let empty = st.windows.is_empty();
        self.open_windows = self.open_windows.saturating_sub(gone);
        self.buffered -= cut;
        self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
        // With no window left, this drops the key's queue and cleanup entries too.
        self.resync(id);
        if empty && let Some(st) = self.states[id as usize].take() {
            self.ids.remove(&st.key);
            self.free.push(id);
        }
    }
}

/// Checkpoints: the state of every key, written and read back.
impl WindowOperator {
    /// Every key's window state, encoded (postcard): what a checkpoint keeps of this
    /// operator. Pane states are left out: they are rebuilt from the events.
    pub fn snapshot(&self) -> Result<Vec<u8>, postcard::Error> {
        let keys: Vec<&KeyState> = self.states.iter().flatten().collect();
        postcard::to_allocvec(&keys)
    }

    /// Decodes what [`snapshot`](Self::snapshot) wrote, key by key, for
    /// [`restore`](Self::restore) (on this operator or on another worker's).
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Vec<KeySnapshot>, postcard::Error> {
        let keys: Vec<KeyState> = postcard::from_bytes(bytes)?;
        Ok(keys.into_iter().map(KeySnapshot).collect())
    }

    /// Takes back one key's checkpointed state. The key must not be held already (a
    /// checkpoint holds each key once); its timers and the counters follow its windows.
    pub fn restore(&mut self, key: KeySnapshot) {
        let KeySnapshot(mut st) = key;
        let windows = match &st.windows {
            KeyWindows::Panes { step, live, .. } => live.count(i64::MIN, i64::MAX, *step),
            KeyWindows::Sessions { windows, .. } => windows.len() as u64,
        };
        let bytes = st.events.iter().fold(0u64, |acc, e| {
            acc.saturating_add(StoredEvent::estimated_bytes(&e.values))
        });
        self.open_windows = self.open_windows.saturating_add(windows);
        self.buffered += st.events.len();
        self.buffered_bytes = self.buffered_bytes.saturating_add(bytes);
        // The timers are set afresh from the windows.
        st.queued = None;
        st.cleanup_at = None;
        st.stacks = PaneStacks::default();
        let id = self.state_id(st.key.clone());
        *self.state(id) = st;
        self.resync(id);
    }
}

/// Consumer-group rebalances: a key's state remembers the input partition its events come
/// from, so that the state of a revoked partition's keys can be dropped.
impl WindowOperator {
    /// Sets the input partition of the events placed from now on. Each key's state records
    /// the partition of its latest event: topics are partitioned by key, so a key lives in
    /// one partition.
    pub fn set_partition(&mut self, partition: u32) {
        self.partition = partition;
    }

    /// Drops, without firing anything, the state of every key whose latest event came from
    /// one of `partitions` (revoked by a rebalance: their new owner rebuilds these windows
    /// from the committed offsets). Returns how many keys were dropped.
    pub fn drop_partitions(&mut self, partitions: &[u32]) -> usize {
        let ids: Vec<u32> = (0..self.states.len() as u32)
            .filter(|&id| {
                self.states[id as usize]
                    .as_ref()
                    .is_some_and(|st| partitions.contains(&st.partition))
            })
            .collect();
        for &id in &ids {
            let Some(mut st) = self.states[id as usize].take() else {
                continue;
            };
            if let Some((end, start)) = st.queued {
                self.queue.remove(&(end, start, id));
            }
            if let Some(at) = st.cleanup_at {
                self.cleanup.remove(&(at, id));
            }
            let windows = match &mut st.windows {
                KeyWindows::Panes { step, live, .. } => live.remove_through(i64::MAX, *step),
                KeyWindows::Sessions { windows, .. } => windows.len() as u64,
            };
            let bytes = st
                .events
                .iter()
                .map(|e| StoredEvent::estimated_bytes(&e.values))
                .fold(0u64, u64::saturating_add);
            self.open_windows = self.open_windows.saturating_sub(windows);
            self.buffered = self.buffered.saturating_sub(st.events.len());
            self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
            self.ids.remove(&st.key);
            self.free.push(id);
        }
        ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_W: i64 = i64::MIN;

    fn key(s: &str) -> Key {
        Key(vec![Value::Str(s.into())])
    }

    /// A fired window as plain data: (key, start, end, revision, event times).
    type Fired = (String, i64, i64, u32, Vec<i64>);

    fn collect(out: &mut Vec<Fired>) -> impl FnMut(Firing<'_>) -> bool + '_ {
        move |f: Firing<'_>| {
            let k = match &f.key.0[0] {
                Value::Str(s) => s.clone(),
                _ => String::new(),
            };
            out.push((
                k,
                f.window.start,
                f.window.end,
                f.revision,
                f.events.map(|e| e.ts).collect(),
            ));
            true
        }
    }

    /// Drives events in order like the pipeline does: W before the event decides lateness,
    /// then W = max(ts) - delay and ready windows fire.
    struct Driver {
        op: WindowOperator,
        max_ts: i64,
        delay: i64,
        fired: Vec<Fired>,
        late: Vec<i64>,
    }

    impl Driver {
        fn new(kind: WindowKind, lateness: i64, delay: i64) -> Self {
            Driver {
                op: WindowOperator::new(kind, lateness),
                max_ts: NO_W,
                delay,
                fired: Vec::new(),
                late: Vec::new(),
            }
        }
        fn w(&self) -> i64 {
            if self.max_ts == NO_W {
                NO_W
            } else {
                self.max_ts - self.delay
            }
        }
        fn event(&mut self, k: &str, ts: i64) {
            let before = self.w();
            if let Placement::Late(_) = self.op.process(ts, key(k), Box::new([]), before) {
                self.late.push(ts);
            }
            self.max_ts = self.max_ts.max(ts);
            let w = self.w();
            self.op.advance(w, &mut collect(&mut self.fired));
        }
        fn flush(&mut self) {
            self.op.flush(&mut collect(&mut self.fired));
        }
    }

    fn f(k: &str, s: i64, e: i64, rev: u32, ts: &[i64]) -> Fired {
        (k.to_string(), s, e, rev, ts.to_vec())
    }

    #[test]
    fn tumbling_out_of_order_with_delay_and_boundary() {
        // size 10, delay 5. Events (ts): 1, 12, 9, 10, 16, 3, 25.
        // After 12: W=7. 9 arrives (W=7, [0,10) end 10 > 7: accepted).
        // 16 → W=11 ≥ 10: [0,10) fires with 1, 9. 3 arrives with W=11: late.
        // 25 → W=20: [10,20) fires with 10 (boundary event), 12, 16. Flush: [20,30) with 25.
        let mut d = Driver::new(WindowKind::Tumbling { size: 10 }, 0, 5);
        for ts in [1, 12, 9, 10, 16, 3, 25] {
            d.event("a", ts);
        }
        assert_eq!(
            d.fired,
            vec![f("a", 0, 10, 0, &[1, 9]), f("a", 10, 20, 0, &[10, 12, 16])]
        );
        assert_eq!(d.late, vec![3]);
        d.flush();
        assert_eq!(d.fired.last(), Some(&f("a", 20, 30, 0, &[25])));
        assert_eq!(d.op.open_windows(), 0);
    }

    #[test]
    fn fires_in_end_start_key_order() {
        // Sliding size 4 slide 2, delay 0. b@1, a@1 open [-2,2) and [0,4) for both keys.
        // a@5 → W=5: ready [-2,2) a, [-2,2) b, [0,4) a, [0,4) b in that order.
        let mut d = Driver::new(WindowKind::Sliding { size: 4, slide: 2 }, 0, 0);
        d.event("b", 1);
        d.event("a", 1);
        d.event("a", 5);
        assert_eq!(
            d.fired,
            vec![
                f("a", -2, 2, 0, &[1]),
                f("b", -2, 2, 0, &[1]),
                f("a", 0, 4, 0, &[1]),
                f("b", 0, 4, 0, &[1]),
            ]
        );
    }

    #[test]
    fn sliding_event_late_for_some_windows_only() {
        // size 3000 slide 1000, delay 0. e@2500, then e@3200 → W=3200: [0,3000) fires [2500].
        // e@2800 with W=3200: late for [0,3000), accepted in [1000,4000) and [2000,5000).
        let mut d = Driver::new(
            WindowKind::Sliding {
                size: 3000,
                slide: 1000,
            },
            0,
            0,
        );
        d.event("s", 2500);
        d.event("s", 3200);
        assert_eq!(d.fired, vec![f("s", 0, 3000, 0, &[2500])]);
        d.event("s", 2800);
        assert!(
            d.late.is_empty(),
            "late for one window only is not a late event"
        );
        d.flush();
        assert_eq!(
            d.fired[1..],
            [
                f("s", 1000, 4000, 0, &[2500, 2800, 3200]),
                f("s", 2000, 5000, 0, &[2500, 2800, 3200]),
                f("s", 3000, 6000, 0, &[3200]),
            ]
        );
    }

    #[test]
    fn negative_timestamps() {
        // size 1000: -1500 in [-2000,-1000), -1 in [-1000,0), 0 in [0,1000).
        let mut d = Driver::new(WindowKind::Tumbling { size: 1000 }, 0, 0);
        for ts in [-1500, -1, 0] {
            d.event("n", ts);
        }
        d.flush();
        assert_eq!(
            d.fired,
            vec![
                f("n", -2000, -1000, 0, &[-1500]),
                f("n", -1000, 0, 0, &[-1]),
                f("n", 0, 1000, 0, &[0])
            ]
        );
    }

    #[test]
    fn allowed_lateness_refires_with_revision_then_purges() {
        // size 10, delay 0, lateness 5. 2, 11 → W=11: [0,10) fires rev 0 [2].
        // 7 with W=11 < 10+5: accepted, re-fires rev 1 [2,7].
        // 16 → W=16 ≥ 15: [0,10) purged; 4 is then late for all.
        let mut d = Driver::new(WindowKind::Tumbling { size: 10 }, 5, 0);
        d.event("k", 2);
        d.event("k", 11);
        d.event("k", 7);
        assert_eq!(
            d.fired,
            vec![f("k", 0, 10, 0, &[2]), f("k", 0, 10, 1, &[2, 7])]
        );
        d.event("k", 16);
        d.event("k", 4);
        assert_eq!(d.late, vec![4]);
        d.flush();
        assert_eq!(d.fired[2..], [f("k", 10, 20, 0, &[11, 16])]);
    }

    #[test]
    fn late_event_opening_a_window_within_lateness_fires_at_once() {
        // size 10, lateness 20. a@35 → W=35. a@12: [10,20) end 20, 20+20 > 35 → accepted,
        // new window, fires immediately with revision 0.
        let mut d = Driver::new(WindowKind::Tumbling { size: 10 }, 20, 0);
        d.event("a", 35);
        d.event("a", 12);
        assert_eq!(d.fired, vec![f("a", 10, 20, 0, &[12])]);
    }

    #[test]
    fn sessions_merge_and_split_on_gap() {
        // gap 10, delay 0. 0 → [0,10); 5 → [0,15); 15 starts a new session (15-5 = gap) [15,25).
        // 15 advances W to 15 ≥ 15: [0,15) fires with [0,5].
        // 30 → W=30: [15,25) fires [15]. 20 at W=30: its proto [20,30) ends at 30 ≤ 30: late.
        let mut d = Driver::new(WindowKind::Session { gap: 10 }, 0, 0);
        for ts in [0, 5, 15] {
            d.event("u", ts);
        }
        assert_eq!(d.fired, vec![f("u", 0, 15, 0, &[0, 5])]);
        d.event("u", 30);
        d.event("u", 20);
        assert_eq!(d.late, vec![20]);
        d.flush();
        assert_eq!(
            d.fired[1..],
            [f("u", 15, 25, 0, &[15]), f("u", 30, 40, 0, &[30])]
        );
    }

    #[test]
    fn out_of_order_event_bridges_two_sessions() {
        // gap 10, delay 100 (nothing fires early). 0 → [0,10); 18 → [18,28);
        // 9 → [9,19) overlaps both: one session [0,28) with 0, 9, 18.
        let mut d = Driver::new(WindowKind::Session { gap: 10 }, 0, 100);
        for ts in [0, 18, 9] {
            d.event("u", ts);
        }
        assert_eq!(d.op.open_windows(), 1);
        d.flush();
        assert_eq!(d.fired, vec![f("u", 0, 28, 0, &[0, 9, 18])]);
    }

    #[test]
    fn cumulative_fires_each_step_with_running_contents() {
        // size 100, step 25, delay 0. 10 → windows ending 25, 50, 75, 100. 30 → W=30: [0,25) [10].
        // 60 → W=60: [0,50) [10,30]. 99 → W=99: [0,75) [10,30,60]. flush: [0,100) all four.
        let mut d = Driver::new(
            WindowKind::Cumulative {
                size: 100,
                step: 25,
            },
            0,
            0,
        );
        for ts in [10, 30, 60, 99] {
            d.event("c", ts);
        }
        d.flush();
        assert_eq!(
            d.fired,
            vec![
                f("c", 0, 25, 0, &[10]),
                f("c", 0, 50, 0, &[10, 30]),
                f("c", 0, 75, 0, &[10, 30, 60]),
                f("c", 0, 100, 0, &[10, 30, 60, 99]),
            ]
        );
    }

    #[test]
    fn early_firings_raise_revision_and_final_firing_only_if_changed() {
        // Update mode: size 10, delay 0. a@1, early fire → rev 0 [1]. a@2, early → rev 1 [1,2].
        // a@12 → W=12: [0,10) has nothing new since rev 1, so it does not fire again.
        let mut d = Driver::new(WindowKind::Tumbling { size: 10 }, 0, 0);
        d.event("a", 1);
        d.op.fire_early(&mut collect(&mut d.fired));
        d.event("a", 2);
        d.op.fire_early(&mut collect(&mut d.fired));
        d.event("a", 12);
        assert_eq!(
            d.fired,
            vec![f("a", 0, 10, 0, &[1]), f("a", 0, 10, 1, &[1, 2])]
        );
        assert_eq!(d.op.open_windows(), 1, "[0,10) purged, [10,20) open");
        assert_eq!(d.op.buffered_events(), 1);
    }

    #[test]
    fn a_declined_window_stays_pending_and_fires_later() {
        // Tumbling 10, delay 0. a@1, then a@25 moves W to 25: [0,10) is ready but declined
        // (its purge time 10 has passed, yet it must survive). At the next advance it fires
        // with revision 0 and all its events, then is purged.
        let mut op = WindowOperator::new(WindowKind::Tumbling { size: 10 }, 0);
        op.process(1, key("a"), Box::new([]), NO_W);
        op.process(25, key("a"), Box::new([]), 1);
        op.advance(25, &mut |_| false);
        assert_eq!(op.open_windows(), 2, "[0,10) kept, [20,30) open");
        assert!(
            !op.flush(&mut |f| f.window.start != 0),
            "flush declined [0,10): state kept"
        );
        let mut fired = Vec::new();
        op.advance(25, &mut collect(&mut fired));
        assert_eq!(fired, vec![f("a", 0, 10, 0, &[1])]);
        assert_eq!(op.open_windows(), 1);
    }

    #[test]
    fn state_is_released_after_purge() {
        let mut d = Driver::new(WindowKind::Sliding { size: 3, slide: 1 }, 0, 0);
        for ts in 0..100 {
            d.event(if ts % 2 == 0 { "x" } else { "y" }, ts);
        }
        // Open: windows ending after W=99 → for key y@99: [97,100),[98,101),[99,102);
        // key x@98: [98,101), [99..) no: x's last event 98 → [96,99) fired, [97,100), [98,101).
        assert_eq!(d.op.open_windows(), 5);
        assert!(d.op.buffered_events() <= 4, "{}", d.op.buffered_events());
    }

    fn limits(open: u64, events: u64, bytes: u64) -> StateLimits {
        StateLimits {
            max_windows_per_event: 10_000,
            max_open_windows: open,
            max_buffered_events: events,
            max_buffered_bytes: bytes,
        }
    }

    fn refused(p: Placement) -> String {
        match p {
            Placement::Refused(r) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn open_windows_are_capped_per_window_created_and_events_refused_whole() {
        // Sliding 3000/1000: a@2500 creates [0,3000) [1000,4000) [2000,5000) (3 windows).
        // With max_open_windows 4, b@2500 would create 3 more (6 > 4): refused, nothing
        // stored for b. a@2600 only joins a's 3 windows: accepted.
        let mut op = WindowOperator::new(
            WindowKind::Sliding {
                size: 3000,
                slide: 1000,
            },
            0,
        );
        op.set_limits(limits(4, 100, u64::MAX));
        assert_eq!(
            op.process(2500, key("a"), Box::new([]), NO_W),
            Placement::Added(3)
        );
        let r = refused(op.process(2500, key("b"), Box::new([]), NO_W));
        assert!(
            r.contains("3 new windows") && r.contains("max_open_windows 4"),
            "{r}"
        );
        assert_eq!((op.open_windows(), op.buffered_events()), (3, 1));
        assert_eq!(
            op.process(2600, key("a"), Box::new([]), NO_W),
            Placement::Added(3)
        );
        // a@3500 creates one new window [3000,6000): 4 open, at the cap but not over.
        assert_eq!(
            op.process(3500, key("a"), Box::new([]), NO_W),
            Placement::Added(3)
        );
        assert_eq!(op.open_windows(), 4);
        let mut fired = Vec::new();
        op.flush(&mut collect(&mut fired));
        assert!(fired.iter().all(|f| f.0 == "a"), "b was never half-placed");
    }

    #[test]
    fn windows_per_event_over_the_budget_are_refused_before_assignment() {
        let mut op = WindowOperator::new(
            WindowKind::Sliding {
                size: 100,
                slide: 1,
            },
            0,
        );
        op.set_limits(StateLimits {
            max_windows_per_event: 99,
            ..StateLimits::UNLIMITED
        });
        let r = refused(op.process(5, key("a"), Box::new([]), NO_W));
        assert!(
            r.contains("100 windows") && r.contains("max_windows_per_event 99"),
            "{r}"
        );
        assert_eq!(op.open_windows(), 0);
    }

    #[test]
    fn sessions_count_only_sessions_they_create() {
        // max_open_windows 1: a@0 opens a session, a@5 merges into it, b@0 would be a second.
        let mut op = WindowOperator::new(WindowKind::Session { gap: 10 }, 0);
        op.set_limits(limits(1, 100, u64::MAX));
        assert_eq!(
            op.process(0, key("a"), Box::new([]), NO_W),
            Placement::Added(1)
        );
        assert_eq!(
            op.process(5, key("a"), Box::new([]), NO_W),
            Placement::Added(1)
        );
        refused(op.process(0, key("b"), Box::new([]), NO_W));
        assert_eq!((op.open_windows(), op.buffered_events()), (1, 2));
    }

    #[test]
    fn buffered_events_and_bytes_are_capped_and_released_on_purge() {
        // One string value of 4 bytes: 64 + 24 (a value slot) + 4 = 92 bytes per event.
        let v = || -> Box<[Value]> { Box::new([Value::Str("abcd".into())]) };
        assert_eq!(StoredEvent::estimated_bytes(&v()), 92);
        assert_eq!(
            StoredEvent::estimated_bytes(&[Value::F64(1.0), Value::Null]),
            112
        );
        let mut op = WindowOperator::new(WindowKind::Tumbling { size: 10 }, 0);
        op.set_limits(limits(100, 100, 250));
        assert_eq!(op.process(1, key("a"), v(), NO_W), Placement::Added(1));
        assert_eq!(op.process(2, key("a"), v(), NO_W), Placement::Added(1));
        assert_eq!(op.buffered_bytes(), 184);
        let r = refused(op.process(3, key("a"), v(), NO_W));
        assert!(r.contains("max_buffered_bytes 250"), "{r}");
        // W = 10 fires and purges [0,10): its bytes are released.
        op.advance(10, &mut |_| true);
        assert_eq!((op.buffered_events(), op.buffered_bytes()), (0, 0));
        assert_eq!(op.process(11, key("a"), v(), 10), Placement::Added(1));
        // The event count cap: 1 buffered, max 1.
        op.set_limits(limits(100, 1, u64::MAX));
        let r = refused(op.process(12, key("a"), v(), 10));
        assert!(r.contains("max_buffered_events 1"), "{r}");
        assert!(op.flush(&mut |_| true));
        assert_eq!(op.buffered_bytes(), 0);
    }

    #[test]
    fn overflowing_bounds_are_refused_by_the_operator() {
        let mut op = WindowOperator::new(WindowKind::Tumbling { size: 1000 }, 0);
        let r = refused(op.process(i64::MAX, key("a"), Box::new([]), NO_W));
        assert!(r.contains("overflow"), "{r}");
        assert_eq!(op.open_windows(), 0);
    }

    #[test]
    fn galloping_searches_agree_with_a_plain_scan() {
        // Times 0, 0, 1, 1, 2, 2, …, 9, 9 in a deque of 20: before t there are 2·t events
        // for t in 0..=10, 0 before any t < 0 and 20 after 9.
        let events: VecDeque<StoredEvent> = (0..20)
            .map(|i| StoredEvent {
                ts: i / 2,
                values: Box::new([]),
            })
            .collect();
        for t in -3..=13 {
            let expected = (2 * t).clamp(0, 20) as usize;
            assert_eq!(from_front(&events, t), expected, "front, t = {t}");
            assert_eq!(from_back(&events, t), expected, "back, t = {t}");
        }
        let empty = VecDeque::new();
        assert_eq!((from_front(&empty, 5), from_back(&empty, 5)), (0, 0));
        let one: VecDeque<StoredEvent> = events.range(..1).cloned().collect();
        assert_eq!((from_front(&one, 0), from_back(&one, 0)), (0, 0));
        assert_eq!((from_front(&one, 1), from_back(&one, 1)), (1, 1));
    }

    #[test]
    fn an_hour_sliding_by_a_second_joins_3600_windows_per_event() {
        // Sliding 1 h / 1 s. a@0 joins the windows ending 1 000, 2 000, …, 3 600 000: 3 600.
        // a@500 joins the same ones; a@1000 ends at 2 000 … 3 601 000: one new window.
        // b@0 opens 3 600 of its own: 3 600 + 1 + 3 600 = 7 201 open.
        let (s, h) = (1000, 3_600_000);
        let mut d = Driver::new(WindowKind::Sliding { size: h, slide: s }, 0, 0);
        let mut op = WindowOperator::new(WindowKind::Sliding { size: h, slide: s }, 0);
        assert_eq!(
            op.process(0, key("a"), Box::new([]), NO_W),
            Placement::Added(3600)
        );
        assert_eq!(op.open_windows(), 3600);
        assert_eq!(
            op.process(500, key("a"), Box::new([]), NO_W),
            Placement::Added(3600)
        );
        assert_eq!(op.open_windows(), 3600);
        assert_eq!(
            op.process(1000, key("a"), Box::new([]), NO_W),
            Placement::Added(3600)
        );
        assert_eq!(
            op.process(0, key("b"), Box::new([]), NO_W),
            Placement::Added(3600)
        );
        assert_eq!(op.open_windows(), 7201);
        // W = 1 000: the windows ending at 1 000 fire, a before b, and are purged.
        let mut fired = Vec::new();
        op.advance(1000, &mut collect(&mut fired));
        assert_eq!(
            fired,
            vec![
                f("a", 1000 - h, 1000, 0, &[0, 500]),
                f("b", 1000 - h, 1000, 0, &[0])
            ]
        );
        assert_eq!(op.open_windows(), 7199);
        // a@200 with W = 1 000: late for the window ending at 1 000 only.
        assert_eq!(
            op.process(200, key("a"), Box::new([]), 1000),
            Placement::Added(3599)
        );
        assert_eq!((op.open_windows(), op.buffered_events()), (7199, 5));
        fired.clear();
        assert!(op.flush(&mut collect(&mut fired)));
        // a: ends 2 000 … 3 601 000 (3 600); b: ends 2 000 … 3 600 000 (3 599).
        assert_eq!(fired.len(), 7199);
        assert_eq!(fired[0], f("a", 2000 - h, 2000, 0, &[0, 200, 500, 1000]));
        assert_eq!(fired[1], f("b", 2000 - h, 2000, 0, &[0]));
        let full = fired.iter().find(|x| x.0 == "a" && x.2 == h);
        assert_eq!(full, Some(&f("a", 0, h, 0, &[0, 200, 500, 1000])));
        assert_eq!(fired.last(), Some(&f("a", 1000, h + 1000, 0, &[1000])));
        assert!(
            fired
                .windows(2)
                .all(|p| (p[0].2, &p[0].0) < (p[1].2, &p[1].0))
        );
        assert_eq!(op.open_windows(), 0);
        // The driver sees the same first firing through `advance` after each event.
        d.event("a", 0);
        d.event("a", 1000);
        assert_eq!(d.fired, vec![f("a", 1000 - h, 1000, 0, &[0])]);
    }

    #[test]
    fn cumulative_day_by_minute_rolls_over_at_midnight() {
        // Cumulative 1 day / 1 min. a@DAY-1 (23:59:59.999 of day 0) is only in [0, DAY).
        // a@DAY (midnight) opens day 1's 1 440 windows [DAY, DAY + k min), k = 1..=1440.
        // a@DAY+90 s is in those from k = 2 on: 1 439 windows, none new.
        let (min, day) = (60_000, 86_400_000);
        let mut op = WindowOperator::new(
            WindowKind::Cumulative {
                size: day,
                step: min,
            },
            0,
        );
        assert_eq!(
            op.process(day - 1, key("a"), Box::new([]), NO_W),
            Placement::Added(1)
        );
        assert_eq!(
            op.process(day, key("a"), Box::new([]), NO_W),
            Placement::Added(1440)
        );
        assert_eq!(
            op.process(day + 90_000, key("a"), Box::new([]), NO_W),
            Placement::Added(1439)
        );
        assert_eq!(op.open_windows(), 1441);
        // W = 00:02 of day 1: day 0's window and day 1's first two fire, then are purged;
        // day 0's event goes with its window.
        let mut fired = Vec::new();
        op.advance(day + 2 * min, &mut collect(&mut fired));
        assert_eq!(
            fired,
            vec![
                f("a", 0, day, 0, &[day - 1]),
                f("a", day, day + min, 0, &[day]),
                f("a", day, day + 2 * min, 0, &[day, day + 90_000]),
            ]
        );
        assert_eq!((op.open_windows(), op.buffered_events()), (1438, 2));
        // A day-0 event now is late for its only window.
        assert!(matches!(
            op.process(day - 2, key("a"), Box::new([]), day + 2 * min),
            Placement::Late(_)
        ));
        // Day 2 starts: 1 440 new windows.
        assert_eq!(
            op.process(2 * day + 5, key("a"), Box::new([]), day + 2 * min),
            Placement::Added(1440)
        );
        assert_eq!(op.open_windows(), 2878);
        fired.clear();
        assert!(op.flush(&mut collect(&mut fired)));
        assert_eq!(fired.len(), 2878);
        assert_eq!(fired[1437], f("a", day, 2 * day, 0, &[day, day + 90_000]));
        assert_eq!(
            fired[1438],
            f("a", 2 * day, 2 * day + min, 0, &[2 * day + 5])
        );
    }

    #[test]
    fn sliding_revisions_within_lateness_then_purge() {
        // Sliding 20 / 10, delay 0, lateness 15.
        // a@5 → [-10,10), [0,20). a@12 → W=12: [-10,10) fires rev 0 [5].
        // a@3 (W=12, end 10 + 15 > 12): joins both; [-10,10) re-fires rev 1 [3,5].
        // a@26 → W=26: [0,20) fires rev 0 [3,5,12]; ends ≤ 26-15 = 11 purged: [-10,10).
        // a@8 (W=26): end 10 is gone (late), end 20 on time: [0,20) re-fires rev 1.
        // a@35 → W=35: [10,30) fires rev 0 [12,26]; end 20 ≤ 35-15 purged.
        // a@1 (W=35): ends 10 and 20 are both late: a late event.
        // flush: [20,40) [26,35] and [30,50) [35]; [10,30) has nothing new.
        let mut d = Driver::new(
            WindowKind::Sliding {
                size: 20,
                slide: 10,
            },
            15,
            0,
        );
        for ts in [5, 12, 3, 26] {
            d.event("a", ts);
        }
        assert_eq!(
            d.op.process(8, key("a"), Box::new([]), 26),
            Placement::Added(1)
        );
        d.op.advance(26, &mut collect(&mut d.fired));
        d.event("a", 35);
        assert_eq!(d.op.open_windows(), 3, "ends 30 (fired, kept), 40, 50");
        assert_eq!(d.op.buffered_events(), 3, "12, 26, 35");
        d.event("a", 1);
        assert_eq!(d.late, vec![1]);
        d.flush();
        assert_eq!(
            d.fired,
            vec![
                f("a", -10, 10, 0, &[5]),
                f("a", -10, 10, 1, &[3, 5]),
                f("a", 0, 20, 0, &[3, 5, 12]),
                f("a", 0, 20, 1, &[3, 5, 8, 12]),
                f("a", 10, 30, 0, &[12, 26]),
                f("a", 20, 40, 0, &[26, 35]),
                f("a", 30, 50, 0, &[35]),
            ]
        );
    }

    #[test]
    fn declined_sliding_windows_stay_pending_past_their_purge_time() {
        // Sliding 20 / 10, lateness 0. a@5 and b@5 open [-10,10) and [0,20) each.
        // At W=10 a's [-10,10) is declined, b's fires; b's is purged, a's kept (pending).
        let mut op = WindowOperator::new(
            WindowKind::Sliding {
                size: 20,
                slide: 10,
            },
            0,
        );
        op.process(5, key("a"), Box::new([]), NO_W);
        op.process(5, key("b"), Box::new([]), NO_W);
        let mut fired = Vec::new();
        op.advance(10, &mut |firing| {
            let accept = firing.key != &key("a");
            if accept {
                collect(&mut fired)(firing);
            }
            accept
        });
        assert_eq!(fired, vec![f("b", -10, 10, 0, &[5])]);
        assert_eq!(op.open_windows(), 3, "a: ends 10 and 20; b: end 20");
        // a@15 at W=10 joins ends 20 and 30.
        assert_eq!(
            op.process(15, key("a"), Box::new([]), 10),
            Placement::Added(2)
        );
        fired.clear();
        op.advance(20, &mut collect(&mut fired));
        assert_eq!(
            fired,
            vec![
                f("a", -10, 10, 0, &[5]),
                f("a", 0, 20, 0, &[5, 15]),
                f("b", 0, 20, 0, &[5]),
            ]
        );
        // Left: a's [10,30) with its event 15; b is gone.
        assert_eq!((op.open_windows(), op.buffered_events()), (1, 1));
        assert!(op.take_due(Some(20)).is_empty());
        assert_eq!(op.take_due(None).len(), 1);
    }
}

/// The operator against a plain model of the semantics (DESIGN.md "Time and windows"):
/// every window an explicit entry, every event copied into each window it is on time for.
#[cfg(test)]
mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    use super::*;

    const NO_W: i64 = i64::MIN;

    /// A fired window: (key, start, end, revision, event times).
    type Fired = (String, i64, i64, u32, Vec<i64>);

    /// One entry per live window: (key, start, end) → (firings, pending).
    #[derive(Default)]
    struct Model {
        windows: BTreeMap<(String, i64, i64), (u32, bool)>,
        /// Accepted events per key, in arrival order.
        events: BTreeMap<String, Vec<i64>>,
    }

    impl Model {
        fn process(&mut self, kind: WindowKind, lateness: i64, ts: i64, k: &str, w: i64) -> bool {
            let mut ws = Vec::new();
            kind.assign(ts, &mut ws).expect("small times");
            ws.retain(|x| x.end.saturating_add(lateness) > w);
            for x in &ws {
                let e = self
                    .windows
                    .entry((k.to_string(), x.start, x.end))
                    .or_default();
                e.1 = true;
            }
            if !ws.is_empty() {
                self.events.entry(k.to_string()).or_default().push(ts);
            }
            !ws.is_empty()
        }

        /// Fires the pending windows ending at or before `w` (all with `None`), in
        /// `(end, start, key)` order; `decline` keeps a window pending.
        fn fire(&mut self, w: Option<i64>, decline: &dyn Fn(&str) -> bool, out: &mut Vec<Fired>) {
            let mut due: Vec<(i64, i64, String)> = self
                .windows
                .iter()
                .filter(|((_, _, end), (_, pending))| *pending && w.is_none_or(|w| *end <= w))
                .map(|((k, s, e), _)| (*e, *s, k.clone()))
                .collect();
            due.sort();
            for (end, start, k) in due {
                if decline(&k) {
                    continue;
                }
                let entry = self.windows.get_mut(&(k.clone(), start, end)).expect("due");
                let mut ts: Vec<i64> = self.events[&k]
                    .iter()
                    .copied()
                    .filter(|&t| start <= t && t < end)
                    .collect();
                ts.sort();
                out.push((k, start, end, entry.0, ts));
                *entry = (entry.0 + 1, false);
            }
        }

        fn purge(&mut self, lateness: i64, w: i64) {
            self.windows
                .retain(|&(_, _, end), &mut (_, pending)| pending || end + lateness > w);
        }
    }

    fn name(f: &Firing<'_>) -> String {
        match &f.key.0[0] {
            Value::Str(s) => s.clone(),
            _ => String::new(),
        }
    }

    fn kinds() -> impl Strategy<Value = WindowKind> {
        prop_oneof![
            (1i64..=5).prop_map(|n| WindowKind::Tumbling { size: 10 * n }),
            (1i64..=4, 1i64..=5).prop_map(|(s, n)| WindowKind::Sliding {
                size: 10 * s * n,
                slide: 10 * s
            }),
            (1i64..=4, 1i64..=5).prop_map(|(s, n)| WindowKind::Cumulative {
                size: 10 * s * n,
                step: 10 * s
            }),
        ]
    }

    /// One step: an event (time, key), then the watermark moves; sometimes key k0's
    /// firings are declined, sometimes update mode fires early.
    fn steps() -> impl Strategy<Value = Vec<(i64, u8, bool, bool)>> {
        proptest::collection::vec(
            (
                -20i64..200,
                0u8..3,
                prop::bool::weighted(0.15),
                prop::bool::weighted(0.1),
            ),
            1..40,
        )
    }

    fn config() -> Config {
        Config {
            cases: 400,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x7e1e),
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn operator_matches_the_plain_model(
            kind in kinds(),
            lateness in prop_oneof![Just(0i64), 0i64..40],
            delay in 0i64..30,
            steps in steps(),
        ) {
            let mut op = WindowOperator::new(kind, lateness);
            let mut model = Model::default();
            let (mut got, mut want) = (Vec::new(), Vec::new());
            let mut max_ts = NO_W;
            for (ts, k, decline_k0, early) in steps {
                let k = format!("k{k}");
                let before = if max_ts == NO_W { NO_W } else { max_ts - delay };
                let key = Key(vec![Value::Str(k.clone())]);
                let placed = op.process(ts, key, Box::new([]), before);
                let accepted = model.process(kind, lateness, ts, &k, before);
                prop_assert_eq!(matches!(placed, Placement::Added(_)), accepted);
                max_ts = max_ts.max(ts);
                let w = max_ts - delay;
                let decline = |k: &str| decline_k0 && k == "k0";
                let mut fire = |f: Firing<'_>| {
                    if decline(&name(&f)) {
                        return false;
                    }
                    got.push((name(&f), f.window.start, f.window.end, f.revision,
                        f.events.map(|e| e.ts).collect()));
                    true
                };
                if early {
                    op.fire_early(&mut fire);
                    model.fire(None, &decline, &mut want);
                }
                op.advance(w, &mut fire);
                model.fire(Some(w), &decline, &mut want);
                model.purge(lateness, w);
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(op.open_windows(), model.windows.len());
            }
            let mut all = |f: Firing<'_>| {
                got.push((name(&f), f.window.start, f.window.end, f.revision,
                    f.events.map(|e| e.ts).collect()));
                true
            };
            prop_assert!(op.flush(&mut all));
            model.fire(None, &|_| false, &mut want);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(op.open_windows(), 0);
        }
    }
}

#[cfg(test)]
mod partition_tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key(vec![Value::Str(s.into())])
    }

    #[test]
    fn dropping_a_partition_drops_its_keys_state_and_fires_none_of_their_windows() {
        // Tumbling 10 ms. Key a from partition 0: events at 1, 12 (windows [0,10), [10,20)).
        // Key b from partition 1: events at 3, 15, 16. Key c from partition 2: event at 5.
        let mut op = WindowOperator::new(WindowKind::Tumbling { size: 10 }, 0);
        let place = |op: &mut WindowOperator, p: u32, k: &str, ts: i64| {
            op.set_partition(p);
            let placed = op.process(ts, key(k), Box::new([Value::I64(ts)]), i64::MIN);
            assert_eq!(placed, Placement::Added(1));
        };
        place(&mut op, 0, "a", 1);
        place(&mut op, 1, "b", 3);
        place(&mut op, 2, "c", 5);
        place(&mut op, 0, "a", 12);
        place(&mut op, 1, "b", 15);
        place(&mut op, 1, "b", 16);
        assert_eq!((op.open_windows(), op.buffered_events()), (5, 6));
        // Partitions 1 and 7 revoked (7 holds no key): b's 2 windows and 3 events go.
        assert_eq!(op.drop_partitions(&[1, 7]), 1);
        assert_eq!((op.open_windows(), op.buffered_events()), (3, 3));
        let bytes = 3 * StoredEvent::estimated_bytes(&[Value::I64(0)]);
        assert_eq!(op.buffered_bytes(), bytes);
        // Every window ends by W = 20: only a's and c's fire, in (end, start, key) order.
        let mut fired = Vec::new();
        op.advance(20, &mut |f: Firing<'_>| {
            fired.push((f.key.clone(), f.window.start, f.events.len()));
            true
        });
        assert_eq!(
            fired,
            [(key("a"), 0, 1), (key("c"), 0, 1), (key("a"), 10, 1)]
        );
        assert_eq!((op.open_windows(), op.buffered_events()), (0, 0));
        // b comes back (its partition reassigned, replayed): a fresh state, revision 0.
        place(&mut op, 1, "b", 3);
        let mut again = Vec::new();
        op.flush(&mut |f: Firing<'_>| {
            again.push((f.key.clone(), f.window.start, f.revision));
            true
        });
        assert_eq!(again, [(key("b"), 0, 0)]);
    }
}
