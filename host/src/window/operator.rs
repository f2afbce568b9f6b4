//! [`WindowOperator`]: the host-owned window state of one pipeline (all keys), placing
//! events and firing windows for the whole-window aggregate style.
//!
//! Each key keeps one time-ordered buffer of its events and the set of its live windows.
//! An event is stored once however many windows contain it; a window's events are the
//! buffer's range `[start, end)` at fire time. That is exact because an event is kept out of
//! a window only when that window is already purged (see `process`), and the buffer is
//! trimmed only below the earliest live window of the key.
//!
//! For the pane-aligned kinds (tumbling, sliding, cumulative) a window is named by its end,
//! and a key's live and pending windows are runs of ends
//! ([`EndSet`](super::ends::EndSet)): an event costs O(log) in the number of windows it
//! joins, not one step per window. Only windows that fired and are kept for allowed
//! lateness have an entry each (their firing count, for revisions). Sessions keep one
//! entry per session. Across keys, one queue entry per key (its next pending window) gives
//! the firing order `(end, start, key)`, and one entry per key (its earliest live window)
//! schedules purging, so a watermark step touches only the keys with something due.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::buffer::{bytes_of, from_back, from_front};
use super::key_windows::KeyWindows;
use super::panes::PaneStacks;
use super::{StateLimits, StoredEvent, Window, WindowKind};
use crate::value::{Key, Value};

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

/// One key's state: its events, its windows, and its entries in the operator's timers.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct KeyState {
    pub(super) key: Key,
    pub(super) events: VecDeque<StoredEvent>,
    pub(super) windows: KeyWindows,
    /// Pane states of an incremental plugin (a cache over `events`: not checkpointed, rebuilt
    /// from the events at the next firing).
    #[serde(skip)]
    pub(super) stacks: PaneStacks,
    /// This key's entry in the operator's `queue` (its earliest pending window), if any.
    pub(super) queued: Option<(i64, i64)>,
    /// This key's entry in the operator's `cleanup` (when its earliest live window may be
    /// purged), if any.
    pub(super) cleanup_at: Option<i64>,
    /// The input partition of its latest event (a key lives in one partition).
    pub(super) partition: u32,
}

/// One key's window state as a checkpoint holds it: its events, its live and pending
/// windows and their firing counts (pane states are a cache, rebuilt from the events).
#[derive(Debug, Serialize, Deserialize)]
pub struct KeySnapshot(pub(super) KeyState);

impl KeySnapshot {
    /// The key.
    pub fn key(&self) -> &Key {
        &self.0.key
    }
}

/// A window due to fire, from [`WindowOperator::take_due`]. Ordered by end, then start,
/// then key id (the order of its fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Due {
    /// The window's end, epoch ms.
    pub end: i64,
    /// The window's start, epoch ms.
    pub start: i64,
    /// The key's id in the operator (see [`WindowOperator::stacks_mut`]).
    pub key: u32,
}

/// Window state and firing for one pipeline (all keys).
#[derive(Debug)]
pub struct WindowOperator {
    kind: WindowKind,
    lateness: i64,
    pub(super) ids: HashMap<Key, u32>,
    pub(super) states: Vec<Option<KeyState>>,
    pub(super) free: Vec<u32>,
    /// Each key's earliest pending window.
    pub(super) queue: BTreeSet<Due>,
    /// Each key's earliest purge time (earliest live end + lateness): (time, key id).
    pub(super) cleanup: BTreeSet<(i64, u32)>,
    pub(super) open_windows: u64,
    pub(super) buffered: usize,
    pub(super) buffered_bytes: u64,
    limits: StateLimits,
    /// The input partition of the events placed now ([`WindowOperator::set_partition`]).
    pub(super) partition: u32,
    /// Windows a replay continues ([`WindowOperator::expect_replayed`]).
    pub(super) replays: super::revisions::Replays,
    /// Whether the events placed now are replayed ([`WindowOperator::set_replaying`]).
    pub(super) replaying: bool,
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
            replays: Default::default(),
            replaying: false,
        }
    }

    /// The window kind.
    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    /// The allowed lateness, ms.
    pub fn lateness(&self) -> i64 {
        self.lateness
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
        if let Some(reason) = self.limits.over_windows_per_event(per_event) {
            return Some(reason);
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
        if let Some(reason) = self.limits.over_windows_per_event(per_event) {
            return Placement::Refused(reason);
        }
        let (first, last) = match self.kind.ends(ts) {
            Err(e) => return Placement::Refused(e.to_string()),
            Ok(None) => return self.process_session(ts, key, values, watermark),
            Ok(Some(run)) => run,
        };
        let step = self.kind.pane().unwrap_or(1);
        let watermark = self.replay_watermark(&key, watermark);
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
        self.continue_panes(id, first, last);
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
        if self.is_late(merged, watermark) && !self.in_kept_session(&key, merged) {
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
        self.continue_session(id, merged.start, merged.end);
        self.open_windows = (self.open_windows + 1).saturating_sub(parts.len() as u64);
        self.resync(id);
        Placement::Added(1)
    }

    pub(super) fn state_id(&mut self, key: Key) -> u32 {
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

    pub(super) fn state(&mut self, id: u32) -> &mut KeyState {
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
    pub(super) fn resync(&mut self, id: u32) {
        let kind = self.kind;
        let lateness = self.lateness;
        let Some(st) = self.states.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let queued = st.windows.first_pending(kind).map(|w| (w.end, w.start));
        if queued != st.queued {
            if let Some((end, start)) = st.queued {
                self.queue.remove(&Due {
                    end,
                    start,
                    key: id,
                });
            }
            if let Some((end, start)) = queued {
                self.queue.insert(Due {
                    end,
                    start,
                    key: id,
                });
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
        self.queue.first().map_or(i64::MAX, |d| d.end)
    }

    /// The lowest watermark at which [`take_due`](Self::take_due) or
    /// [`purge_due`](Self::purge_due) would do anything (`i64::MAX` when the state is
    /// empty): a watermark below it can be skipped.
    pub fn next_due(&self) -> i64 {
        let fire = self.queue.first().map_or(i64::MAX, |d| d.end);
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
            if watermark.is_some_and(|w| first.end > w) {
                break;
            }
            self.queue.pop_first();
            let id = first.key;
            let st = self.state(id);
            st.queued = None;
            st.windows.take_first_pending();
            due.push(first);
            self.resync(id);
        }
        let states = &self.states;
        let key_of = |id: u32| states[id as usize].as_ref().map(|s| &s.key);
        due.sort_by(|a, b| {
            (a.end, a.start)
                .cmp(&(b.end, b.start))
                .then_with(|| key_of(a.key).cmp(&key_of(b.key)))
        });
        due
    }

    /// The firing of a due window: its key, revision and events, with the key's pane
    /// stacks. `None` if the window is gone.
    pub fn firing(
        &mut self,
        Due {
            end,
            start,
            key: id,
        }: Due,
    ) -> Option<(Firing<'_>, &mut PaneStacks)> {
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
    pub fn fired(
        &mut self,
        Due {
            end,
            start,
            key: id,
        }: Due,
    ) {
        if let Some(st) = self.states.get_mut(id as usize).and_then(Option::as_mut) {
            st.windows.fired(Window { start, end });
        }
    }

    /// Puts a due window back: it fires at a later step.
    pub fn declined(
        &mut self,
        Due {
            end,
            start,
            key: id,
        }: Due,
    ) {
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
        self.forget_replays(watermark);
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
        let bytes = bytes_of(st.events.drain(..cut));
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
