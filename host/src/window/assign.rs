//! Window assignment for the four window kinds, aligned to the epoch (offset 0).

/// A half-open event-time window `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl Window {
    /// Whether `ts` falls in `[start, end)`.
    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }
}

/// A window assigner, with sizes in milliseconds (all positive, validated by config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `[start, start + size)` with `start = ts - ts.rem_euclid(size)`.
    Tumbling {
        /// Window length.
        size: i64,
    },
    /// Every `start ≡ 0 (mod slide)` with `start <= ts < start + size`.
    Sliding {
        /// Window length.
        size: i64,
        /// Distance between starts; divides `size`.
        slide: i64,
    },
    /// Per key, events closer than `gap` share a session `[first, last + gap)`.
    Session {
        /// Inactivity gap.
        gap: i64,
    },
    /// For the tumbling `size` period starting at `S`: `[S, S + k·step)`, k = 1..size/step.
    Cumulative {
        /// Period length (e.g. one day).
        size: i64,
        /// Growth step; divides `size`.
        step: i64,
    },
}

/// Window bounds of an event that do not fit in an `i64`.
///
/// Cannot happen for event times inside the valid range with durations validated by config
/// (see `time::MAX_DURATION_MS`); checked anyway so that no input can make a bound wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("window bounds of event time {ts} ms overflow")]
pub struct Overflow {
    /// The event time.
    pub ts: i64,
}

impl WindowKind {
    /// Appends to `out` the windows that contain `ts`, by ascending end.
    ///
    /// For sessions this is the proto-session `[ts, ts + gap)`, before merging. Every bound
    /// is computed with checked arithmetic: on overflow nothing is appended and the event
    /// is refused whole.
    pub fn assign(&self, ts: i64, out: &mut Vec<Window>) -> Result<(), Overflow> {
        let before = out.len();
        let r = self.assign_checked(ts, out);
        if r.is_none() {
            out.truncate(before);
        }
        r.ok_or(Overflow { ts })
    }

    fn assign_checked(&self, ts: i64, out: &mut Vec<Window>) -> Option<()> {
        match *self {
            WindowKind::Tumbling { size } => {
                let start = ts.checked_sub(ts.checked_rem_euclid(size)?)?;
                out.push(Window {
                    start,
                    end: start.checked_add(size)?,
                });
            }
            WindowKind::Sliding { size, slide } => {
                let last = ts.checked_sub(ts.checked_rem_euclid(slide)?)?;
                let n = size.checked_div(slide)?;
                // Earliest start with start + size > ts.
                let first = last.checked_sub(n.checked_sub(1)?.checked_mul(slide)?)?;
                for i in 0..n {
                    let start = first.checked_add(i.checked_mul(slide)?)?;
                    out.push(Window {
                        start,
                        end: start.checked_add(size)?,
                    });
                }
            }
            WindowKind::Session { gap } => out.push(Window {
                start: ts,
                end: ts.checked_add(gap)?,
            }),
            WindowKind::Cumulative { size, step } => {
                let period = ts.checked_sub(ts.checked_rem_euclid(size)?)?;
                // ts - period is in [0, size): the window ending after ts is k = that / step + 1.
                let first_k = ts.checked_sub(period)?.checked_div(step)?.checked_add(1)?;
                let last_k = size.checked_div(step)?;
                for k in first_k..=last_k {
                    out.push(Window {
                        start: period,
                        end: period.checked_add(k.checked_mul(step)?)?,
                    });
                }
            }
        }
        Some(())
    }

    /// For the pane-aligned kinds, the windows containing `ts` as a run of window ends:
    /// `(first, last)`, every [`pane`](Self::pane) ms from `first` to `last` inclusive, each
    /// end naming one window ([`ending_at`](Self::ending_at)). The same windows as
    /// [`assign`](Self::assign), computed in O(1), and an error exactly when `assign` fails.
    /// `None` for sessions.
    pub fn ends(&self, ts: i64) -> Result<Option<(i64, i64)>, Overflow> {
        let checked = || -> Option<Option<(i64, i64)>> {
            match *self {
                WindowKind::Tumbling { size } => {
                    let end = ts
                        .checked_sub(ts.checked_rem_euclid(size)?)?
                        .checked_add(size)?;
                    Some(Some((end, end)))
                }
                WindowKind::Sliding { size, slide } => {
                    let last = ts.checked_sub(ts.checked_rem_euclid(slide)?)?;
                    let n = size.checked_div(slide)?;
                    let first = last.checked_sub(n.checked_sub(1)?.checked_mul(slide)?)?;
                    Some(Some((first.checked_add(size)?, last.checked_add(size)?)))
                }
                WindowKind::Cumulative { size, step } => {
                    let period = ts.checked_sub(ts.checked_rem_euclid(size)?)?;
                    let first_k = ts.checked_sub(period)?.checked_div(step)?.checked_add(1)?;
                    let first = period.checked_add(first_k.checked_mul(step)?)?;
                    Some(Some((first, period.checked_add(size)?)))
                }
                WindowKind::Session { .. } => Some(None),
            }
        };
        checked().ok_or(Overflow { ts })
    }

    /// For the pane-aligned kinds, the window ending at `end` (an end from
    /// [`ends`](Self::ends)): `[end - size, end)` for tumbling and sliding windows, the
    /// period's start to `end` for cumulative ones. For sessions, `[end, end)`.
    pub fn ending_at(&self, end: i64) -> Window {
        let start = match *self {
            WindowKind::Tumbling { size } | WindowKind::Sliding { size, .. } => {
                end.saturating_sub(size)
            }
            WindowKind::Cumulative { size, step } => {
                // The last step of a period ends at its end: its start is the period's.
                let inside = end.saturating_sub(step);
                inside.saturating_sub(inside.rem_euclid(size.max(1)))
            }
            WindowKind::Session { .. } => end,
        };
        Window { start, end }
    }

    /// Most windows one event belongs to: `size / slide` (sliding), `size / step`
    /// (cumulative), 1 otherwise (a session event joins one session).
    pub fn windows_per_event(&self) -> u64 {
        let ratio = |a: i64, b: i64| u64::try_from(a.checked_div(b).unwrap_or(0)).unwrap_or(0);
        match *self {
            WindowKind::Tumbling { .. } | WindowKind::Session { .. } => 1,
            WindowKind::Sliding { size, slide } => ratio(size, slide),
            WindowKind::Cumulative { size, step } => ratio(size, step),
        }
    }

    /// The pane length: the gcd of size and slide, here the slide (it divides the size),
    /// the cumulative step, or the tumbling size. Every window is a run of whole panes.
    /// `None` for sessions, whose bounds follow the events.
    pub fn pane(&self) -> Option<i64> {
        match *self {
            WindowKind::Tumbling { size } => Some(size),
            WindowKind::Sliding { slide, .. } => Some(slide),
            WindowKind::Cumulative { step, .. } => Some(step),
            WindowKind::Session { .. } => None,
        }
    }

    /// Whether windows of this kind merge per key (sessions).
    pub fn is_session(&self) -> bool {
        matches!(self, WindowKind::Session { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(kind: WindowKind, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        kind.assign(ts, &mut out).expect("in range");
        out.into_iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn tumbling_boundaries_and_negative_times() {
        let k = WindowKind::Tumbling { size: 5000 };
        assert_eq!(windows(k, 0), vec![(0, 5000)]);
        assert_eq!(windows(k, 4999), vec![(0, 5000)]);
        assert_eq!(windows(k, 5000), vec![(5000, 10000)], "end is exclusive");
        // -1 ms is in [-5000, 0): rem_euclid(-1, 5000) = 4999.
        assert_eq!(windows(k, -1), vec![(-5000, 0)]);
        assert_eq!(windows(k, -5000), vec![(-5000, 0)]);
        assert_eq!(windows(k, -5001), vec![(-10000, -5000)]);
    }

    #[test]
    fn sliding_three_by_one() {
        let k = WindowKind::Sliding {
            size: 3000,
            slide: 1000,
        };
        // 2500 lies in [0,3000), [1000,4000), [2000,5000).
        assert_eq!(
            windows(k, 2500),
            vec![(0, 3000), (1000, 4000), (2000, 5000)]
        );
        // 3000 is on a boundary: [1000,4000), [2000,5000), [3000,6000) — not [0,3000).
        assert_eq!(
            windows(k, 3000),
            vec![(1000, 4000), (2000, 5000), (3000, 6000)]
        );
        // -1 lies in [-3000,0), [-2000,1000), [-1000,2000).
        assert_eq!(
            windows(k, -1),
            vec![(-3000, 0), (-2000, 1000), (-1000, 2000)]
        );
        // slide == size behaves as tumbling.
        let t = WindowKind::Sliding {
            size: 1000,
            slide: 1000,
        };
        assert_eq!(windows(t, 1500), vec![(1000, 2000)]);
    }

    #[test]
    fn cumulative_so_far_today() {
        let day = 86_400_000;
        let hour = 3_600_000;
        let k = WindowKind::Cumulative {
            size: day,
            step: 6 * hour,
        };
        // 07:30 on day 1: in [day, day+12h), [day, day+18h), [day, day+24h).
        let ts = day + 7 * hour + 30 * 60_000;
        assert_eq!(
            windows(k, ts),
            vec![
                (day, day + 12 * hour),
                (day, day + 18 * hour),
                (day, 2 * day)
            ]
        );
        // exactly 06:00 belongs to the 12h window on, not the 6h one.
        assert_eq!(windows(k, day + 6 * hour).len(), 3);
        assert_eq!(windows(k, day).len(), 4);
        // 23:59:59.999 only in the full-day window.
        assert_eq!(windows(k, 2 * day - 1), vec![(day, 2 * day)]);
        // before the epoch: -1 ms is in the last step of day -1.
        assert_eq!(windows(k, -1), vec![(-day, 0)]);
    }

    #[test]
    fn session_proto_window() {
        assert_eq!(
            windows(WindowKind::Session { gap: 30 }, -10),
            vec![(-10, 20)]
        );
    }

    use crate::time::{MAX_DURATION_MS, MAX_EVENT_TIME, MIN_EVENT_TIME};

    const DAY: i64 = 86_400_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn ends_name_the_assigned_windows_and_overflow_alike() {
        // Sliding 3 s / 1 s at 2 500: ends 3 000, 4 000, 5 000 (see sliding_three_by_one).
        let k = WindowKind::Sliding {
            size: 3000,
            slide: 1000,
        };
        assert_eq!(k.ends(2500), Ok(Some((3000, 5000))));
        assert_eq!(
            k.ending_at(4000),
            Window {
                start: 1000,
                end: 4000
            }
        );
        // Cumulative 1 day / 6 h at 07:30 of day 1: ends 12 h, 18 h, 24 h of day 1; the
        // window ending at midnight of day 2 starts at day 1, not day 2.
        let c = WindowKind::Cumulative {
            size: DAY,
            step: 6 * HOUR,
        };
        assert_eq!(
            c.ends(DAY + 7 * HOUR + 30 * 60_000),
            Ok(Some((DAY + 12 * HOUR, 2 * DAY)))
        );
        assert_eq!(
            c.ending_at(2 * DAY),
            Window {
                start: DAY,
                end: 2 * DAY
            }
        );
        assert_eq!(WindowKind::Session { gap: 5 }.ends(7), Ok(None));
        // Bounds past i64: both refuse the event.
        for kind in [WindowKind::Tumbling { size: 1000 }, k, c] {
            assert_eq!(kind.ends(i64::MAX), Err(Overflow { ts: i64::MAX }));
            assert!(kind.assign(i64::MAX, &mut Vec::new()).is_err());
        }
        assert_eq!(k.ends(i64::MIN), Err(Overflow { ts: i64::MIN }));
        assert!(k.assign(i64::MIN, &mut Vec::new()).is_err());
    }

    #[test]
    fn tumbling_at_the_range_edges() {
        let k = WindowKind::Tumbling { size: 1000 };
        // MAX is ...799 999 ms: the last second of 9999 is [..799 000, ..800 000).
        assert_eq!(
            windows(k, MAX_EVENT_TIME),
            vec![(MAX_EVENT_TIME - 999, MAX_EVENT_TIME + 1)]
        );
        // MIN is a whole second (midnight).
        assert_eq!(
            windows(k, MIN_EVENT_TIME),
            vec![(MIN_EVENT_TIME, MIN_EVENT_TIME + 1000)]
        );
        // The longest size: aligned to it, containing ts, both ends in i64.
        let k = WindowKind::Tumbling {
            size: MAX_DURATION_MS,
        };
        for ts in [MIN_EVENT_TIME, -1, 0, MAX_EVENT_TIME] {
            let w = windows(k, ts);
            assert_eq!(w.len(), 1);
            let (s, e) = w[0];
            assert!(s <= ts && ts < e && s.rem_euclid(MAX_DURATION_MS) == 0);
            assert_eq!(e - s, MAX_DURATION_MS);
        }
    }

    #[test]
    fn sliding_at_the_range_edges() {
        let k = WindowKind::Sliding {
            size: 3000,
            slide: 1000,
        };
        let last = MAX_EVENT_TIME - 999;
        assert_eq!(
            windows(k, MAX_EVENT_TIME),
            vec![
                (last - 2000, last + 1000),
                (last - 1000, last + 2000),
                (last, last + 3000)
            ]
        );
        assert_eq!(
            windows(k, MIN_EVENT_TIME),
            vec![
                (MIN_EVENT_TIME - 2000, MIN_EVENT_TIME + 1000),
                (MIN_EVENT_TIME - 1000, MIN_EVENT_TIME + 2000),
                (MIN_EVENT_TIME, MIN_EVENT_TIME + 3000)
            ]
        );
        // The legitimate large budget: 1 h sliding by 1 s is 3600 windows.
        let k = WindowKind::Sliding {
            size: HOUR,
            slide: 1000,
        };
        assert_eq!(k.windows_per_event(), 3600);
        let w = windows(k, MAX_EVENT_TIME);
        assert_eq!(w.len(), 3600);
        assert_eq!(w[0], (last - HOUR + 1000, last + 1000));
        assert_eq!(w[3599], (last, last + HOUR));
    }

    #[test]
    fn session_at_the_range_edges() {
        let k = WindowKind::Session {
            gap: MAX_DURATION_MS,
        };
        assert_eq!(
            windows(k, MAX_EVENT_TIME),
            vec![(MAX_EVENT_TIME, MAX_EVENT_TIME + MAX_DURATION_MS)]
        );
        assert_eq!(
            windows(k, MIN_EVENT_TIME),
            vec![(MIN_EVENT_TIME, MIN_EVENT_TIME + MAX_DURATION_MS)]
        );
    }

    #[test]
    fn cumulative_at_the_range_edges() {
        let k = WindowKind::Cumulative {
            size: DAY,
            step: 6 * HOUR,
        };
        // 9999-12-31T23:59:59.999 is the last ms of its day: only the full-day window.
        let end = MAX_EVENT_TIME + 1;
        assert_eq!(windows(k, MAX_EVENT_TIME), vec![(end - DAY, end)]);
        // 1000-01-01T00:00 starts a day: all four windows.
        let m = MIN_EVENT_TIME;
        assert_eq!(
            windows(k, m),
            vec![
                (m, m + 6 * HOUR),
                (m, m + 12 * HOUR),
                (m, m + 18 * HOUR),
                (m, m + DAY)
            ]
        );
        // The legitimate large budget: 1 day growing by 1 minute is 1440 windows.
        let k = WindowKind::Cumulative {
            size: DAY,
            step: 60_000,
        };
        assert_eq!(k.windows_per_event(), 1440);
        assert_eq!(windows(k, m).len(), 1440);
    }

    #[test]
    fn bounds_that_overflow_are_refused_not_wrapped() {
        // Regression: an epoch-ms string near i64::MAX used to make sliding assignment loop
        // on a wrapped `start + slide` until the allocator aborted, and tumbling/cumulative
        // windows wrap to negative ends.
        let kinds = [
            WindowKind::Tumbling { size: 1000 },
            WindowKind::Sliding {
                size: 3000,
                slide: 1000,
            },
            WindowKind::Session { gap: 1000 },
            WindowKind::Cumulative {
                size: DAY,
                step: HOUR,
            },
        ];
        for k in kinds {
            for ts in [i64::MAX, i64::MAX - 1] {
                let mut out = vec![Window { start: 1, end: 2 }];
                assert_eq!(k.assign(ts, &mut out), Err(Overflow { ts }), "{k:?}");
                assert_eq!(out, [Window { start: 1, end: 2 }], "nothing appended");
            }
        }
        // i64::MIN: rem_euclid is positive, so the aligned start would go below MIN.
        for k in [kinds[0], kinds[1], kinds[3]] {
            let mut out = Vec::new();
            assert!(k.assign(i64::MIN, &mut out).is_err(), "{k:?}");
            assert!(out.is_empty());
        }
    }
}

/// Property tests (`proptest`; `cargo fuzz` needs nightly): for any in-range event time and
/// any window config within the default budget, assignment never overflows, every window
/// contains the time, starts are aligned, and the count is what the semantics say.
#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    use super::*;
    use crate::time::{MAX_DURATION_MS, MAX_EVENT_TIME, MIN_EVENT_TIME};

    /// The default `max_windows_per_event`.
    const BUDGET: i64 = 10_000;

    /// A unit (slide or step) and how many fit in the size: small and huge units both.
    fn unit_and_count() -> impl Strategy<Value = (i64, i64)> {
        (
            prop_oneof![1i64..=1000, 1i64..=MAX_DURATION_MS],
            prop_oneof![1i64..=8, 1i64..=BUDGET],
        )
            .prop_map(|(unit, n)| (unit.min(MAX_DURATION_MS / n).max(1), n))
    }

    fn kinds() -> impl Strategy<Value = WindowKind> {
        prop_oneof![
            (1i64..=MAX_DURATION_MS).prop_map(|size| WindowKind::Tumbling { size }),
            (1i64..=MAX_DURATION_MS).prop_map(|gap| WindowKind::Session { gap }),
            unit_and_count().prop_map(|(slide, n)| WindowKind::Sliding {
                size: slide * n,
                slide
            }),
            unit_and_count().prop_map(|(step, n)| WindowKind::Cumulative {
                size: step * n,
                step
            }),
        ]
    }

    fn times() -> impl Strategy<Value = i64> {
        prop_oneof![
            MIN_EVENT_TIME..=MAX_EVENT_TIME,
            Just(MIN_EVENT_TIME),
            Just(MAX_EVENT_TIME),
            -2000i64..2000,
        ]
    }

    fn config() -> Config {
        Config {
            cases: 512,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x0a55_1960),
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn assignment_is_exact_and_never_overflows(kind in kinds(), ts in times()) {
            let mut out = Vec::new();
            prop_assert!(kind.assign(ts, &mut out).is_ok(), "{kind:?} at {ts}");
            prop_assert!(out.iter().all(|w| w.contains(ts)), "{kind:?} at {ts}: {out:?}");
            prop_assert!(out.windows(2).all(|p| p[0].end < p[1].end), "ascending ends");
            prop_assert!(out.len() as u64 <= kind.windows_per_event());
            // `ends` names the same windows as a run of ends, one pane apart.
            match (kind.ends(ts), kind.pane()) {
                (Ok(Some((first, last))), Some(pane)) => {
                    let named: Vec<Window> = (0..=(last - first) / pane)
                        .map(|i| kind.ending_at(first + i * pane))
                        .collect();
                    prop_assert_eq!(&named, &out, "{:?} at {}", kind, ts);
                }
                (Ok(None), None) => {}
                other => prop_assert!(false, "{kind:?} at {ts}: {other:?}"),
            }
            match kind {
                WindowKind::Tumbling { size } => {
                    prop_assert_eq!(out.len(), 1);
                    prop_assert_eq!(out[0].start.rem_euclid(size), 0);
                    prop_assert_eq!(out[0].end - out[0].start, size);
                }
                WindowKind::Session { gap } => {
                    prop_assert_eq!(&out, &vec![Window { start: ts, end: ts + gap }]);
                }
                WindowKind::Sliding { size, slide } => {
                    prop_assert_eq!(out.len() as i64, size / slide);
                    for w in &out {
                        prop_assert_eq!(w.start.rem_euclid(slide), 0);
                        prop_assert_eq!(w.end - w.start, size);
                    }
                }
                WindowKind::Cumulative { size, step } => {
                    // Windows [P, P + k·step) with P + k·step > ts: k > (ts - P) / step.
                    let period = ts - ts.rem_euclid(size);
                    prop_assert_eq!(out.len() as i64, size / step - (ts - period) / step);
                    for w in &out {
                        prop_assert_eq!(w.start, period);
                        prop_assert_eq!((w.end - w.start) % step, 0);
                    }
                    prop_assert_eq!(out.last().map(|w| w.end), Some(period + size));
                }
            }
        }
    }
}
