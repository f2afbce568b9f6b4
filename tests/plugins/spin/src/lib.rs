//! Adversarial test plugin: `aggregate` never returns. The host's CPU
//! deadline must trap it. No inputs; declares one output `n` (i64).

use weir_guest::prelude::*;

/// Loops forever in `aggregate`.
pub struct Spin;

impl Plugin for Spin {
    fn configure(_params: &Params) -> Result<Self> {
        Ok(Spin)
    }

    fn describe(&self) -> Describe {
        Describe::new().output("n", Type::I64)
    }

    fn aggregate(&self, _key: &Row, _window: Window, _events: &Batch) -> Result<Vec<Row>> {
        let mut n = 0_u64;
        loop {
            // `black_box` keeps the optimizer from proving the loop useless.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

weir_guest::export_plugin!(Spin);
