//! A replay after a restart without a checkpoint: the windows a commit recorded as fired
//! and kept ([`WindowOperator::kept_windows`]) continue their revisions, so that every
//! firing after the commit is the one an uninterrupted run makes: same key, window,
//! revision and events.

use super::Push;
use crate::value::{Key, Value};
use crate::window::{Firing, KeptWindow, Placement, WindowKind, WindowOperator};

const NO_W: i64 = i64::MIN;

/// A firing as plain data, with the index of the event after which it came (`usize::MAX`:
/// the end-of-input flush): (index, key, start, end, revision, event times).
type Fired = (usize, String, i64, i64, u32, Vec<i64>);

/// 240 events of keys a, b and c, 3 ms apart, with every 5th 20 ms behind and every 7th
/// 40 ms behind: with a 5 ms delay some are late but inside a 25 ms allowed lateness (a
/// window fires again), some late for good.
fn events() -> Vec<(&'static str, i64)> {
    (0..240)
        .map(|i: i64| {
            let key = ["a", "b", "c"][(i % 3) as usize];
            let behind = if i % 7 == 3 {
                40
            } else if i % 5 == 2 {
                20
            } else {
                0
            };
            (key, 3 * i - behind)
        })
        .collect()
}

/// Runs `events` with a 5 ms watermark delay; with `replay` = (`cut`, `floor`,
/// `recorded`), the events before `cut` were read before a commit made at watermark
/// `floor` and are replayed, with `recorded` handed to the operator first. Returns the
/// firings and the times of the events reported late (replayed ones are not reported).
fn run(
    kind: WindowKind,
    events: &[(&str, i64)],
    replay: Option<(usize, i64, Vec<KeptWindow>)>,
) -> (Vec<Fired>, Vec<i64>) {
    let mut op = WindowOperator::new(kind, 25);
    let (cut, floor) = match replay {
        Some((cut, floor, recorded)) => {
            op.expect_replayed(recorded);
            (cut, floor)
        }
        None => (0, NO_W),
    };
    let mut fired = Vec::new();
    let mut late = Vec::new();
    let mut max_ts = NO_W;
    // As the pipeline does: the watermark comes from the events read, and a replayed
    // event is placed at no lower watermark than the commit's.
    let w = |max_ts: i64| if max_ts == NO_W { NO_W } else { max_ts - 5 };
    for (i, &(k, ts)) in events.iter().enumerate() {
        let replayed = i < cut;
        op.set_replaying(replayed);
        let at = w(max_ts).max(floor);
        let placed = op.process(ts, Key(vec![Value::Str(k.into())]), Box::new([]), at);
        if let Placement::Late(_) = placed
            && !replayed
        {
            late.push(ts);
        }
        if i + 1 == cut {
            op.end_replay(0);
        }
        let before = w(max_ts);
        max_ts = max_ts.max(ts);
        // Windows fire when the watermark moves: a late event waits for the next step.
        if w(max_ts) != before {
            op.advance(w(max_ts), &mut collect(i, &mut fired));
        }
    }
    op.set_replaying(false);
    op.flush(&mut collect(usize::MAX, &mut fired));
    (fired, late)
}

fn collect(i: usize, out: &mut Vec<Fired>) -> impl FnMut(Firing<'_>) -> bool + '_ {
    move |f: Firing<'_>| {
        let Value::Str(k) = &f.key.0[0] else {
            panic!("a string key")
        };
        out.push((
            i,
            k.clone(),
            f.window.start,
            f.window.end,
            f.revision,
            f.events.map(|e| e.ts).collect(),
        ));
        true
    }
}

/// What the commit after event `cut - 1` records: the kept windows and the replay floor.
fn commit_at(kind: WindowKind, events: &[(&str, i64)], cut: usize) -> (Vec<KeptWindow>, i64) {
    let mut op = WindowOperator::new(kind, 25);
    let mut max_ts = NO_W;
    for &(k, ts) in &events[..cut] {
        let w = if max_ts == NO_W { NO_W } else { max_ts - 5 };
        let _ = op.process(ts, Key(vec![Value::Str(k.into())]), Box::new([]), w);
        max_ts = max_ts.max(ts);
        if max_ts - 5 != w {
            op.advance(max_ts - 5, &mut |_| true);
        }
    }
    let w = max_ts - 5;
    (op.kept_windows(w), w)
}

const KINDS: [WindowKind; 4] = [
    WindowKind::Tumbling { size: 30 },
    WindowKind::Sliding {
        size: 30,
        slide: 10,
    },
    WindowKind::Session { gap: 12 },
    WindowKind::Cumulative { size: 60, step: 20 },
];

#[test]
fn a_replay_from_any_commit_fires_what_the_uninterrupted_run_fired_after_it() {
    let events = events();
    for kind in KINDS {
        let (whole, whole_late) = run(kind, &events, None);
        // The input does what the test is for: windows fire again inside their lateness.
        assert!(
            whole.iter().any(|f| f.4 >= 1),
            "{kind:?}: no window fired twice"
        );
        for cut in 1..events.len() {
            let (recorded, floor) = commit_at(kind, &events, cut);
            let (again, late) = run(kind, &events, Some((cut, floor, recorded)));
            let after: Vec<Fired> = whole.iter().filter(|f| f.0 >= cut).cloned().collect();
            assert_eq!(
                again, after,
                "{kind:?}, replayed from the commit after event {cut}"
            );
            let late_after: Vec<i64> = whole_late_from(&events, &whole_late, cut);
            assert_eq!(late, late_after, "{kind:?}: late events after {cut}");
        }
    }
}

/// The late events of the uninterrupted run that come at or after event `cut` (their
/// times, in order: the test input has no two late events at one time before and after).
fn whole_late_from(events: &[(&str, i64)], whole_late: &[i64], cut: usize) -> Vec<i64> {
    let before = events[..cut]
        .iter()
        .filter(|(_, ts)| whole_late.contains(ts))
        .count();
    whole_late[before..].to_vec()
}

#[test]
fn without_the_recorded_windows_a_replay_fires_kept_windows_again_from_revision_zero() {
    // What the recording is for: the same replays given nothing fire a kept window's
    // revision 0 a second time, with other events than the first time.
    let events = events();
    let kind = WindowKind::Tumbling { size: 30 };
    let (whole, _) = run(kind, &events, None);
    let differs = (1..events.len()).filter(|&cut| {
        let (_, floor) = commit_at(kind, &events, cut);
        let (again, _) = run(kind, &events, Some((cut, floor, Vec::new())));
        let after: Vec<Fired> = whole.iter().filter(|f| f.0 >= cut).cloned().collect();
        again != after
    });
    assert!(differs.count() > events.len() / 4);
}
