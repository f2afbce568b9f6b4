//! `weir-guest`: write a Weir window-aggregation plugin as a plain Rust type.
//!
//! The Weir host owns time, windows and state. A plugin only decides which
//! events count (`filter`, optional) and turns one window's events for one key
//! into result rows (`aggregate`). You implement [`Plugin`] on your own type,
//! register it with [`export_plugin!`], and build with
//! `cargo build --release --target wasm32-wasip2`. No WIT types appear in your
//! code, and the same logic runs natively under `cargo test` (see [`testing`]).
//!
//! ```
//! use weir_guest::prelude::*;
//!
//! /// Mean of one f64 field per key and window.
//! struct Mean {
//!     field: String,
//! }
//!
//! impl Plugin for Mean {
//!     fn configure(params: &Params) -> Result<Self> {
//!         Ok(Mean { field: params.required("field")?.to_string() })
//!     }
//!
//!     fn describe(&self) -> Describe {
//!         Describe::new()
//!             .input(&self.field, Type::F64)
//!             .output("mean", Type::F64)
//!     }
//!
//!     fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
//!         let column = events.f64(&self.field)?;
//!         let (sum, n) = column.non_null().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
//!         let mean = (n > 0).then(|| sum / n as f64);
//!         Ok(vec![Row::new().opt_f64("mean", mean)])
//!     }
//! }
//!
//! weir_guest::export_plugin!(Mean);
//!
//! // The same plugin, tested natively: 1.0 and 4.0 are present, one value is
//! // null, so the mean is (1.0 + 4.0) / 2 = 2.5.
//! let events = Batch::new(vec![1_000, 1_500, 2_000])
//!     .with_f64("price", vec![Some(1.0), None, Some(4.0)]);
//! let rows = weir_guest::testing::run_aggregate::<Mean>(
//!     [("field", "price")],
//!     Row::new().str("symbol", "AAPL"),
//!     Window { start: 0, end: 3_000 },
//!     events,
//! )?;
//! assert_eq!(rows, vec![Row::new().f64("mean", 2.5)]);
//! # Ok::<(), weir_guest::Error>(())
//! ```
//!
//! What the host guarantees, and what a plugin may rely on:
//! - `configure` runs once per instance, before `describe`'s answer is used
//!   and before any `filter` or `aggregate` call. After a trap the host
//!   re-instantiates the plugin and configures it again, so keep no state
//!   beyond what `configure` builds.
//! - The batch holds exactly the columns declared with [`Describe::input`],
//!   in the declared types, events sorted by event time.
//! - Every output row should hold the fields declared with
//!   [`Describe::output`], in that order ([`testing`] checks this).
//! - A panic traps the instance: the host records a plugin failure for that
//!   call and re-instantiates. Return an [`Error`] instead when you can; its
//!   message and hint reach the tenant's error sink.
#![deny(missing_docs)]

mod adapter;
mod batch;
mod describe;
pub mod driver;
mod error;
pub mod num;
mod params;
mod plugin;
pub mod testing;
pub mod time;
mod value;

pub use batch::{Batch, Column, ColumnType};
pub use describe::Describe;
pub use error::{Error, Result};
pub use params::Params;
pub use plugin::{Incremental, Plugin, Window};
pub use value::{Row, Type, Value};

/// Everything a plugin usually needs: `use weir_guest::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Batch, Column, Describe, Error, Incremental, Params, Plugin, Result, Row, Type, Value,
        Window,
    };
}

/// Generated WIT bindings for the `weir:plugin/aggregator` world. Not part of
/// the public API: use [`export_plugin!`] and the SDK types instead.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "aggregator",
        pub_export_macro: true,
        export_macro_name: "__weir_export_aggregator",
        default_bindings_module: "weir_guest::bindings",
    });
}

/// Implementation details used by [`export_plugin!`]'s expansion.
#[doc(hidden)]
pub mod __private {
    pub use crate::adapter::Export;
}

/// Registers a [`Plugin`] (whole-window) type as the component's exports.
///
/// Call it once per plugin crate, at module level: `export_plugin!(MyPlugin);`.
/// The plugin name and version reported to the host are the plugin crate's
/// `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`.
///
/// The exports are generated only when compiling for `wasm32`; natively the
/// macro only checks that the type implements [`Plugin`], so several plugin
/// crates can be linked into one native test binary.
///
/// How the generated exports behave:
/// - `describe` before `configure` reports the name and version with no inputs
///   or outputs.
/// - `aggregate` before `configure` returns the error `not configured` for
///   every group.
/// - `filter` cannot return an error (the WIT `filter` returns `list<bool>`):
///   if it is called before `configure`, if [`Plugin::filter`] returns an
///   `Err`, or if it returns a different number of entries than there are
///   events, the export **panics** with the message. The panic traps the
///   instance and the host treats it as a plugin failure for that batch.
/// - Rows are sent positionally, in the order of [`Describe::output`]; a row
///   built in another order is reordered, a declared output it lacks is null,
///   and a field that is not declared fails that window with an error.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::__export!($plugin, $crate::Plugin, $crate::driver::whole::<$plugin>);
    };
}

/// Registers an [`Incremental`] type as the component's exports; see
/// [`export_plugin!`] for what the exports do. The host then keeps one state
/// per key and pane and calls the plugin's `init`/`add`/`merge`/`finish`.
#[macro_export]
macro_rules! export_incremental {
    ($plugin:ty) => {
        $crate::__export!(
            $plugin,
            $crate::Incremental,
            $crate::driver::incremental::<$plugin>
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($plugin:ty, $bound:path, $make:path) => {
        const _: fn() = || {
            fn assert_plugin<P: $bound>() {}
            assert_plugin::<$plugin>();
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __WeirExport;

            ::std::thread_local! {
                static __WEIR_INSTANCE: ::core::cell::RefCell<
                    ::core::option::Option<::std::boxed::Box<dyn $crate::driver::Driver>>,
                > = const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            impl $crate::__private::Export for __WeirExport {
                const NAME: &'static str = ::core::env!("CARGO_PKG_NAME");
                const VERSION: &'static str = ::core::env!("CARGO_PKG_VERSION");

                fn make(
                    params: &$crate::Params,
                    key_fields: &[::std::string::String],
                ) -> $crate::Result<::std::boxed::Box<dyn $crate::driver::Driver>> {
                    $make(params, key_fields)
                }

                fn instance() -> &'static ::std::thread::LocalKey<
                    ::core::cell::RefCell<
                        ::core::option::Option<::std::boxed::Box<dyn $crate::driver::Driver>>,
                    >,
                > {
                    &__WEIR_INSTANCE
                }
            }

            $crate::bindings::__weir_export_aggregator!(__WeirExport with_types_in $crate::bindings);
        };
    };
}

/// The repository README's plugin example, compiled as a doctest so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
