//! Consumer-group rebalances: dropping the keys of revoked partitions.

use super::Push;
use crate::value::{Key, Value};
use crate::window::{Firing, Placement, StoredEvent, WindowKind, WindowOperator};

fn key(s: &str) -> Key {
    Key(vec![Value::Str(s.into())])
}

#[test]
fn dropping_a_partition_drops_its_keys_state_and_fires_none_of_their_windows() {
    // Tumbling 10 ms. Key a from partition 0: events at 1, 12 (windows [0,10), [10,20)).
    // Key b from partition 1: events at 3, 15, 16. Key c from partition 2: event at 5.
    let mut op = WindowOperator::new(WindowKind::Tumbling { size: 10 }, 0);
    let place = |op: &mut WindowOperator, p: u32, k: &str, ts: i64| {
        op.set_partition(p);
        let placed = op.process(ts, key(k), Box::new([Value::I64(ts)]), i64::MIN);
        assert_eq!(placed, Placement::Added(1));
    };
    place(&mut op, 0, "a", 1);
    place(&mut op, 1, "b", 3);
    place(&mut op, 2, "c", 5);
    place(&mut op, 0, "a", 12);
    place(&mut op, 1, "b", 15);
    place(&mut op, 1, "b", 16);
    assert_eq!((op.open_windows(), op.buffered_events()), (5, 6));
    // Partitions 1 and 7 revoked (7 holds no key): b's 2 windows and 3 events go.
    assert_eq!(op.drop_partitions(&[1, 7]), 1);
    assert_eq!((op.open_windows(), op.buffered_events()), (3, 3));
    let bytes = 3 * StoredEvent::estimated_bytes(&[Value::I64(0)]);
    assert_eq!(op.buffered_bytes(), bytes);
    // Every window ends by W = 20: only a's and c's fire, in (end, start, key) order.
    let mut fired = Vec::new();
    op.advance(20, &mut |f: Firing<'_>| {
        fired.push((f.key.clone(), f.window.start, f.events.len()));
        true
    });
    assert_eq!(
        fired,
        [(key("a"), 0, 1), (key("c"), 0, 1), (key("a"), 10, 1)]
    );
    assert_eq!((op.open_windows(), op.buffered_events()), (0, 0));
    // b comes back (its partition reassigned, replayed): a fresh state, revision 0.
    place(&mut op, 1, "b", 3);
    let mut again = Vec::new();
    op.flush(&mut |f: Firing<'_>| {
        again.push((f.key.clone(), f.window.start, f.revision));
        true
    });
    assert_eq!(again, [(key("b"), 0, 0)]);
}
