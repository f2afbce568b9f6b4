//! Adversarial test component: a valid `wasm32-wasip2` component built for the wrong world
//! (a WASI command exporting `wasi:cli/run`), as a tenant deploying the wrong artifact would.

fn main() {
    println!("this is a command, not a Weir plugin");
}
