//! Firing counts across a restart without a checkpoint: which windows that fired are still
//! kept (for allowed lateness, or early firings in update mode), and, on a reader that
//! replays their events, continuing their revisions where the previous reader stopped.
//!
//! A window inside its allowed lateness has fired already, but its events are still
//! needed (a late event fires it again with all of them), so the committed position stays
//! before them. A reader that starts from that position rebuilds the window from the
//! replayed events; without its firing count it would fire it again as revision 0 with
//! its late events included: a second content for a row id already written. A commit
//! therefore records, per input partition, each such window's firing count and whether it
//! held events not emitted yet ([`WindowOperator::kept_windows`]); the reader hands them
//! back ([`WindowOperator::expect_replayed`]) and places the replayed events (those read
//! before the commit) in those windows with the recorded count, not pending: nothing fires
//! them during the replay. Those pending at the commit are pending again once the
//! partition's replay is over ([`WindowOperator::end_replay`]). Events after the commit
//! fire the next revision, as they did before the restart.
//!
//! Sessions need the same record whether they fired or not: a replay rebuilds a session
//! from its first event on, at the commit's watermark, where a part of it alone would end
//! before that watermark and count as late.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Window;
use super::key_windows::KeyWindows;
use super::operator::WindowOperator;
use crate::value::Key;

/// A window a commit records: one that fired and is still kept, or a session still open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptWindow {
    /// The input partition of its key (the pipeline's partition id; not recorded: the
    /// record it travels in is the partition's).
    #[serde(skip)]
    pub partition: u32,
    /// The key.
    #[serde(rename = "k")]
    pub key: Key,
    /// The window's start, epoch ms.
    #[serde(rename = "s")]
    pub start: i64,
    /// The window's end, epoch ms.
    #[serde(rename = "e")]
    pub end: i64,
    /// How many times it fired: its next firing is this revision.
    #[serde(rename = "n")]
    pub firings: u32,
    /// Whether it held events not emitted yet: then its replay fires it again.
    #[serde(rename = "p")]
    pub pending: bool,
}

/// The windows a replay continues, by key, and the watermark after which none is kept.
#[derive(Debug, Default)]
pub(super) struct Replays {
    by_key: HashMap<Key, Vec<KeptWindow>>,
    /// Every window here is purged at this watermark (`end + lateness` of the latest).
    until: i64,
}

impl WindowOperator {
    /// Every window that fired and is still kept, every window due at `watermark` that did
    /// not fire yet, and every open session, with its key's partition: what a commit made
    /// at `watermark` records so that a replay of the partition continues the
    /// windows' revisions and rebuilds the sessions whole. Also the
    /// windows handed to [`expect_replayed`](Self::expect_replayed) whose events were not
    /// replayed yet (a restart killed before it caught up must not forget them).
    pub fn kept_windows(&self, watermark: i64) -> Vec<KeptWindow> {
        let kind = self.kind();
        let mut out = Vec::new();
        for st in self.states.iter().flatten() {
            let mut put = |start: i64, end: i64, firings: u32, pending: bool| {
                out.push(KeptWindow {
                    partition: st.partition,
                    key: st.key.clone(),
                    start,
                    end,
                    firings,
                    pending,
                });
            };
            match &st.windows {
                KeyWindows::Panes {
                    step,
                    live,
                    pending,
                    firings,
                } => {
                    for (&end, &n) in firings {
                        if n > 0 && live.contains(end) {
                            put(kind.ending_at(end).start, end, n, pending.contains(end));
                        }
                    }
                    // Due but not fired yet (a late event waits for the next watermark
                    // step; a held window): the replay must not take them as fired.
                    let step = (*step).max(1);
                    for (lo, hi) in pending.runs_through(watermark, step) {
                        let mut end = lo;
                        while end <= hi {
                            if firings.get(&end).is_none_or(|&n| n == 0) {
                                put(kind.ending_at(end).start, end, 0, true);
                            }
                            end = end.saturating_add(step);
                        }
                    }
                }
                // Every session, fired or not: a replay rebuilds a session from the
                // first of its events, at the commit's watermark, where that part alone
                // would be late ([`in_kept_session`](Self::in_kept_session)).
                KeyWindows::Sessions { windows, pending } => {
                    for (&(start, end), &n) in windows {
                        put(start, end, n, pending.contains(&(start, end)));
                    }
                }
            }
        }
        for (key, windows) in &self.replays.by_key {
            let live = self
                .ids
                .get(key)
                .and_then(|&id| self.states[id as usize].as_ref());
            for w in windows {
                let seen = live.is_some_and(|st| {
                    st.windows
                        .revision(Window {
                            start: w.start,
                            end: w.end,
                        })
                        .is_some()
                });
                if !seen {
                    out.push(w.clone());
                }
            }
        }
        out
    }

    /// Takes the windows a commit recorded for partitions this operator now replays
    /// ([`kept_windows`](Self::kept_windows)): replayed events placed in them
    /// ([`set_replaying`](Self::set_replaying)) leave them as the commit found them.
    pub fn expect_replayed(&mut self, windows: Vec<KeptWindow>) {
        let lateness = self.lateness();
        for w in windows {
            self.replays.until = self.replays.until.max(w.end.saturating_add(lateness));
            self.replays
                .by_key
                .entry(w.key.clone())
                .or_default()
                .push(w);
        }
    }

    /// Whether the events placed from now on were read before the commit a replay started
    /// from (see [`expect_replayed`](Self::expect_replayed)).
    pub fn set_replaying(&mut self, replaying: bool) {
        self.replaying = replaying;
    }

    /// After a replayed event joined the windows ending `first..=last` of key `id`: each of
    /// them the commit recorded takes the recorded firing count and is not pending (its
    /// replayed events were emitted, or will be once the replay is over:
    /// [`end_replay`](Self::end_replay)).
    pub(super) fn continue_panes(&mut self, id: u32, first: i64, last: i64) {
        let Some((st, recorded)) = self.replayed_state(id) else {
            return;
        };
        if let KeyWindows::Panes {
            step,
            live,
            pending,
            firings,
        } = &mut st.windows
        {
            for w in recorded {
                if w.end < first || w.end > last || !live.contains(w.end) {
                    continue;
                }
                let n = firings.entry(w.end).or_insert(0);
                *n = (*n).max(w.firings);
                // Pending again, if it was, once the partition's replay is over.
                pending.remove(w.end, *step);
            }
        }
    }

    /// As [`continue_panes`](Self::continue_panes) for the session `(start, end)` a
    /// replayed event of key `id` is now in: a recorded session that covers it (the replay
    /// rebuilds it from a part of its events first) gives it its count.
    pub(super) fn continue_session(&mut self, id: u32, start: i64, end: i64) {
        let Some((st, recorded)) = self.replayed_state(id) else {
            return;
        };
        if let KeyWindows::Sessions { windows, pending } = &mut st.windows {
            for w in recorded {
                if w.start <= start && end <= w.end {
                    if let Some(n) = windows.get_mut(&(start, end)) {
                        *n = (*n).max(w.firings);
                    }
                    pending.remove(&(start, end));
                }
            }
        }
    }

    /// Key `id`'s state and the windows recorded for it, while a replay places its events.
    fn replayed_state(
        &mut self,
        id: u32,
    ) -> Option<(&mut super::operator::KeyState, &[KeptWindow])> {
        if !self.replaying || self.replays.by_key.is_empty() {
            return None;
        }
        let st = self.states.get_mut(id as usize).and_then(Option::as_mut)?;
        let recorded = self.replays.by_key.get(&st.key)?;
        Some((st, recorded))
    }

    /// The replay of `partition` is over (its last record read before the commit was
    /// placed): the windows of its keys the commit recorded as pending are pending again,
    /// and fire at the next watermark step, as they would have without the restart.
    pub fn end_replay(&mut self, partition: u32) {
        if self.replays.by_key.is_empty() {
            return;
        }
        let mut again = Vec::new();
        for (key, recorded) in &mut self.replays.by_key {
            for w in recorded.iter_mut() {
                if w.partition == partition && w.pending {
                    w.pending = false;
                    if let Some(&id) = self.ids.get(key) {
                        again.push((
                            id,
                            Window {
                                start: w.start,
                                end: w.end,
                            },
                        ));
                    }
                }
            }
        }
        for (id, window) in again {
            if let Some(st) = self.states.get_mut(id as usize).and_then(Option::as_mut) {
                st.windows.repend(window);
                self.resync(id);
            }
        }
    }

    /// The watermark a replayed event of `key` is placed at, given `w`: below the end (plus
    /// lateness) of every window of the key the commit recorded, so that the replay puts the
    /// event back in them. Windows ending before the earliest of them stay late: they were
    /// purged.
    pub(super) fn replay_watermark(&self, key: &Key, w: i64) -> i64 {
        if !self.replaying {
            return w;
        }
        let lateness = self.lateness();
        self.replays
            .by_key
            .get(key)
            .and_then(|recorded| {
                recorded
                    .iter()
                    .map(|r| r.end.saturating_add(lateness).saturating_sub(1))
                    .min()
            })
            .map_or(w, |m| w.min(m))
    }

    /// Whether a replayed event whose session would be `window` lies in a session the
    /// commit recorded as kept: it was part of that session then, so it is not late now,
    /// though alone its session would end before the watermark the replay starts at.
    pub(super) fn in_kept_session(&self, key: &Key, window: Window) -> bool {
        self.replaying
            && self.replays.by_key.get(key).is_some_and(|recorded| {
                recorded
                    .iter()
                    .any(|w| w.start <= window.start && window.end <= w.end)
            })
    }

    /// Forgets the recorded windows once the watermark purged them all.
    pub(super) fn forget_replays(&mut self, watermark: i64) {
        if !self.replays.by_key.is_empty() && watermark >= self.replays.until {
            self.replays = Replays::default();
        }
    }
}
