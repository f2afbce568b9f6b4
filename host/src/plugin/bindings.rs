//! Host bindings generated from the WIT contract: `guest-sdk/wit/plugin.wit`
//! (`weir:plugin@0.2.0`, the current version, shipped inside the SDK crate; `wit/plugin.wit`
//! links to it) and `wit/legacy/0.1.0/plugin.wit` (still loaded).

/// `weir:plugin@0.2.0`: batched groups and incremental steps.
pub mod v2 {
    wasmtime::component::bindgen!({
        world: "aggregator",
        path: "../guest-sdk/wit",
    });
}

/// `weir:plugin@0.1.0`: one window per call.
pub mod v1 {
    wasmtime::component::bindgen!({
        world: "aggregator",
        path: "../wit/legacy/0.1.0",
    });
}
