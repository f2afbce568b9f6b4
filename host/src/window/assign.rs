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

impl WindowKind {
    /// Appends to `out` the windows that contain `ts`, by ascending end.
    ///
    /// For sessions this is the proto-session `[ts, ts + gap)`, before merging.
    pub fn assign(&self, ts: i64, out: &mut Vec<Window>) {
        match *self {
            WindowKind::Tumbling { size } => {
                let start = ts - ts.rem_euclid(size);
                out.push(Window {
                    start,
                    end: start.saturating_add(size),
                });
            }
            WindowKind::Sliding { size, slide } => {
                let last = ts - ts.rem_euclid(slide);
                // Earliest start with start + size > ts.
                let mut start = last - (size / slide - 1) * slide;
                while start <= last {
                    out.push(Window {
                        start,
                        end: start.saturating_add(size),
                    });
                    start += slide;
                }
            }
            WindowKind::Session { gap } => out.push(Window {
                start: ts,
                end: ts.saturating_add(gap),
            }),
            WindowKind::Cumulative { size, step } => {
                let period = ts - ts.rem_euclid(size);
                let first_k = (ts - period) / step + 1;
                for k in first_k..=size / step {
                    out.push(Window {
                        start: period,
                        end: period + k * step,
                    });
                }
            }
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
        kind.assign(ts, &mut out);
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
}
