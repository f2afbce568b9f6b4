//! Sets of window ends on a grid, kept as runs: how one key of a pane-aligned window kind
//! records which windows are live or pending in O(runs), not O(windows).
//!
//! Every window of a tumbling, sliding or cumulative kind is named by its end, and ends lie
//! on a grid of one pane. An event joins a contiguous run of ends, so the windows of a key
//! form a few runs `[lo, hi]` (both inclusive, `hi - lo` a multiple of the step), however
//! many windows each run holds.

use std::collections::BTreeMap;

/// A set of ends `≡ lo (mod step)`, as disjoint runs that never touch (adjacent runs merge).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct EndSet {
    /// Runs by first end: `lo → hi`, inclusive.
    runs: BTreeMap<i64, i64>,
}

/// How many ends one `step` apart lie in `[lo, hi]` (0 if `hi < lo`).
fn span(lo: i64, hi: i64, step: i64) -> u64 {
    if hi < lo {
        return 0;
    }
    let gap = (i128::from(hi) - i128::from(lo)) / i128::from(step.max(1));
    u64::try_from(gap + 1).unwrap_or(u64::MAX)
}

/// The end `k` steps after `lo`, saturating at the bounds of `i64`.
fn step_from(lo: i64, k: u64, step: i64) -> i64 {
    let at = i128::from(lo) + i128::from(k) * i128::from(step);
    i64::try_from(at).unwrap_or(if at < 0 { i64::MIN } else { i64::MAX })
}

impl EndSet {
    /// Whether the set holds no end.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The smallest end.
    pub(crate) fn first(&self) -> Option<i64> {
        self.runs.first_key_value().map(|(&lo, _)| lo)
    }

    /// Whether `end` is in the set.
    pub(crate) fn contains(&self, end: i64) -> bool {
        self.runs
            .range(..=end)
            .next_back()
            .is_some_and(|(_, &hi)| end <= hi)
    }

    /// How many ends of `[lo, hi]` (one `step` apart; `lo` and `hi` on the set's grid) the
    /// set holds.
    pub(crate) fn count(&self, lo: i64, hi: i64, step: i64) -> u64 {
        let mut n = 0u64;
        for (&a, &b) in self.runs.range(..=hi).rev() {
            if b < lo {
                break;
            }
            n = n.saturating_add(span(a.max(lo), b.min(hi), step));
        }
        n
    }

    /// Adds the ends `lo, lo + step, …, hi` (on the set's grid); returns how many were not
    /// in the set.
    pub(crate) fn insert(&mut self, lo: i64, hi: i64, step: i64) -> u64 {
        if hi < lo {
            return 0;
        }
        let added = span(lo, hi, step).saturating_sub(self.count(lo, hi, step));
        // Absorb every run that overlaps or touches [lo, hi].
        let (mut new_lo, mut new_hi) = (lo, hi);
        let reach = hi.saturating_add(step);
        let from = lo.saturating_sub(step);
        while let Some((&a, &b)) = self.runs.range(..=reach).next_back() {
            if b < from {
                break;
            }
            self.runs.remove(&a);
            new_lo = new_lo.min(a);
            new_hi = new_hi.max(b);
        }
        self.runs.insert(new_lo, new_hi);
        added
    }

    /// Removes `end` (on the set's grid), if the set holds it.
    pub(crate) fn remove(&mut self, end: i64, step: i64) {
        let Some((&lo, &hi)) = self.runs.range(..=end).next_back() else {
            return;
        };
        if end > hi {
            return;
        }
        self.runs.remove(&lo);
        if lo < end {
            self.runs.insert(lo, end.saturating_sub(step));
        }
        if end < hi {
            self.runs.insert(end.saturating_add(step), hi);
        }
    }

    /// Removes and returns the smallest end.
    pub(crate) fn pop_first(&mut self, step: i64) -> Option<i64> {
        let (lo, hi) = self.runs.pop_first()?;
        if lo < hi {
            self.runs.insert(lo.saturating_add(step), hi);
        }
        Some(lo)
    }

    /// Removes every end `<= last` (`last` anywhere); returns how many were removed.
    pub(crate) fn remove_through(&mut self, last: i64, step: i64) -> u64 {
        let mut n = 0u64;
        while let Some(entry) = self.runs.first_entry() {
            let (lo, hi) = (*entry.key(), *entry.get());
            if lo > last {
                break;
            }
            entry.remove();
            if hi <= last {
                n = n.saturating_add(span(lo, hi, step));
            } else {
                // `last` lies inside the run: keep the ends after it.
                let gone = span(lo, last, step);
                n = n.saturating_add(gone);
                self.runs.insert(step_from(lo, gone, step), hi);
                break;
            }
        }
        n
    }

    /// The runs of ends `<= last` (`last` anywhere), cut at `last`.
    pub(crate) fn runs_through(&self, last: i64, step: i64) -> Vec<(i64, i64)> {
        self.runs
            .range(..=last)
            .map(|(&lo, &hi)| {
                let hi = if hi <= last {
                    hi
                } else {
                    step_from(lo, span(lo, last, step).saturating_sub(1), step)
                };
                (lo, hi)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(s: &EndSet) -> Vec<(i64, i64)> {
        s.runs.iter().map(|(&a, &b)| (a, b)).collect()
    }

    #[test]
    fn insert_counts_new_ends_and_merges_touching_runs() {
        let mut s = EndSet::default();
        // 10, 20, 30: three new ends.
        assert_eq!(s.insert(10, 30, 10), 3);
        // 50, 60: a separate run (40 is missing).
        assert_eq!(s.insert(50, 60, 10), 2);
        assert_eq!(runs(&s), vec![(10, 30), (50, 60)]);
        // 20..=50 holds 20, 30, 40, 50; only 40 is new; the runs join into one.
        assert_eq!(s.insert(20, 50, 10), 1);
        assert_eq!(runs(&s), vec![(10, 60)]);
        // 70 touches 60: merged, one new.
        assert_eq!(s.insert(70, 70, 10), 1);
        assert_eq!(runs(&s), vec![(10, 70)]);
        assert_eq!(s.count(0, 1000, 10), 7);
        assert_eq!(s.count(30, 40, 10), 2);
        assert_eq!(s.count(-10, 10, 10), 1, "10 only");
    }

    #[test]
    fn remove_splits_the_run_holding_the_end() {
        let mut s = EndSet::default();
        s.insert(10, 50, 10);
        // 30 is inside the run: two runs remain around it.
        s.remove(30, 10);
        assert_eq!(runs(&s), vec![(10, 20), (40, 50)]);
        // The first and last ends of a run shrink it; absent ends change nothing.
        s.remove(10, 10);
        s.remove(50, 10);
        s.remove(30, 10);
        s.remove(90, 10);
        assert_eq!(runs(&s), vec![(20, 20), (40, 40)]);
        s.remove(20, 10);
        assert_eq!(runs(&s), vec![(40, 40)]);
        assert!(s.contains(40) && !s.contains(20));
    }

    #[test]
    fn a_day_of_minute_ends_is_one_run() {
        // 1 440 one-minute ends of a day, then the next day's 1 440: one run of 2 880.
        let (min, day) = (60_000, 86_400_000);
        let mut s = EndSet::default();
        assert_eq!(s.insert(min, day, min), 1440);
        assert_eq!(s.insert(day + min, 2 * day, min), 1440);
        assert_eq!(runs(&s), vec![(min, 2 * day)]);
        // Removing through the first day leaves the second day's 1 440 ends.
        assert_eq!(s.remove_through(day, min), 1440);
        assert_eq!(runs(&s), vec![(day + min, 2 * day)]);
    }

    #[test]
    fn pop_first_walks_the_runs_in_order() {
        let mut s = EndSet::default();
        s.insert(-20, -10, 10);
        s.insert(10, 20, 10);
        assert_eq!(runs(&s), vec![(-20, -10), (10, 20)]);
        assert!(!s.contains(0) && s.contains(-10) && s.contains(20) && !s.contains(30));
        assert_eq!(s.pop_first(10), Some(-20));
        assert_eq!(s.first(), Some(-10));
        assert_eq!(s.pop_first(10), Some(-10));
        assert_eq!(s.pop_first(10), Some(10));
        assert_eq!(s.pop_first(10), Some(20));
        assert_eq!(s.pop_first(10), None);
        assert!(s.is_empty());
    }

    #[test]
    fn remove_through_cuts_inside_a_run_and_runs_through_clips() {
        let mut s = EndSet::default();
        s.insert(10, 50, 10);
        s.insert(80, 90, 10);
        // Through 35: runs [10, 30] of the first run, nothing of the second.
        assert_eq!(s.runs_through(35, 10), vec![(10, 30)]);
        assert_eq!(s.runs_through(85, 10), vec![(10, 50), (80, 80)]);
        // Removing through 35 takes 10, 20, 30 and keeps 40, 50, 80, 90.
        assert_eq!(s.remove_through(35, 10), 3);
        assert_eq!(runs(&s), vec![(40, 50), (80, 90)]);
        assert_eq!(s.remove_through(i64::MAX, 10), 4);
        assert!(s.is_empty());
    }
}
