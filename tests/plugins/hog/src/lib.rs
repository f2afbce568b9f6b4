//! Adversarial test plugin: `aggregate` allocates memory in 1 MiB chunks,
//! touching every page and keeping every chunk, until the host's memory cap
//! traps it. No inputs; declares one output `n` (i64).

use weir_guest::prelude::*;

/// Grows memory forever in `aggregate`.
pub struct Hog;

const CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;

impl Plugin for Hog {
    fn configure(_params: &Params) -> Result<Self> {
        Ok(Hog)
    }

    fn describe(&self) -> Describe {
        Describe::new().output("n", Type::I64)
    }

    fn aggregate(&self, _key: &Row, _window: Window, _events: &Batch) -> Result<Vec<Row>> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0_u8; CHUNK];
            for byte in chunk.iter_mut().step_by(PAGE) {
                *byte = 1;
            }
            chunks.push(std::hint::black_box(chunk));
        }
    }
}

weir_guest::export_plugin!(Hog);
