#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

// `#[derive(Output)]` names `::weir_guest`; this makes that path work inside the SDK too.
extern crate self as weir_guest;

mod adapter;
mod batch;
mod describe;
pub mod driver;
mod error;
pub mod num;
mod output;
mod params;
mod plugin;
pub mod testing;
pub mod time;
mod value;

pub use batch::{Batch, Column, ColumnType};
pub use describe::Describe;
pub use error::{Error, Result};
pub use output::{Output, OutputField, OutputValue};
pub use params::Params;
pub use plugin::{Incremental, Plugin, Window};
pub use value::{Row, Type, Value};
/// `#[derive(Output)]`: see [`Output`].
pub use weir_guest_derive::Output;

/// Everything a plugin usually needs: `use weir_guest::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Batch, Column, Describe, Error, Incremental, Output, Params, Plugin, Result, Row, Type,
        Value, Window,
    };
}

/// Generated WIT bindings for the `weir:plugin/aggregator` world. Not part of
/// the public API: use [`export_plugin!`] and the SDK types instead.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        // Shipped inside the crate, so that a copied or packaged SDK builds.
        path: "wit",
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
