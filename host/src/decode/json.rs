//! JSON lines: one object per record, decoded straight into an [`Event`] of the schema.
//!
//! Owns JSON parsing and the per-type coercions that CSV shares ([`coerce`],
//! [`parse_timestamp`]): numbers sent as strings, integers written as `3.0`, numbers read into
//! string fields, empty strings as null. It does not frame lines (sources do) and does not
//! decide what happens to a bad record (the pipeline routes it to the dead-letter sink).
//!
//! The object is never built as a `serde_json::Value`: a visitor matches each member name
//! against the declared fields without allocating, skips unknown members with
//! [`IgnoredAny`], and coerces declared ones as they are parsed. The only allocations per
//! record are the event's value vector and the text of its string fields.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::coerce::{Raw, check_required, coerce, missing, parse_timestamp};
use super::{DecodeError, Decoder, Event, EventTime, Schema, record_time};
use crate::source::RawRecord;
use crate::time::TimestampFormat;
use crate::value::Value;

/// Above this many names, member lookup uses a hash map instead of a linear scan.
const LINEAR_LOOKUP_MAX: usize = 12;

/// Message of the error used to stop parsing once a coercion failed; never shown.
const ABORT: &str = "weir: coercion failed";

/// Decodes JSON lines, one object per record, into events of a [`Schema`].
///
/// Unknown members are ignored; a declared member that is missing or `null` is
/// [`Value::Null`] unless the field is required. The timestamp member, when event time is a
/// field, is always required.
pub struct JsonDecoder {
    schema: Schema,
    /// The event-time field and its format, when event time is a field.
    time: Option<(String, TimestampFormat)>,
    /// Member names that matter: every declared field, plus the timestamp field.
    names: Vec<Box<str>>,
    /// What each name in `names` feeds, by the same index.
    slots: Vec<Slot>,
    /// Name → index in `names`, only when there are too many names for a linear scan.
    index: Option<HashMap<Box<str>, usize>>,
}

/// Where the value of one JSON member goes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Index in `schema.fields`, when the member is a declared field.
    field: Option<usize>,
    /// Whether the member is the event-time field.
    timestamp: bool,
}

impl JsonDecoder {
    /// A decoder for records of this schema.
    pub fn new(schema: Schema) -> Self {
        let time = match &schema.time {
            EventTime::Field { name, format } => Some((name.clone(), format.clone())),
            EventTime::Record => None,
        };
        let ts_field = time.as_ref().map(|(name, _)| name.as_str());
        let mut names: Vec<Box<str>> = Vec::with_capacity(schema.fields.len() + 1);
        let mut slots = Vec::with_capacity(schema.fields.len() + 1);
        for (i, (name, _)) in schema.fields.iter().enumerate() {
            names.push(name.as_str().into());
            slots.push(Slot {
                field: Some(i),
                timestamp: Some(name.as_str()) == ts_field,
            });
        }
        if let Some(ts) = ts_field
            && schema.index_of(ts).is_none()
        {
            names.push(ts.into());
            slots.push(Slot {
                field: None,
                timestamp: true,
            });
        }
        let index = (names.len() > LINEAR_LOOKUP_MAX).then(|| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect()
        });
        JsonDecoder {
            schema,
            time,
            names,
            slots,
            index,
        }
    }

    /// The slot index of a member name, or `None` for a member the schema does not use.
    fn lookup(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.names.iter().position(|n| **n == *name),
        }
    }
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, raw: &RawRecord<'_>) -> Result<Option<Event>, DecodeError> {
        if raw.payload.trim().is_empty() {
            return Err(DecodeError::new("empty record"));
        }
        let mut state = Record {
            decoder: self,
            values: vec![Value::Null; self.schema.fields.len()],
            ts: None,
            error: None,
        };
        let mut de = serde_json::Deserializer::from_str(raw.payload);
        let parsed = RecordSeed(&mut state)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if let Some(reason) = state.error {
            return Err(DecodeError::new(reason));
        }
        if let Err(e) = parsed {
            return Err(DecodeError::new(format!("not a JSON object: {e}")));
        }
        let ts = match &self.time {
            Some((name, _)) => state.ts.ok_or_else(|| missing(name))?,
            None => record_time(raw)?,
        };
        check_required(&self.schema, &state.values)?;
        Ok(Some(Event {
            ts,
            values: state.values,
        }))
    }
}

/// What has been decoded of the current record so far.
struct Record<'d> {
    decoder: &'d JsonDecoder,
    values: Vec<Value>,
    ts: Option<i64>,
    /// The first coercion failure, naming the field; parsing stops there.
    error: Option<String>,
}

impl Record<'_> {
    /// Stores the value of member `slot`; `Err` (with the reason kept in `self.error`) stops parsing.
    fn accept(&mut self, slot: usize, raw: Raw<'_>) -> Result<(), ()> {
        let decoder = self.decoder;
        let Slot { field, timestamp } = decoder.slots[slot];
        let fail = |reason: String| format!("field `{}`: {reason}", decoder.names[slot]);
        if let (true, Some((_, format))) = (timestamp, &decoder.time) {
            match parse_timestamp(format, raw) {
                Ok(ts) => self.ts = ts,
                Err(e) => {
                    self.error = Some(fail(e));
                    return Err(());
                }
            }
        }
        if let Some(i) = field {
            match coerce(decoder.schema.fields[i].1, raw, false) {
                Ok(v) => self.values[i] = v,
                Err(e) => {
                    self.error = Some(fail(e));
                    return Err(());
                }
            }
        }
        Ok(())
    }
}

/// Deserializes the top-level object into a [`Record`].
struct RecordSeed<'r, 'd>(&'r mut Record<'d>);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let record = self.0;
        while let Some(slot) = map.next_key_seed(KeySeed(record.decoder))? {
            match slot {
                Some(slot) => map.next_value_seed(MemberSeed {
                    record: &mut *record,
                    slot,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Resolves a member name to its slot without allocating (escaped names included).
struct KeySeed<'d>(&'d JsonDecoder);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.lookup(name))
    }
}

/// Parses the value of a declared member and hands it to [`Record::accept`].
struct MemberSeed<'r, 'd> {
    record: &'r mut Record<'d>,
    slot: usize,
}

impl MemberSeed<'_, '_> {
    fn accept<E: de::Error>(self, raw: Raw<'_>) -> Result<(), E> {
        self.record
            .accept(self.slot, raw)
            .map_err(|()| E::custom(ABORT))
    }
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.accept(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.accept(Raw::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.accept(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.accept(Raw::I64(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.accept(Raw::I64(v)),
            Err(_) => self.accept(Raw::U64(v)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.accept(Raw::F64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.accept(Raw::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.accept(Raw::Nested)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.accept(Raw::Nested)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config::SchemaConfig;

    fn schema(toml_text: &str) -> Schema {
        let cfg: SchemaConfig = toml::from_str(toml_text).unwrap();
        Schema::new(&cfg).unwrap()
    }

    fn record(payload: &str) -> RawRecord<'static> {
        RawRecord::leaked("test", 1, payload)
    }

    fn stocks() -> JsonDecoder {
        JsonDecoder::new(schema(
            r#"
            timestamp = { field = "ts", format = "rfc3339" }
            key = ["symbol"]
            fields = { symbol = "string", price = "f64", volume = "i64" }
            "#,
        ))
    }

    #[test]
    fn event_time_from_the_record_ignores_any_ts_member() {
        let mut d = JsonDecoder::new(schema(
            r#"
            timestamp = { from = "kafka" }
            key = ["symbol"]
            fields = { symbol = "string", price = "f64" }
            "#,
        ));
        let at = |ts: Option<i64>| RawRecord {
            timestamp: ts,
            ..record(r#"{"symbol":"A","price":1.5,"ts":"not a time"}"#)
        };
        let e = d.decode(&at(Some(1_705_931_100_123))).unwrap().unwrap();
        assert_eq!(e.ts, 1_705_931_100_123);
        assert_eq!(get(&d, &e, "price"), &Value::F64(1.5));
        let r = d.decode(&at(None)).unwrap_err().reason;
        assert!(r.starts_with("the record has no timestamp"), "{r}");
        // Year 10000 and beyond is outside the event-time range.
        let r = d.decode(&at(Some(253_402_300_800_000))).unwrap_err().reason;
        assert!(r.contains("outside the event-time range"), "{r}");
    }

    /// Values of an event by field name.
    fn get<'e>(d: &JsonDecoder, e: &'e Event, name: &str) -> &'e Value {
        &e.values[d.schema.index_of(name).unwrap()]
    }

    fn reason(d: &mut JsonDecoder, payload: &str) -> String {
        d.decode(&record(payload)).unwrap_err().reason
    }

    #[test]
    fn stock_line_decodes_and_ignores_unknown_members() {
        let mut d = stocks();
        let e = d
            .decode(&record(
                r#"{"ts":"2024-01-22T13:45:00.010Z","extra":{"a":[1,2,{"b":null}]},"symbol":"AAPL","price":187.23,"volume":120,"note":"x"}"#,
            ))
            .unwrap()
            .unwrap();
        // 2024-01-22T13:45:00Z is 1_705_931_100 s after the epoch.
        assert_eq!(e.ts, 1_705_931_100_010);
        assert_eq!(get(&d, &e, "symbol"), &Value::Str("AAPL".into()));
        assert_eq!(get(&d, &e, "price"), &Value::F64(187.23));
        assert_eq!(get(&d, &e, "volume"), &Value::I64(120));
        // Fields are in schema (name) order: price, symbol, volume.
        assert_eq!(
            e.values,
            vec![
                Value::F64(187.23),
                Value::Str("AAPL".into()),
                Value::I64(120)
            ]
        );
    }

    #[test]
    fn escapes_in_names_and_strings_are_decoded() {
        let mut d = stocks();
        let e = d
            .decode(&record(
                r#"{"t\u0073":"2024-01-22T13:45:00Z","symbol":"A\"B\\C\u00e9\n","price":1,"volume":2,"k\"ey":"\u2603"}"#,
            ))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 1_705_931_100_000);
        assert_eq!(get(&d, &e, "symbol"), &Value::Str("A\"B\\Cé\n".into()));
        assert_eq!(get(&d, &e, "price"), &Value::F64(1.0));
    }

    #[test]
    fn ticker_numbers_as_strings_and_microsecond_times() {
        let mut d = JsonDecoder::new(schema(
            r#"
            timestamp = { field = "time", format = "rfc3339" }
            key = ["product_id"]
            fields = { product_id = "string", price = "f64", best_bid = "f64", volume_24h = "f64" }
            "#,
        ));
        let e = d
            .decode(&record(
                r#"{"type":"ticker","product_id":"BTC-USD","price":"42000.12","best_bid":"41999.50","best_ask":"42000.50","volume_24h":"12345.67890000","time":"2024-01-22T13:45:00.123456Z"}"#,
            ))
            .unwrap()
            .unwrap();
        // .123456 s truncates to 123 ms.
        assert_eq!(e.ts, 1_705_931_100_123);
        assert_eq!(get(&d, &e, "price"), &Value::F64(42000.12));
        assert_eq!(get(&d, &e, "best_bid"), &Value::F64(41999.5));
        assert_eq!(get(&d, &e, "volume_24h"), &Value::F64(12345.6789));
    }

    #[test]
    fn epoch_seconds_and_milliseconds_as_numbers_and_strings() {
        let fields = r#"key = []
            fields = { v = "i64" }"#;
        let mut ms = JsonDecoder::new(schema(&format!(
            "timestamp = {{ field = \"t\", format = \"epoch_ms\" }}\n{fields}"
        )));
        assert_eq!(
            ms.decode(&record(r#"{"t":1700000000123,"v":1}"#))
                .unwrap()
                .unwrap()
                .ts,
            1_700_000_000_123
        );
        assert_eq!(
            ms.decode(&record(r#"{"t":"1700000000123"}"#))
                .unwrap()
                .unwrap()
                .ts,
            1_700_000_000_123
        );
        let mut s = JsonDecoder::new(schema(&format!(
            "timestamp = {{ field = \"t\", format = \"epoch_s\" }}\n{fields}"
        )));
        assert_eq!(
            s.decode(&record(r#"{"t":1700000000.25}"#))
                .unwrap()
                .unwrap()
                .ts,
            1_700_000_000_250
        );
        assert_eq!(
            s.decode(&record(r#"{"t":"1700000000"}"#))
                .unwrap()
                .unwrap()
                .ts,
            1_700_000_000_000
        );
    }

    #[test]
    fn epoch_times_outside_the_range_name_field_value_and_range() {
        let mut d = JsonDecoder::new(schema(
            "timestamp = { field = \"t\", format = \"epoch_ms\" }\nkey = []\nfields = { v = \"i64\" }",
        ));
        let range = "1000-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z";
        for (t, written) in [
            ("\"9223372036854775807\"", "9223372036854775807"),
            ("\"-9223372036854775808\"", "-9223372036854775808"),
            ("9223372036854775807", "9223372036854775807"),
            ("253402300800000", "253402300800000"),
            ("18446744073709551615", "18446744073709552000"),
        ] {
            assert_eq!(
                reason(&mut d, &format!("{{\"t\":{t},\"v\":1}}")),
                format!("field `t`: `{written}` is outside the event-time range {range}"),
                "{t}"
            );
        }
        assert_eq!(
            d.decode(&record(r#"{"t":"253402300799999"}"#))
                .unwrap()
                .unwrap()
                .ts,
            253_402_300_799_999
        );
    }

    #[test]
    fn timestamp_declared_as_field_is_also_stored() {
        let mut d = JsonDecoder::new(schema(
            r#"
            timestamp = { field = "t", format = "epoch_ms" }
            fields = { t = "i64", s = "string" }
            "#,
        ));
        let e = d
            .decode(&record(r#"{"t":"5000","s":"x"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 5000);
        assert_eq!(get(&d, &e, "t"), &Value::I64(5000));
    }

    #[test]
    fn us_style_timestamp_pattern() {
        let mut d = JsonDecoder::new(schema(
            r#"
            timestamp = { field = "trip_start_timestamp", format = "%m/%d/%Y %I:%M:%S %p" }
            fields = { fare = "f64" }
            "#,
        ));
        let e = d
            .decode(&record(
                r#"{"trip_start_timestamp":"01/22/2024 01:45:00 PM","fare":12.5}"#,
            ))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 1_705_931_100_000);
    }

    #[test]
    fn coercions_per_type() {
        let mut d = JsonDecoder::new(schema(
            r#"
            timestamp = { field = "t", format = "epoch_ms" }
            fields = { area = "string", n = "i64", ok = "bool", x = "f64" }
            "#,
        ));
        let e = d
            .decode(&record(
                r#"{"t":0,"area":8,"n":"3.0","ok":"TRUE","x":"-2.5e1"}"#,
            ))
            .unwrap()
            .unwrap();
        assert_eq!(get(&d, &e, "area"), &Value::Str("8".into()));
        assert_eq!(get(&d, &e, "n"), &Value::I64(3));
        assert_eq!(get(&d, &e, "ok"), &Value::Bool(true));
        assert_eq!(get(&d, &e, "x"), &Value::F64(-25.0));
        let e = d
            .decode(&record(r#"{"t":0,"area":true,"n":7.0,"ok":0,"x":""}"#))
            .unwrap()
            .unwrap();
        assert_eq!(get(&d, &e, "area"), &Value::Str("true".into()));
        assert_eq!(get(&d, &e, "n"), &Value::I64(7));
        assert_eq!(get(&d, &e, "ok"), &Value::Bool(false));
        assert_eq!(get(&d, &e, "x"), &Value::Null);
        // A JSON empty string stays a string; only CSV turns empty cells into null.
        let e = d
            .decode(&record(r#"{"t":0,"area":"","n":null}"#))
            .unwrap()
            .unwrap();
        assert_eq!(get(&d, &e, "area"), &Value::Str(String::new()));
        assert_eq!(get(&d, &e, "n"), &Value::Null);
        assert_eq!(get(&d, &e, "ok"), &Value::Null);
        assert_eq!(
            reason(&mut d, r#"{"t":0,"n":"3.5"}"#),
            "field `n`: `3.5` is not an integer"
        );
        assert_eq!(
            reason(&mut d, r#"{"t":0,"n":18446744073709551615}"#),
            "field `n`: `18446744073709551615` is out of range for i64"
        );
        assert_eq!(
            reason(&mut d, r#"{"t":0,"ok":"yes"}"#),
            "field `ok`: `yes` is not a boolean"
        );
        assert_eq!(
            reason(&mut d, r#"{"t":0,"area":[1]}"#),
            "field `area`: an object or array is not a string"
        );
    }

    #[test]
    fn bad_number_names_field_and_value() {
        let mut d = stocks();
        assert_eq!(
            reason(
                &mut d,
                r#"{"ts":"2024-01-22T13:45:00Z","symbol":"A","price":"abc"}"#
            ),
            "field `price`: `abc` is not a number"
        );
        assert_eq!(
            reason(
                &mut d,
                r#"{"ts":"2024-01-22T13:45:00Z","symbol":"A","price":"NaN"}"#
            ),
            "field `price`: `NaN` is not a number"
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let mut d = stocks();
        // `symbol` is the key, hence required.
        assert_eq!(
            reason(&mut d, r#"{"ts":"2024-01-22T13:45:00Z","price":1}"#),
            "missing required field `symbol`"
        );
        assert_eq!(
            reason(&mut d, r#"{"ts":null,"symbol":"A"}"#),
            "missing required field `ts`"
        );
        assert_eq!(
            reason(&mut d, r#"{"symbol":"A"}"#),
            "missing required field `ts`"
        );
        // Optional fields may be absent.
        let e = d
            .decode(&record(r#"{"ts":"2024-01-22T13:45:00Z","symbol":"A"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(get(&d, &e, "price"), &Value::Null);
    }

    #[test]
    fn bad_timestamp_names_field_and_value() {
        let mut d = stocks();
        let r = reason(&mut d, r#"{"ts":"yesterday","symbol":"A"}"#);
        assert!(
            r.starts_with("field `ts`: `yesterday` is not RFC 3339"),
            "{r}"
        );
        let r = reason(&mut d, r#"{"ts":1700000000,"symbol":"A"}"#);
        assert!(r.starts_with("field `ts`: 1700000000 is a number"), "{r}");
    }

    #[test]
    fn malformed_json_is_reported_with_position() {
        let mut d = stocks();
        assert_eq!(
            reason(&mut d, "hello"),
            "not a JSON object: expected value at line 1 column 1"
        );
        let r = reason(&mut d, r#"{"ts":"2024-01-22T13:45:00Z","symbol":"A""#);
        assert!(
            r.starts_with("not a JSON object: EOF while parsing an object"),
            "{r}"
        );
        let r = reason(&mut d, "[1,2]");
        assert!(
            r.starts_with("not a JSON object: invalid type: sequence, expected an object"),
            "{r}"
        );
        let r = reason(&mut d, r#"{"ts":"2024-01-22T13:45:00Z","symbol":"A"} x"#);
        assert!(
            r.starts_with("not a JSON object: trailing characters"),
            "{r}"
        );
        assert_eq!(reason(&mut d, "  "), "empty record");
    }

    #[test]
    fn many_fields_use_the_hash_lookup() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i:02} = \"i64\"")).collect();
        let mut d = JsonDecoder::new(schema(&format!(
            "timestamp = {{ field = \"t\", format = \"epoch_ms\" }}\nfields = {{ {} }}",
            names.join(", ")
        )));
        assert!(d.index.is_some());
        let e = d
            .decode(&record(r#"{"f19":19,"t":7,"f03":3,"zz":0}"#))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 7);
        assert_eq!(get(&d, &e, "f19"), &Value::I64(19));
        assert_eq!(get(&d, &e, "f03"), &Value::I64(3));
        assert_eq!(get(&d, &e, "f04"), &Value::Null);
    }
}
