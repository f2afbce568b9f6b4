//! Adversarial test plugin: every `aggregate` call prints a line to stdout and one to
//! stderr, then fails with an error message of `bytes` bytes (param, default 12 MiB): the
//! key's symbol, a space, then `!` to the size. No inputs, output `n` (i64, never returned).

use weir_guest::prelude::*;

/// Fails every call with a huge message.
pub struct Shouty {
    bytes: usize,
}

impl Plugin for Shouty {
    fn configure(params: &Params) -> Result<Self> {
        let bytes = match params.get("bytes") {
            Some(b) => b
                .parse()
                .map_err(|_| format!("bytes = {b:?} is not a number"))?,
            None => 12 << 20,
        };
        Ok(Shouty { bytes })
    }

    fn describe(&self) -> Describe {
        Describe::new().output("n", Type::I64)
    }

    fn aggregate(&self, key: &Row, _window: Window, _events: &Batch) -> Result<Vec<Row>> {
        let symbol = key.get("symbol").and_then(Value::as_str).unwrap_or("?");
        println!("shouty: about to fail for {symbol}");
        eprintln!("shouty: failing for {symbol}");
        let mut message = format!("{symbol} ");
        let fill = self.bytes.saturating_sub(message.len());
        message.extend(std::iter::repeat_n('!', fill));
        Err(message.into())
    }
}

weir_guest::export_plugin!(Shouty);
