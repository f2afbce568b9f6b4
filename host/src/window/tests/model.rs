//! The operator against a plain model of the semantics (docs/semantics.md "Time and
//! windows"): every window an explicit entry, every event copied into each window it is on
//! time for.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use super::Push;
use crate::value::{Key, Value};
use crate::window::{Firing, Placement, WindowKind, WindowOperator};

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
