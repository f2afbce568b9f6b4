//! Windows: which windows an event belongs to, the host-owned state of open windows, and
//! when they fire.
//!
//! Owns the semantics of docs/semantics.md "Time and windows": epoch-aligned half-open
//! windows, lateness against the watermark as it was before each event, firing order
//! `(end, start, key)`, allowed lateness with revisions, and early firings in update mode.
//! It does not call plugins: the pipeline pulls the windows due ([`WindowOperator::take_due`])
//! and, for incremental plugins, plans pane merges with [`panes::PaneStacks`].

mod assign;
mod buffer;
mod ends;
mod key_windows;
mod limits;
mod operator;
pub mod panes;
mod revisions;
mod snapshot;
#[cfg(test)]
mod tests;

pub use assign::Overflow;
pub use assign::{Window, WindowKind};
pub use buffer::{EVENT_OVERHEAD_BYTES, StoredEvent};
pub use limits::StateLimits;
pub use operator::{Due, Firing, KeySnapshot, Placement, WindowOperator};
pub use revisions::KeptWindow;
