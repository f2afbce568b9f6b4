//! [`KeyWindows`]: the live, pending and fired windows of one key, as runs of pane ends
//! (tumbling, sliding, cumulative) or as one entry per session.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ends::EndSet;
use super::{Window, WindowKind};

/// The live windows of one key.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum KeyWindows {
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
    pub(super) fn new(kind: WindowKind) -> Self {
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

    pub(super) fn is_empty(&self) -> bool {
        match self {
            KeyWindows::Panes { live, .. } => live.is_empty(),
            KeyWindows::Sessions { windows, .. } => windows.is_empty(),
        }
    }

    /// The earliest pending window.
    pub(super) fn first_pending(&self, kind: WindowKind) -> Option<Window> {
        match self {
            KeyWindows::Panes { pending, .. } => pending.first().map(|e| kind.ending_at(e)),
            KeyWindows::Sessions { pending, .. } => {
                pending.first().map(|&(start, end)| Window { start, end })
            }
        }
    }

    /// The earliest live window (also the one with the earliest start).
    pub(super) fn first_live(&self, kind: WindowKind) -> Option<Window> {
        match self {
            KeyWindows::Panes { live, .. } => live.first().map(|e| kind.ending_at(e)),
            KeyWindows::Sessions { windows, .. } => windows
                .keys()
                .next()
                .map(|&(start, end)| Window { start, end }),
        }
    }

    /// Takes the earliest pending window out of `pending`.
    pub(super) fn take_first_pending(&mut self) {
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
    pub(super) fn revision(&self, w: Window) -> Option<u32> {
        match self {
            KeyWindows::Panes { live, firings, .. } => live
                .contains(w.end)
                .then(|| firings.get(&w.end).copied().unwrap_or(0)),
            KeyWindows::Sessions { windows, .. } => windows.get(&(w.start, w.end)).copied(),
        }
    }

    /// Counts one firing of a live window.
    pub(super) fn fired(&mut self, w: Window) {
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
    pub(super) fn repend(&mut self, w: Window) -> bool {
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
    pub(super) fn purge_through(&mut self, last: i64) -> u64 {
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
