//! Pane states for incremental plugins: per key, a two-stacks sliding-window aggregation
//! over the plugin's associative `merge`.
//!
//! A pane is the gcd of a window's size and slide (a cumulative window's step, a tumbling
//! window's size): every window is a run of whole panes. Each non-empty pane's events are
//! accumulated once (`init` + `add`), and a window's state is the merge of its panes'
//! states, kept as two stacks: the *back* holds pane states in time order with their
//! running merge, the *front* holds suffix merges (`front[i]` = merge of its pane and every
//! later pane of the front). A window's state is `merge(front top, back merge)`; evicting a
//! pane pops the front, and when the front is empty the back is flipped into it (one merge
//! per pane, paid once per pane). So a firing costs O(1) merges amortized, however many
//! panes a window holds. The states themselves live in the plugin's encoding; this module
//! only decides which states to merge, through a [`Planner`].
//!
//! The host keeps every event until its last window is purged (see `operator.rs`), so stacks
//! are a cache: an event landing in a pane already accumulated, a window fired out of order
//! (a late re-firing) or a plugin whose state type changed simply clears them, and they
//! are rebuilt from the events at the next firing.

use std::collections::vec_deque;
use std::sync::Arc;

use super::{StoredEvent, Window};

/// A state, as a plan refers to it: bytes the host holds, or a slot of the plan being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRef {
    /// Encoded state returned by an earlier step.
    Held(Arc<[u8]>),
    /// A slot of the plan under construction.
    Slot(u32),
}

/// Builds the slots of a plan: the pipeline turns them into a plugin call.
pub trait Planner {
    /// A fresh state with `events` added (events of one key, sorted by time).
    fn fresh(&mut self, events: &[&StoredEvent]) -> StateRef;
    /// `a` merged with `b` (`b` covers later events).
    fn merge(&mut self, a: &StateRef, b: &StateRef) -> StateRef;
}

/// One key's two stacks.
#[derive(Debug, Default, Clone)]
pub struct PaneStacks {
    /// Suffix merges, oldest pane last (the top).
    front: Vec<(i64, StateRef)>,
    /// Pane states in time order.
    back: Vec<(i64, StateRef)>,
    /// Merge of every state in `back`.
    back_merge: Option<StateRef>,
    /// Start of the last window computed, and the end up to which panes were pushed.
    last: Option<(i64, i64)>,
    /// `front[..fresh_front]` may still hold plan slots; the front above is held.
    fresh_front: usize,
    /// `back[fresh_back..]` may still hold plan slots; the back below is held.
    fresh_back: usize,
}

/// How many of `events` (sorted by time) satisfy `pred`, which holds for a prefix: a
/// search galloping from the back of the deque's iterator (`nth` on it is O(1)), since a
/// firing reads the events of its newest panes, at the back of the buffer.
fn partition_point(
    events: &vec_deque::Iter<'_, StoredEvent>,
    pred: impl Fn(&StoredEvent) -> bool,
) -> usize {
    let len = events.len();
    let holds = |i: usize| events.clone().nth(i).is_some_and(&pred);
    let mut back = 1usize;
    while back <= len && !holds(len - back) {
        back = back.saturating_mul(2);
    }
    // `pred` fails from len - back / 2 on, and holds at len - back if that exists.
    let mut lo = if back <= len { len - back + 1 } else { 0 };
    let mut hi = len - back / 2;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl PaneStacks {
    /// Forgets every state; the next window is rebuilt from its events.
    pub fn clear(&mut self) {
        *self = PaneStacks::default();
    }

    /// Whether an event at `ts` would change a state the stacks hold (it lands in a pane
    /// already pushed).
    pub fn covers(&self, ts: i64) -> bool {
        self.last.is_some_and(|(_, pushed_end)| ts < pushed_end)
    }

    /// How many of `events` (as for [`window`](Self::window)) a call of `window` for
    /// `window` would add to fresh pane states now: the window's events in panes not
    /// pushed yet, or all of them when the stacks would be rebuilt. What a firing step
    /// sends to the plugin for this window, to size the step's batch.
    pub fn unpushed_events(
        &self,
        window: Window,
        events: vec_deque::Iter<'_, StoredEvent>,
    ) -> usize {
        let from = match self.last {
            Some((start, end)) if window.start >= start && window.end >= end => {
                end.max(window.start)
            }
            _ => window.start,
        };
        let lo = partition_point(&events, |e| e.ts < from);
        let hi = partition_point(&events, |e| e.ts < window.end);
        hi.saturating_sub(lo)
    }

    /// The state of `window`, with `pane` ms panes, given this key's events sorted by time
    /// (at least those of the window, e.g. [`Firing::events`](super::Firing)). Only the
    /// events of panes not pushed yet are read (found by binary search), so a firing costs
    /// O(log) in the window's events plus the new events, however long the window.
    /// Windows must come in order of start and end; one that does not (a re-firing of an
    /// older window) rebuilds the stacks first.
    pub fn window(
        &mut self,
        window: Window,
        pane: i64,
        events: vec_deque::Iter<'_, StoredEvent>,
        planner: &mut dyn Planner,
    ) -> StateRef {
        let pushed_end = match self.last {
            Some((start, end)) if window.start >= start && window.end >= end => end,
            Some(_) => {
                self.clear();
                window.start
            }
            None => window.start,
        };
        self.settle();
        self.evict(window.start, planner);
        // Push every non-empty pane of the window not pushed yet.
        let from = partition_point(&events, |e| e.ts < pushed_end.max(window.start));
        let to = partition_point(&events, |e| e.ts < window.end);
        let events: Vec<&StoredEvent> = events.skip(from).take(to.saturating_sub(from)).collect();
        let to = events.len();
        let mut i = 0;
        while i < to {
            let start = events[i].ts - events[i].ts.rem_euclid(pane.max(1));
            let end = start.saturating_add(pane.max(1));
            let j = i + events[i..to].partition_point(|e| e.ts < end);
            let state = planner.fresh(&events[i..j]);
            self.back_merge = Some(match self.back_merge.take() {
                Some(m) => planner.merge(&m, &state),
                None => state.clone(),
            });
            self.back.push((start, state));
            i = j;
        }
        self.last = Some((window.start, window.end.max(pushed_end)));
        match (self.front.last(), &self.back_merge) {
            (Some((_, f)), Some(b)) => planner.merge(f, b),
            (Some((_, f)), None) => f.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => planner.fresh(&[]),
        }
    }

    /// Drops panes starting before `start`.
    fn evict(&mut self, start: i64, planner: &mut dyn Planner) {
        while self.front.last().is_some_and(|(s, _)| *s < start) {
            self.front.pop();
        }
        if !self.front.is_empty() || self.back.first().is_none_or(|(s, _)| *s >= start) {
            return;
        }
        // The front is empty and the back holds an evicted pane: flip the back's kept
        // panes into suffix merges (none at all when every pane goes).
        let back = std::mem::take(&mut self.back);
        self.back_merge = None;
        self.fresh_back = 0;
        let kept = back.partition_point(|(s, _)| *s < start);
        let mut suffix: Option<StateRef> = None;
        for (s, state) in back.into_iter().skip(kept).rev() {
            let merged = match &suffix {
                Some(later) => planner.merge(&state, later),
                None => state,
            };
            suffix = Some(merged.clone());
            self.front.push((s, merged));
        }
        self.fresh_front = self.front.len();
    }

    /// Narrows the fresh ranges past the states already held (resolved after a step).
    fn settle(&mut self) {
        let held = |e: &(i64, StateRef)| matches!(e.1, StateRef::Held(_));
        while self.back.get(self.fresh_back).is_some_and(held) {
            self.fresh_back += 1;
        }
        self.fresh_front = self.fresh_front.min(self.front.len());
        while self.fresh_front > 0 && held(&self.front[self.fresh_front - 1]) {
            self.fresh_front -= 1;
        }
    }

    /// Every state the stacks hold that may still be a plan slot, to resolve slots into
    /// held bytes after a step. States held since an earlier step are skipped, so this
    /// costs the panes pushed or merged since then, not every pane of the window.
    pub fn refs_mut(&mut self) -> impl Iterator<Item = &mut StateRef> {
        let front = self.fresh_front.min(self.front.len());
        let back = self.fresh_back.min(self.back.len());
        self.front[..front]
            .iter_mut()
            .chain(self.back[back..].iter_mut())
            .map(|(_, s)| s)
            .chain(self.back_merge.iter_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    /// Evaluates plans on the spot: a state is the list of event times it covers.
    #[derive(Default)]
    struct Eval {
        slots: Vec<Vec<i64>>,
        merges: usize,
        adds: usize,
    }

    impl Eval {
        fn get(&self, r: &StateRef) -> Vec<i64> {
            match r {
                StateRef::Slot(i) => self.slots[*i as usize].clone(),
                StateRef::Held(_) => unreachable!("no held states in these tests"),
            }
        }
    }

    impl Planner for Eval {
        fn fresh(&mut self, events: &[&StoredEvent]) -> StateRef {
            self.adds += events.len();
            self.slots.push(events.iter().map(|e| e.ts).collect());
            StateRef::Slot(self.slots.len() as u32 - 1)
        }
        fn merge(&mut self, a: &StateRef, b: &StateRef) -> StateRef {
            self.merges += 1;
            let mut s = self.get(a);
            s.extend(self.get(b));
            self.slots.push(s);
            StateRef::Slot(self.slots.len() as u32 - 1)
        }
    }

    fn events(ts: &[i64]) -> Vec<StoredEvent> {
        ts.iter()
            .map(|&ts| StoredEvent {
                ts,
                values: Box::new([Value::Null]),
            })
            .collect()
    }

    fn window_of(
        stacks: &mut PaneStacks,
        eval: &mut Eval,
        evs: &[StoredEvent],
        w: (i64, i64),
        pane: i64,
    ) -> Vec<i64> {
        let deque: std::collections::VecDeque<StoredEvent> = evs.iter().cloned().collect();
        let r = stacks.window(
            Window {
                start: w.0,
                end: w.1,
            },
            pane,
            deque.iter(),
            eval,
        );
        eval.get(&r)
    }

    #[test]
    fn sliding_windows_hold_exactly_their_events_in_order() {
        // Size 3, slide 1 (pane 1): events at 0.5, 1.2, 1.7, 3.1, 4.9, 5.0 (in tenths: ms).
        let evs = events(&[5, 12, 17, 31, 49, 50]);
        let mut s = PaneStacks::default();
        let mut e = Eval::default();
        // Windows [-20, 10), [-10, 20), [0, 30), [10, 40), [20, 50), [30, 60), ...
        let cases: [((i64, i64), &[i64]); 6] = [
            ((-20, 10), &[5]),
            ((-10, 20), &[5, 12, 17]),
            ((0, 30), &[5, 12, 17]),
            ((10, 40), &[12, 17, 31]),
            ((20, 50), &[31, 49]),
            ((30, 60), &[31, 49, 50]),
        ];
        for (w, expected) in cases {
            assert_eq!(
                window_of(&mut s, &mut e, &evs, w, 10),
                expected,
                "window {w:?}"
            );
        }
        // Every event was added once.
        assert_eq!(e.adds, 6);
    }

    #[test]
    fn a_long_window_costs_constant_merges_per_firing_amortized() {
        // 3 600 panes per window, one event per pane, 10 000 consecutive windows.
        let pane = 1;
        let evs = events(&(0..13_600).collect::<Vec<_>>());
        let deque: std::collections::VecDeque<StoredEvent> = evs.into_iter().collect();
        let mut s = PaneStacks::default();
        let mut count = CountOnly::default();
        for k in 0..10_000 {
            s.window(
                Window {
                    start: k,
                    end: k + 3_600,
                },
                pane,
                deque.iter(),
                &mut count,
            );
        }
        // Per firing: one merge to push a pane, one to query, and one per pane at a flip,
        // which happens once per 3 600 evicted panes (so about one per firing): at most 3
        // merges per firing on average, plus filling the first window (3 599 merges) and
        // the last, partial flip (under 3 600). Without the stacks it would be 3 599 per
        // firing, about 36 million.
        assert!(
            count.merges <= 3 * 10_000 + 2 * 3_600,
            "{} merges",
            count.merges
        );
        assert_eq!(count.adds, 13_599);
    }

    /// Counts calls only (the sets would be too large to build).
    #[derive(Default)]
    struct CountOnly {
        n: u32,
        merges: usize,
        adds: usize,
    }

    impl Planner for CountOnly {
        fn fresh(&mut self, events: &[&StoredEvent]) -> StateRef {
            self.adds += events.len();
            self.n += 1;
            StateRef::Slot(self.n)
        }
        fn merge(&mut self, _: &StateRef, _: &StateRef) -> StateRef {
            self.merges += 1;
            self.n += 1;
            StateRef::Slot(self.n)
        }
    }

    #[test]
    fn cumulative_windows_run_and_a_new_period_drops_the_old_panes_without_merging() {
        // Size 40, step 10: [0, 10), [0, 20), [0, 30), [0, 40), then [40, 50).
        let evs = events(&[1, 11, 12, 25, 39, 41]);
        let mut s = PaneStacks::default();
        let mut e = Eval::default();
        assert_eq!(window_of(&mut s, &mut e, &evs, (0, 10), 10), [1]);
        assert_eq!(window_of(&mut s, &mut e, &evs, (0, 20), 10), [1, 11, 12]);
        assert_eq!(
            window_of(&mut s, &mut e, &evs, (0, 30), 10),
            [1, 11, 12, 25]
        );
        assert_eq!(
            window_of(&mut s, &mut e, &evs, (0, 40), 10),
            [1, 11, 12, 25, 39]
        );
        let before = e.merges;
        assert_eq!(window_of(&mut s, &mut e, &evs, (40, 50), 10), [41]);
        assert_eq!(e.merges, before, "no flip when every pane is evicted");
    }

    #[test]
    fn an_older_window_or_a_cleared_stack_is_rebuilt_from_events() {
        let evs = events(&[5, 15, 25]);
        let mut s = PaneStacks::default();
        let mut e = Eval::default();
        assert_eq!(window_of(&mut s, &mut e, &evs, (10, 30), 10), [15, 25]);
        assert!(s.covers(29) && !s.covers(30));
        // A late re-firing of [0, 20) after [10, 30).
        assert_eq!(window_of(&mut s, &mut e, &evs, (0, 20), 10), [5, 15]);
        s.clear();
        assert!(!s.covers(0));
        assert_eq!(window_of(&mut s, &mut e, &evs, (10, 30), 10), [15, 25]);
    }

    #[test]
    fn galloping_partition_point_agrees_with_a_plain_count() {
        // Times 0, 0, 1, 1, …, 9, 9: 2·t events are before t, clamped to 0..=20.
        let deque: std::collections::VecDeque<StoredEvent> =
            events(&(0..20).map(|i| i / 2).collect::<Vec<_>>())
                .into_iter()
                .collect();
        for t in -3..=13 {
            let expected = (2 * t).clamp(0, 20) as usize;
            assert_eq!(
                partition_point(&deque.iter(), |e| e.ts < t),
                expected,
                "t = {t}"
            );
        }
        let empty = std::collections::VecDeque::new();
        assert_eq!(partition_point(&empty.iter(), |e| e.ts < 5), 0);
    }

    /// Resolves every slot `refs_mut` yields into a held state, as the pipeline does after
    /// a step: (states yielded, slots among them).
    fn resolve(s: &mut PaneStacks) -> (usize, usize) {
        let (mut refs, mut slots) = (0, 0);
        for r in s.refs_mut() {
            refs += 1;
            if matches!(r, StateRef::Slot(_)) {
                slots += 1;
                *r = StateRef::Held(Arc::from(Vec::new()));
            }
        }
        (refs, slots)
    }

    #[test]
    fn refs_mut_skips_states_held_since_an_earlier_step() {
        // Pane 1, windows of 4 panes, one event per pane at 0, 1, 2, ….
        let deque: std::collections::VecDeque<StoredEvent> =
            events(&(0..10).collect::<Vec<_>>()).into_iter().collect();
        let mut s = PaneStacks::default();
        let mut count = CountOnly::default();
        let mut fire = |s: &mut PaneStacks, start: i64| {
            s.window(
                Window {
                    start,
                    end: start + 4,
                },
                1,
                deque.iter(),
                &mut count,
            );
        };
        // [0,4): back holds panes 0..3 and their running merge, all new: 5 states, 5 slots.
        let w = |start: i64| Window {
            start,
            end: start + 4,
        };
        assert_eq!(s.unpushed_events(w(0), deque.iter()), 4, "events 0..=3");
        fire(&mut s, 0);
        assert_eq!(s.unpushed_events(w(1), deque.iter()), 1, "event 4 only");
        assert_eq!(
            s.unpushed_events(w(0), deque.iter()),
            0,
            "the same window again"
        );
        // An older window [-1, 3) is rebuilt from its events 0, 1, 2.
        assert_eq!(s.unpushed_events(w(-1), deque.iter()), 3);
        assert_eq!(resolve(&mut s), (5, 5));
        // [1,5): the flip makes front = [pane 3 (held), 2+3, 1+2+3]; pane 4 is pushed and is
        // the back's merge: 5 states yielded, 4 of them slots.
        fire(&mut s, 1);
        assert_eq!(resolve(&mut s), (5, 4));
        // [2,6): pane 1 is evicted, pane 5 pushed with a new back merge. Only those two
        // are yielded, not the 2 front and 2 back states in all.
        fire(&mut s, 2);
        assert_eq!(resolve(&mut s), (2, 2));
        // Clearing forgets everything: the next window starts from scratch.
        s.clear();
        fire(&mut s, 3);
        assert_eq!(resolve(&mut s), (5, 5));
    }
}
