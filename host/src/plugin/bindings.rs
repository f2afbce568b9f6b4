//! Host bindings generated from `wit/plugin.wit` (world `aggregator`, `weir:plugin@0.1.0`).

wasmtime::component::bindgen!({
    world: "aggregator",
    path: "../wit",
});
