//! One key's event buffer: [`StoredEvent`], its byte estimate, the byte sum over events,
//! and the galloping searches that find a window's range in a time-ordered buffer.

use std::borrow::Borrow;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::value::Value;

/// One buffered event: its time and the value of every schema field, in schema order (the
/// whole event, so that a hot-swapped version reading other fields finds them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Event time, epoch ms.
    pub ts: i64,
    /// Values of the schema's fields, in schema order.
    pub values: Box<[Value]>,
}

/// Fixed part of the byte estimate of one buffered event: its time, the boxed slice of its
/// values and its slot in the key's buffer (64 bytes).
pub const EVENT_OVERHEAD_BYTES: u64 = 64;

impl StoredEvent {
    /// Estimated bytes an event with these values holds in window state:
    /// [`EVENT_OVERHEAD_BYTES`], plus one `Value` slot per field (24 bytes on 64-bit
    /// targets), plus the length of every string value. Saturating, so it never wraps.
    pub fn estimated_bytes(values: &[Value]) -> u64 {
        let slot = std::mem::size_of::<Value>() as u64;
        values.iter().fold(EVENT_OVERHEAD_BYTES, |acc, v| {
            let heap = match v {
                Value::Str(s) => s.len() as u64,
                _ => 0,
            };
            acc.saturating_add(slot).saturating_add(heap)
        })
    }
}

/// Estimated bytes of `events`: the sum of their [`StoredEvent::estimated_bytes`],
/// saturating.
pub(super) fn bytes_of<E: Borrow<StoredEvent>>(events: impl IntoIterator<Item = E>) -> u64 {
    events.into_iter().fold(0u64, |acc, e| {
        acc.saturating_add(StoredEvent::estimated_bytes(&e.borrow().values))
    })
}

/// How many events are before `t` (`events` sorted by time), searched by galloping from
/// the front: O(log n) where n is that count.
pub(super) fn from_front(events: &VecDeque<StoredEvent>, t: i64) -> usize {
    let before = |i: usize| events.get(i).is_some_and(|e| e.ts < t);
    let mut hi = 1;
    while hi < events.len() && before(hi - 1) {
        hi = hi.saturating_mul(2);
    }
    search(events, hi / 2, hi.min(events.len()), t)
}

/// How many events are before `t` (`events` sorted by time), searched by galloping from
/// the back: O(log n) where n is the number of events at or after `t`.
pub(super) fn from_back(events: &VecDeque<StoredEvent>, t: i64) -> usize {
    let len = events.len();
    let at_or_after = |back: usize| events.get(len - back).is_some_and(|e| e.ts >= t);
    let mut back = 1;
    while back < len && at_or_after(back) {
        back = back.saturating_mul(2);
    }
    let back = back.min(len);
    search(events, len - back, len - back / 2, t)
}

/// The first index in `lo..hi` whose event is not before `t`, given that every event
/// before `lo` is and none from `hi` on is.
fn search(events: &VecDeque<StoredEvent>, mut lo: usize, mut hi: usize, t: i64) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if events.get(mid).is_some_and(|e| e.ts < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
