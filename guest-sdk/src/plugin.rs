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
