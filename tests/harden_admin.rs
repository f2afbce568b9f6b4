//! Hardening against hostile admin requests, deploys and plugin files: each attack runs against the real `weir serve` with two
//! tenants on 127.0.0.1, and the other tenant keeps getting exact results.

mod support;
