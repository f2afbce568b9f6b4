//! Event time: parsing timestamps from input and tracking watermarks.

mod timestamp;
mod watermark;

pub use timestamp::{
    EVENT_TIME_RANGE, MAX_DURATION_MS, MAX_EVENT_TIME, MIN_EVENT_TIME, TimestampFormat,
    format_rfc3339_ms, in_range, push_rfc3339_ms, write_rfc3339_ms,
};
pub use watermark::{
    ANCHOR_WITNESSES, NO_WATERMARK, Outlier, WatermarkState, Watermarks, outlying_anchor,
};
