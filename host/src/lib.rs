//! Weir: a host for user-defined window aggregations written as WebAssembly components.
//!
//! The host owns ingestion, event time, windows, state and sinks; tenants supply a filter
//! and an aggregate as a `wasm32-wasip2` component. Modules, in the order an event meets
//! them:
//!
//! - [`config`]: the pipeline file, parsed and validated.
//! - [`source`]: files, stdin and the synthetic generator, framed into raw records.
//! - [`decode`]: raw records into typed events of the schema (bad ones to the dead letter).
//! - [`time`]: timestamp formats and watermarks.
//! - [`window`]: window assignment, host-owned state and firing.
//! - [`plugin`]: the sandboxed tenant components and their limits.
//! - [`sink`]: result rows, late events, dead letters and plugin errors.
//! - [`pipeline`]: wires one pipeline together and runs it.
//! - [`serve`]: many tenants' pipelines on one host, hot swap, and the admin API's backend.
//! - [`admin`]: the admin HTTP API and its client.
//! - [`console`]: what the web console shows (samples, latest rows) and its page.
//! - [`cli`]: the `weir` command.
//! - [`bench`]: `weir bench`, the benchmark suite.
//!
//! The library is what the binary runs; its pieces can be used on their own, e.g. a
//! pipeline file and the windows an event falls in:
//!
//! ```
//! use weir::config::PipelineConfig;
//! use weir::window::Window;
//!
//! let cfg = PipelineConfig::parse(r#"
//!     name = "stocks"
//!     [source]
//!     kind = "stdin"
//!     [schema]
//!     timestamp = { field = "ts", format = "epoch_ms" }
//!     key = ["symbol"]
//!     fields = { symbol = "string", price = "f64" }
//!     [window]
//!     kind = "sliding"
//!     size = "3s"
//!     slide = "1s"
//!     [plugin]
//!     path = "stats.wasm"
//!     [sink]
//!     kind = "stdout"
//! "#)?;
//! let mut windows = Vec::new();
//! cfg.window_kind().assign(2_500, &mut windows).expect("no overflow in range");
//! assert_eq!(
//!     windows,
//!     [Window { start: 0, end: 3_000 }, Window { start: 1_000, end: 4_000 }, Window { start: 2_000, end: 5_000 }]
//! );
//! # Ok::<(), weir::config::Error>(())
//! ```

pub mod admin;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod console;
pub mod counters;
pub mod decode;
pub mod kafka;
pub mod pipeline;
pub mod plugin;
pub mod produce;
pub mod sample;
pub mod scaffold;
pub mod serve;
pub mod sink;
pub mod source;
pub mod time;
pub mod value;
pub mod window;

/// The repository README's plugin examples, compiled as doctests so that they cannot rot
/// (here rather than in the SDK, whose package does not include the repository README).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
