//! Worked examples: firing order, lateness, revisions, sessions, limits, and the
//! galloping searches.

use std::collections::VecDeque;

use super::Push;
use crate::value::{Key, Value};
use crate::window::buffer::{from_back, from_front};
use crate::window::{Firing, Placement, StateLimits, StoredEvent, WindowKind, WindowOperator};

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
