//! What a guest may use: the Store data ([`HostState`]), WASI that grants no capabilities
//! (`guest_wasi`), and the caps on a Store's memory, tables, instances and memories
//! ([`MemoryLimiter`], the `MAX_*` constants). It does not create Stores or call guests;
//! `instance.rs` does.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::Owner;

/// WASI that grants nothing: no preopened files, no environment, no arguments, no
/// sockets or name lookups (denied explicitly, on top of wasmtime-wasi's defaults). Clocks
/// and random numbers stay available (Rust's `HashMap` seeds itself from them). Stdout
/// and stderr go to the tenant's log, rate-limited; panics written to stderr are also kept
/// in `panics`.
pub(super) fn guest_wasi(
    owner: &Owner,
    lines_per_second: u32,
    panics: &super::PanicCapture,
) -> WasiCtx {
    let log =
        |stream| super::GuestLog::new(&owner.tenant, &owner.pipeline, stream, lines_per_second);
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .stdout(log("stdout"))
        .stderr(log("stderr").with_panic_capture(panics.clone()))
        .build()
}

/// Store data: WASI with no capabilities, and the memory limiter.
pub(super) struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The most table elements one Store may hold, summed over all its tables: 100 000.
/// A Rust plugin's function tables hold a few hundred to a few thousand entries; without a
/// cap, tables sit outside the memory cap (a million elements is 8 MB of host memory each).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The most core instances one Store may create: 64 (a wasip2 component built by
/// `cargo`/`wit-bindgen` creates about ten, its WASI adapter included).
pub const MAX_INSTANCES: usize = 64;

/// The most linear memories one Store may hold: 8 (such components have one or two).
pub const MAX_MEMORIES: usize = 8;

/// The most tables one Store may hold: 32.
pub const MAX_TABLES: usize = 32;

/// Caps a Store's resources and remembers whether it had to refuse a growth.
///
/// The memory cap applies to the **sum** of all linear memories of the Store, not to each
/// memory: a component can hold several (its own and an adapter's), and a per-memory cap
/// would let it use a multiple of `cap`. Tables are capped by elements in total
/// ([`MAX_TABLE_ELEMENTS`]); instances, memories and tables are capped in number.
pub(crate) struct MemoryLimiter {
    cap: usize,
    /// Bytes of linear memory the Store holds now, all memories together.
    pub(super) memory: usize,
    /// Elements of all tables together.
    elements: usize,
    table_cap: usize,
    /// Whether a memory growth was refused since the call was armed.
    pub(super) refused: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(cap: usize) -> Self {
        MemoryLimiter {
            cap,
            memory: 0,
            elements: 0,
            table_cap: MAX_TABLE_ELEMENTS,
            refused: false,
        }
    }

    /// Grows `total` by `desired - current` if the result stays within `cap`. Checked and
    /// saturating: `desired` comes from the guest and may be anything.
    fn grow(total: &mut usize, current: usize, desired: usize, cap: usize) -> bool {
        let after = total
            .saturating_sub(current)
            .checked_add(desired)
            .filter(|after| *after <= cap);
        match after {
            Some(after) => {
                *total = after;
                true
            }
            None => false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = Self::grow(&mut self.memory, current, desired, self.cap);
        self.refused |= !ok;
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth was counted but did not happen; the Store is dropped after a failure
        // anyway, so the count is only ever too high, never too low.
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A refused table growth is a trap, not a memory error: `refused` stays as it is.
        Ok(Self::grow(
            &mut self.elements,
            current,
            desired,
            self.table_cap,
        ))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_cap_is_the_sum_of_all_memories_of_a_store() {
        // wasmtime calls `memory_growing(current, desired)` per memory, also for a memory's
        // initial size (current = 0). Two memories of 6 MiB under a 10 MiB cap: the second
        // must be refused although each alone fits.
        let mut l = MemoryLimiter::new(10 * MIB);
        assert!(l.memory_growing(0, 6 * MIB, None).unwrap(), "first memory");
        assert!(
            !l.memory_growing(0, 6 * MIB, None).unwrap(),
            "second memory"
        );
        assert!(l.refused);
        // A second memory of 3 MiB fits (6 + 3 = 9 MiB); then the first may grow by what
        // is left, 1 MiB, and not a byte more.
        assert!(
            l.memory_growing(0, 3 * MIB, None).unwrap(),
            "3 MiB second memory"
        );
        assert!(
            !l.memory_growing(6 * MIB, 8 * MIB, None).unwrap(),
            "6 → 8 MiB: 11 MiB"
        );
        assert!(
            l.memory_growing(6 * MIB, 7 * MIB, None).unwrap(),
            "6 → 7 MiB: 10 MiB"
        );
        assert!(
            !l.memory_growing(3 * MIB, 3 * MIB + 1, None).unwrap(),
            "one byte over"
        );
    }

    #[test]
    fn a_hostile_desired_size_does_not_overflow() {
        let mut l = MemoryLimiter::new(usize::MAX);
        assert!(l.memory_growing(0, 1, None).unwrap());
        assert!(!l.memory_growing(0, usize::MAX, None).unwrap());
        let mut l = MemoryLimiter::new(10);
        assert!(!l.table_growing(0, usize::MAX, None).unwrap());
    }

    #[test]
    fn tables_are_capped_in_elements_across_the_store() {
        let mut l = MemoryLimiter::new(usize::MAX);
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS - 10, None).unwrap());
        assert!(l.table_growing(0, 10, None).unwrap());
        assert!(!l.table_growing(0, 1, None).unwrap(), "over the cap by one");
        assert!(!l.table_growing(10, 1_000_000, None).unwrap());
        assert!(
            !l.refused,
            "a table refusal is not reported as a memory overrun"
        );
        assert_eq!(l.instances(), MAX_INSTANCES);
        assert_eq!(l.memories(), MAX_MEMORIES);
        assert_eq!(l.tables(), MAX_TABLES);
    }
}
