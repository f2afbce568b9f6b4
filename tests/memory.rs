//! What window state costs in memory, measured: heap bytes allocated per key and per window
//! kept for allowed lateness, counted by a wrapper around the system allocator. The figures
//! BENCHMARKS.md gives ("Memory per key and per window") come from this test:
//! `cargo test -p weir --test memory -- --nocapture` prints them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use weir::value::{Key, Value};
use weir::window::{StoredEvent, WindowKind, WindowOperator};

/// The system allocator, counting the bytes in use.
struct Counting;

static IN_USE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the counter is only
// arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn in_use() -> isize {
    IN_USE.load(Ordering::Relaxed)
}

fn key(i: u32) -> Key {
    Key(vec![Value::Str(format!("SYM{i:05}"))])
}

const KEYS: u32 = 20_000;

#[test]
fn bytes_per_key_per_event_and_per_kept_window() {
    // Sliding 3 s / 1 s windows, 10 s of allowed lateness: every key gets one event
    // (3 open windows); then the watermark fires them, and they are kept.
    let mut op = WindowOperator::new(
        WindowKind::Sliding {
            size: 3_000,
            slide: 1_000,
        },
        10_000,
    );
    let values = || -> Box<[Value]> { Box::new([Value::F64(1.5), Value::I64(3)]) };
    // The keys themselves are built before the count starts: the caller owns them until
    // they are placed, and the operator keeps them (counted below with the key's state).
    let keys: Vec<Key> = (0..KEYS).map(key).collect();
    let before = in_use();
    for k in keys {
        let _ = op.process(500, k, values(), i64::MIN);
    }
    let placed = in_use() - before;
    let per_event = StoredEvent::estimated_bytes(&values()) as isize;
    let per_key = placed / KEYS as isize;
    // Fire every window (the watermark past their ends); they stay for the lateness.
    let before_fire = in_use();
    let due = op.take_due(Some(5_000));
    let fired = due.len();
    for d in due {
        op.fired(d);
    }
    let kept = in_use() - before_fire;
    let per_kept = kept / fired as isize;
    eprintln!(
        "{KEYS} keys with one event each: {per_key} bytes per key placed (the event's estimate: {per_event} bytes); {fired} windows fired and kept: {per_kept} bytes per kept window"
    );
    // What BENCHMARKS.md states: a key with one event under 1.5 KiB (its event's estimate
    // included), a kept window under 64 bytes.
    assert!(
        per_key < 1_536,
        "{per_key} bytes per key, {per_event} of them the event"
    );
    assert!(per_kept < 64, "{per_kept} bytes per kept window");
    assert!(per_kept > 0, "firing kept nothing: {kept} bytes");
}
