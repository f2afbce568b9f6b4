//! Tests of the window operator: worked examples, a model-based property test against a
//! plain model of the semantics, and partition drops. The push API they drive the operator
//! with ([`Push`]) exists only here: the pipeline pulls windows with `take_due`.

use super::{Due, Firing, WindowOperator};

mod model;
mod operator;
mod partitions;
mod replays;

/// The push API: the operator fires windows into a callback, which accepts (true) or
/// declines (false) each. Built on the pull API the pipeline uses.
trait Push {
    /// Moves the watermark to `watermark`: fires every window with unemitted events whose
    /// `end <= watermark` in `(end, start, key)` order, then purges windows whose
    /// `end + allowed_lateness <= watermark`. A window `fire` declines (returns false)
    /// stays pending, is not purged, and fires at a later call. The pull API
    /// ([`take_due`](WindowOperator::take_due)) does the same in steps.
    fn advance(&mut self, watermark: i64, fire: &mut dyn FnMut(Firing<'_>) -> bool);

    /// Fires every window with unemitted events, whatever the watermark (update mode's
    /// early firings). Windows stay open.
    fn fire_early(&mut self, fire: &mut dyn FnMut(Firing<'_>) -> bool);

    /// End of bounded input: fires every window with unemitted events, then drops all state.
    /// Returns false, keeping the state, if `fire` declined any window.
    fn flush(&mut self, fire: &mut dyn FnMut(Firing<'_>) -> bool) -> bool;
}

impl Push for WindowOperator {
    fn advance(&mut self, watermark: i64, fire: &mut dyn FnMut(Firing<'_>) -> bool) {
        let due = self.take_due(Some(watermark));
        fire_all(self, due, fire);
        self.purge_due(watermark);
    }

    fn fire_early(&mut self, fire: &mut dyn FnMut(Firing<'_>) -> bool) {
        let due = self.take_due(None);
        fire_all(self, due, fire);
    }

    fn flush(&mut self, fire: &mut dyn FnMut(Firing<'_>) -> bool) -> bool {
        self.fire_early(fire);
        self.finish()
    }
}

/// Hands each of `due` to `fire`, then records it fired or declined.
fn fire_all(op: &mut WindowOperator, due: Vec<Due>, fire: &mut dyn FnMut(Firing<'_>) -> bool) {
    for d in due {
        let Some((firing, _)) = op.firing(d) else {
            continue;
        };
        if fire(firing) {
            op.fired(d);
        } else {
            op.declined(d);
        }
    }
}
