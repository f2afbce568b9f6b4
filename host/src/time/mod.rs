//! Event time: parsing timestamps from input and tracking watermarks.

mod timestamp;
mod watermark;

pub use timestamp::{TimestampFormat, format_rfc3339_ms};
pub use watermark::Watermarks;
