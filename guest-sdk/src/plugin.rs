//! The [`Plugin`] trait a tenant implements, and the [`Window`] it is called
//! for. How the trait is exported to the host lives in `adapter.rs`.

use crate::{Batch, Describe, Params, Result, Row};

/// A half-open event-time window `[start, end)`, in milliseconds since the
/// Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Inclusive start, epoch milliseconds.
    pub start: i64,
    /// Exclusive end, epoch milliseconds.
    pub end: i64,
}

/// A whole-window aggregation plugin.
///
/// The host owns time, windows and state; a plugin is a pure function of its
/// arguments plus what [`configure`](Plugin::configure) set up. Register the
/// type with [`export_plugin!`](crate::export_plugin).
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from the pipeline's `[plugin.params]`.
    ///
    /// Called once per instance before anything else, so one plugin build can
    /// serve many pipelines (which field, how many decimals, ...). Validate
    /// the parameters here: an error rejects the deployment with its message,
    /// before any event is processed.
    fn configure(params: &Params) -> Result<Self>;

    /// Declares the input fields read and the output fields written, as
    /// configured.
    ///
    /// The host checks the inputs against the pipeline schema at deploy time
    /// and passes only those columns; the outputs name the result columns.
    fn describe(&self) -> Describe;

    /// Decides, per event, whether it counts: `true` keeps it.
    ///
    /// Called on ingest batches only when [`describe`](Plugin::describe)
    /// says [`Describe::with_filter`]; the default keeps every event. The
    /// result must have one entry per event. Filtering early keeps dropped
    /// events out of window state, which is cheaper than skipping them in
    /// `aggregate`. An `Err` (or a wrong length) traps the instance, because
    /// the host cannot tell which events to keep.
    fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
        Ok(vec![true; events.len()])
    }

    /// Turns one window's events for one key into result rows.
    ///
    /// `key` holds the pipeline's key fields by name, `events` every event of
    /// that key in `window`, sorted by event time. Called when the window
    /// fires (again for each re-firing), so it may see the same window more
    /// than once.
    fn aggregate(&self, key: &Row, window: Window, events: &Batch) -> Result<Vec<Row>>;
}

/// An incremental aggregation plugin: the host keeps one state per key and
/// pane (a pane is the gcd of a window's size and slide), adds each event to
/// exactly one state, and builds a window's state by merging pane states.
///
/// Use it when windows are large or overlap a lot (a 1 h window sliding 1 s,
/// "so far today" at a 1 min step): an event costs one `add` however many
/// windows contain it, and a firing costs O(1) merges amortized. Functions that
/// need every event at once (median, percentiles) stay [`Plugin`]s.
///
/// The state is a plain Rust value; the SDK serializes it (serde, `postcard`)
/// for the host, which stores it as opaque bytes, so it must survive a round
/// trip through serde. Register the type with
/// [`export_incremental!`](crate::export_incremental).
///
/// `merge` must be associative (`merge(merge(a, b), c)` equals
/// `merge(a, merge(b, c))`), and `init()` its identity; the host relies on both.
/// Floating-point sums are associative only up to rounding, so rows may differ
/// from a whole-window plugin in the last bits.
pub trait Incremental: Sized + 'static {
    /// The per-pane and per-window state.
    type State: serde::Serialize + serde::de::DeserializeOwned + Clone;

    /// Bump when the state's encoding changes but its Rust type name does
    /// not. Pane states are handed from one version to the next on a hot swap
    /// only when the type name and this number both match.
    const STATE_VERSION: u32 = 1;

    /// Builds the plugin from the pipeline's `[plugin.params]`
    /// (see [`Plugin::configure`]).
    fn configure(params: &Params) -> Result<Self>;

    /// Declares inputs and outputs (see [`Plugin::describe`]).
    fn describe(&self) -> Describe;

    /// Decides, per event, whether it counts (see [`Plugin::filter`]).
    fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
        Ok(vec![true; events.len()])
    }

    /// The state of no events: the identity of [`merge`](Incremental::merge).
    fn init(&self) -> Self::State;

    /// Adds events (of one key, sorted by event time) to a state.
    fn add(&self, state: &mut Self::State, events: &Batch) -> Result<()>;

    /// Merges `later` (the state of later events) into `state`.
    fn merge(&self, state: &mut Self::State, later: &Self::State);

    /// Turns a window's state into its result rows.
    fn finish(&self, key: &Row, window: Window, state: &Self::State) -> Result<Vec<Row>>;
}
