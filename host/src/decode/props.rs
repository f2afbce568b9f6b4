//! Property tests (`proptest`, the CI-friendly stand-in for `cargo fuzz`, which needs nightly)
//! for the JSON and CSV decoders: arbitrary input never panics, and every valid record
//! round-trips to the event it encodes.
//!
//! Bounded and reproducible: a fixed number of cases, a fixed seed, and no failure
//! persistence files written into the repository.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use super::{CsvDecoder, Decoder, JsonDecoder, Schema};
use crate::config::{CsvOptions, SchemaConfig};
use crate::source::RawRecord;
use crate::time::{MAX_EVENT_TIME, MIN_EVENT_TIME, format_rfc3339_ms};
use crate::value::Value;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x0057_e1e5),
        ..Config::default()
    }
}

fn schema(format: &str) -> Schema {
    let cfg: SchemaConfig = toml::from_str(&format!(
        "timestamp = {{ field = \"ts\", format = \"{format}\" }}\nkey = [\"symbol\"]\nfields = {{ symbol = \"string\", price = \"f64\", volume = \"i64\" }}"
    ))
    .expect("schema");
    Schema::new(&cfg).expect("schema")
}

fn rec(origin: &str, offset: u64, payload: String) -> RawRecord<'static> {
    RawRecord::leaked(origin, offset, &payload)
}

/// Values in schema order (fields are sorted by name: price, symbol, volume).
fn values(price: f64, symbol: &str, volume: i64) -> Vec<Value> {
    vec![
        Value::F64(price),
        Value::Str(symbol.to_string()),
        Value::I64(volume),
    ]
}

/// A symbol that survives line framing: no line breaks, not empty.
fn symbol() -> impl Strategy<Value = String> {
    "[^\r\n]{1,12}"
}

fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |v| v.is_finite())
}

/// Text near the formats the decoders see, plus plain noise.
fn junk_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[{}\\[\\]\":,0-9a-z.eE+\\- ]{0,48}",
        "[\",;a-z0-9 ]{0,32}",
        (any::<i64>(), "[a-z\"]{0,4}")
            .prop_map(|(t, s)| format!("{{\"ts\":\"{t}\",\"symbol\":\"{s}\",\"price\":1}}")),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn json_decoder_never_panics(line in junk_line(), fmt in prop_oneof![
        Just("epoch_ms"), Just("epoch_s"), Just("rfc3339"), Just("%Y-%m-%d %H:%M:%S")
    ]) {
        let mut d = JsonDecoder::new(schema(fmt));
        if let Ok(Some(e)) = d.decode(&rec("f", 1, line)) {
            prop_assert!((MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&e.ts));
        }
    }

    #[test]
    fn csv_decoder_never_panics(
        header in junk_line(),
        lines in proptest::collection::vec(junk_line(), 0..4),
        delimiter in prop_oneof![Just(','), Just(';'), Just('"')],
    ) {
        let opts = CsvOptions { delimiter, ..CsvOptions::default() };
        let mut d = CsvDecoder::new(schema("epoch_ms"), opts);
        let _ = d.decode(&rec("f", 1, header));
        for (i, l) in lines.into_iter().enumerate() {
            if let Ok(Some(e)) = d.decode(&rec("f", i as u64 + 2, l)) {
                prop_assert!((MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&e.ts));
            }
        }
    }

    #[test]
    fn json_record_round_trips(
        ts in MIN_EVENT_TIME..=MAX_EVENT_TIME,
        symbol in symbol(),
        price in finite_f64(),
        volume in any::<i64>(),
        as_string in any::<bool>(),
        rfc in any::<bool>(),
    ) {
        let (fmt, t) = if rfc {
            ("rfc3339", serde_json::Value::from(format_rfc3339_ms(ts)))
        } else if as_string {
            ("epoch_ms", serde_json::Value::from(ts.to_string()))
        } else {
            ("epoch_ms", serde_json::Value::from(ts))
        };
        let line = serde_json::json!({ "ts": t, "symbol": symbol, "price": price, "volume": volume })
            .to_string();
        let e = JsonDecoder::new(schema(fmt)).decode(&rec("f", 1, line.clone()));
        let e = e.map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        let e = e.ok_or_else(|| TestCaseError::fail("no event"))?;
        prop_assert_eq!(e.ts, ts);
        // serde_json's default float parser (without its `float_roundtrip` feature) may be
        // one ULP off for extreme exponents: floats are compared within 2 ULP, the rest
        // exactly.
        match &e.values[0] {
            Value::F64(got) => prop_assert!(
                (got - price).abs() <= 2.0 * f64::EPSILON * price.abs(),
                "{} != {}", got, price
            ),
            other => prop_assert!(false, "price decoded as {:?}", other),
        }
        prop_assert_eq!(&e.values[1..], &values(price, &symbol, volume)[1..]);
    }

    #[test]
    fn csv_record_round_trips(
        ts in MIN_EVENT_TIME..=MAX_EVENT_TIME,
        symbol in symbol(),
        price in finite_f64(),
        volume in any::<i64>(),
        blank_lines in 0u64..3,
    ) {
        let mut d = CsvDecoder::new(schema("epoch_ms"), CsvOptions::default());
        for i in 0..blank_lines {
            prop_assert_eq!(d.decode(&rec("f", i + 1, String::new())), Ok(None));
        }
        let header = rec("f", blank_lines + 1, "volume,ts,symbol,price".into());
        prop_assert_eq!(d.decode(&header), Ok(None));
        // Always quoted, quotes doubled: any symbol without a line break survives.
        let quoted = format!("\"{}\"", symbol.replace('"', "\"\""));
        let line = format!("{volume},{ts},{quoted},{price}");
        let e = d.decode(&rec("f", blank_lines + 2, line.clone()));
        let e = e.map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        let e = e.ok_or_else(|| TestCaseError::fail("no event"))?;
        prop_assert_eq!(e.ts, ts);
        prop_assert_eq!(e.values, values(price, &symbol, volume));
    }
}
