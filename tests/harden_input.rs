//! Hardening against hostile records and window configs: each attack runs against the real `weir serve` with two
//! tenants on 127.0.0.1, and the other tenant keeps getting exact results.

mod support;
