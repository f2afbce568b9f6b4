//! The synthetic generator: deterministic events for the seed workloads (stock ticks, taxi
//! trips, crypto ticker), as a source and for the `weir gen` command.
//!
//! Owns the workloads' field names and value shapes, which pipelines and tests rely on, and
//! pacing to a wall-clock rate. The same [`GeneratorConfig`] always gives the same bytes:
//! all randomness comes from one ChaCha8 stream seeded with `seed`, drawn in a fixed order.
//!
//! Event `i` has base time `start + i·interval`, moved back by a uniform jitter in
//! `[0, jitter]` ms, so events are out of order by up to `jitter`. Its key is drawn
//! uniformly from `keys` distinct keys.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Error, Poll, RawBatch, SizeHint, Source, SourcePosition};
use crate::config::{Format, GeneratorConfig, Workload};
use crate::time::format_rfc3339_ms;

/// Start time when `start` is not set: 2024-01-22T00:00:00Z.
const DEFAULT_START_MS: i64 = 1_705_881_600_000;

/// Longest single sleep while pacing, so the pipeline keeps servicing its timers.
const MAX_SLEEP: Duration = Duration::from_millis(50);

const STOCK_SYMBOLS: [&str; 10] = [
    "AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "NFLX", "AMD", "INTC",
];

const PRODUCTS: [&str; 10] = [
    "BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "DOGE-USD", "XRP-USD", "LTC-USD", "DOT-USD",
    "AVAX-USD", "LINK-USD",
];

/// Start price of each of [`PRODUCTS`], as (ticks, decimals): `ticks · 10^-decimals` USD.
const PRODUCT_PRICES: [(i64, u32); 10] = [
    (4_200_000, 2),
    (250_000, 2),
    (9_500, 2),
    (5_000, 4),
    (8_000, 5),
    (5_500, 4),
    (7_000, 2),
    (7_000, 3),
    (3_500, 2),
    (15_000, 3),
];

const PAYMENT_TYPES: [&str; 5] = ["Credit Card", "Cash", "Mobile", "Prcard", "Unknown"];

const STOCKS_HEADER: &str = "ts,symbol,price,volume";
const TAXI_HEADER: &str = "trip_id,trip_start_timestamp,trip_seconds,trip_miles,pickup_community_area,pickup_location,fare,tips,trip_total,payment_type";
const TICKER_HEADER: &str = "type,product_id,price,best_bid,best_ask,volume_24h,time";

/// A price in ticks of `10^-decimals`, per key, moved by a random walk.
#[derive(Debug, Clone, Copy)]
struct Price {
    ticks: i64,
    decimals: u32,
}

/// Deterministic producer of one workload's records, as text lines.
pub struct Generator {
    workload: Workload,
    format: Format,
    count: u64,
    keys: u32,
    interval: i64,
    jitter: i64,
    start: i64,
    rng: ChaCha8Rng,
    /// Records produced so far.
    produced: u64,
    /// Per key: the last price (stocks, ticker), created on the key's first event.
    prices: HashMap<u32, Price>,
}

impl Generator {
    /// A generator for this config. Fails, naming the key, when `start` is not RFC 3339 or
    /// `keys` is 0.
    pub fn new(cfg: &GeneratorConfig) -> Result<Self, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        let start = cfg
            .start_ms()
            .map_err(|e| e.to_string())?
            .unwrap_or(DEFAULT_START_MS);
        Ok(Generator {
            workload: cfg.workload,
            format: cfg.format,
            count: cfg.count,
            keys: cfg.keys,
            interval: cfg.interval.0,
            jitter: cfg.jitter.0.max(0),
            start,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            produced: 0,
            prices: HashMap::new(),
        })
    }

    /// The CSV header line (without line break), or `None` for JSON lines.
    pub fn header(&self) -> Option<&'static str> {
        match self.format {
            Format::Jsonl => None,
            Format::Csv => Some(match self.workload {
                Workload::Stocks => STOCKS_HEADER,
                Workload::Taxi => TAXI_HEADER,
                Workload::Ticker => TICKER_HEADER,
            }),
        }
    }

    /// Records produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Records still to come.
    pub fn remaining(&self) -> u64 {
        self.count - self.produced
    }

    /// Base (unjittered) event time of record `i`: `start + i·interval`.
    pub fn base_time(&self, i: u64) -> i64 {
        // Saturating: a huge `count × interval` gives times outside the event-time range,
        // which decoding dead-letters, never a wrapped (or, in debug, panicking) product.
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        self.start.saturating_add(i.saturating_mul(self.interval))
    }

    /// Appends the next record (without line break) to `out`; `false` once `count` records
    /// were produced.
    pub fn next_record(&mut self, out: &mut String) -> bool {
        if self.produced >= self.count {
            return false;
        }
        let key = self.rng.random_range(0..self.keys);
        let jitter = if self.jitter > 0 {
            self.rng.random_range(0..=self.jitter)
        } else {
            0
        };
        let ts = self.base_time(self.produced).saturating_sub(jitter);
        self.produced += 1;
        match self.workload {
            Workload::Stocks => self.stock(out, key, ts),
            Workload::Taxi => self.taxi(out, key, ts),
            Workload::Ticker => self.ticker(out, key, ts),
        }
        true
    }

    /// Moves key's price one random step (at most ±0.2 %, at least one tick) and returns it.
    fn step_price(&mut self, key: u32, initial: impl FnOnce(&mut ChaCha8Rng) -> Price) -> Price {
        let rng = &mut self.rng;
        let price = self.prices.entry(key).or_insert_with(|| initial(rng));
        let step = (price.ticks / 500).max(1);
        price.ticks = (price.ticks + rng.random_range(-step..=step)).max(100);
        *price
    }

    /// `{"ts":"2024-01-22T00:00:00.010Z","symbol":"AAPL","price":187.23,"volume":120}`.
    fn stock(&mut self, out: &mut String, key: u32, ts: i64) {
        let price = self.step_price(key, |rng| Price {
            ticks: rng.random_range(5_000..=50_000),
            decimals: 2,
        });
        let volume: u32 = self.rng.random_range(1..=1000);
        let symbol = Name(key, &STOCK_SYMBOLS, "SYM", "");
        let ts = format_rfc3339_ms(ts);
        let price = Fixed(price.ticks, price.decimals);
        let _ = match self.format {
            Format::Jsonl => write!(
                out,
                r#"{{"ts":"{ts}","symbol":"{symbol}","price":{price},"volume":{volume}}}"#
            ),
            Format::Csv => write!(out, "{ts},{symbol},{price},{volume}"),
        };
    }

    /// A Chicago-style taxi trip; about 3 % have no pickup area and 5 % no tips.
    fn taxi(&mut self, out: &mut String, key: u32, ts: i64) {
        let rng = &mut self.rng;
        let trip_id: u64 = rng.random();
        let seconds: u32 = rng.random_range(60..=3600);
        let miles = Fixed(rng.random_range(10..=3000), 2);
        let area = (!rng.random_bool(0.03)).then_some(u64::from(key) + 1);
        let fare: i64 = rng.random_range(325..=8000);
        let payment = PAYMENT_TYPES[rng.random_range(0..PAYMENT_TYPES.len())];
        let tips_missing = rng.random_bool(0.05);
        let tips_drawn: i64 = rng.random_range(0..=2000);
        let tips = if tips_missing {
            None
        } else if payment == "Cash" {
            Some(0)
        } else {
            Some(tips_drawn)
        };
        let total = Fixed(fare + tips.unwrap_or(0), 2);
        let fare = Fixed(fare, 2);
        let tips = tips.map(|t| Fixed(t, 2));
        // A fixed point per area, spread over Chicago.
        let k = i64::from(key) + 1;
        let lon = Fixed(-879_500 + (k * 37) % 40 * 75, 4);
        let lat = Fixed(416_500 + (k * 53) % 50 * 68, 4);
        let started = DateTime::from_timestamp(ts.div_euclid(1000), 0).unwrap_or_default();
        let started = started.format("%m/%d/%Y %I:%M:%S %p");
        let _ = match self.format {
            Format::Jsonl => write!(
                out,
                concat!(
                    r#"{{"trip_id":"{:016x}","trip_start_timestamp":"{}","trip_seconds":{},"trip_miles":{},"#,
                    r#""pickup_community_area":{},"pickup_location":"POINT ({} {})","fare":{},"tips":{},"#,
                    r#""trip_total":{},"payment_type":"{}"}}"#
                ),
                trip_id,
                started,
                seconds,
                miles,
                Or(area, "null"),
                lon,
                lat,
                fare,
                Or(tips, "null"),
                total,
                payment
            ),
            Format::Csv => write!(
                out,
                "{:016x},{},{},{},{},\"POINT ({} {})\",{},{},{},{}",
                trip_id,
                started,
                seconds,
                miles,
                Or(area, ""),
                lon,
                lat,
                fare,
                Or(tips, ""),
                total,
                payment
            ),
        };
    }

    /// Like Coinbase's ticker channel: numbers as strings, times with microseconds,
    /// `best_bid < price < best_ask`.
    fn ticker(&mut self, out: &mut String, key: u32, ts: i64) {
        let price = self.step_price(key, |rng| match PRODUCT_PRICES.get(key as usize) {
            Some(&(ticks, decimals)) => Price { ticks, decimals },
            None => Price {
                ticks: rng.random_range(100..=10_000),
                decimals: 2,
            },
        });
        let rng = &mut self.rng;
        let half_spread = (price.ticks / 20_000).max(1) + rng.random_range(0..=2);
        let volume: u64 = rng.random_range(100_000_000_000..=5_000_000_000_000);
        let micros: i64 = rng.random_range(0..1000);
        let product = Name(key, &PRODUCTS, "P", "-USD");
        let d = price.decimals;
        let (bid, p, ask) = (
            Fixed(price.ticks - half_spread, d),
            Fixed(price.ticks, d),
            Fixed(price.ticks + half_spread, d),
        );
        let volume = Fixed(volume as i64, 8);
        let time = DateTime::from_timestamp_micros(ts * 1000 + micros).unwrap_or_default();
        let time = time.format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let _ = match self.format {
            Format::Jsonl => write!(
                out,
                r#"{{"type":"ticker","product_id":"{product}","price":"{p}","best_bid":"{bid}","best_ask":"{ask}","volume_24h":"{volume}","time":"{time}"}}"#
            ),
            Format::Csv => write!(out, "ticker,{product},{p},{bid},{ask},{volume},{time}"),
        };
    }
}

/// A key's name: from the list, then `{prefix}{index}{suffix}` beyond it.
struct Name<'a, const N: usize>(u32, &'a [&'a str; N], &'a str, &'a str);

impl<const N: usize> std::fmt::Display for Name<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Name(i, names, prefix, suffix) = self;
        match names.get(*i as usize) {
            Some(name) => f.write_str(name),
            None => write!(f, "{prefix}{i}{suffix}"),
        }
    }
}

/// A non-negative fixed-point number `ticks · 10^-decimals`, printed with all its decimals.
struct Fixed(i64, u32);

impl std::fmt::Display for Fixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Fixed(ticks, decimals) = *self;
        let scale = 10_i64.pow(decimals);
        let sign = if ticks < 0 { "-" } else { "" };
        let (int, frac) = (ticks.abs() / scale, ticks.abs() % scale);
        write!(f, "{sign}{int}.{frac:0width$}", width = decimals as usize)
    }
}

/// An optional value, or the text to write when it is absent.
struct Or<T>(Option<T>, &'static str);

impl<T: std::fmt::Display> std::fmt::Display for Or<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str(self.1),
        }
    }
}

/// Writes `cfg.count` generated records to `out`, one per line (CSV starts with its header
/// line, which is not counted). Returns the number of records written.
///
/// A bad config (`start`, `keys`) is an [`io::ErrorKind::InvalidInput`] error.
pub fn write_generated(cfg: &GeneratorConfig, out: &mut dyn io::Write) -> io::Result<u64> {
    const CHUNK: usize = 64 * 1024;
    let mut generator =
        Generator::new(cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf = String::with_capacity(CHUNK + 512);
    if let Some(header) = generator.header() {
        buf.push_str(header);
        buf.push('\n');
    }
    while generator.next_record(&mut buf) {
        buf.push('\n');
        if buf.len() >= CHUNK {
            out.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    out.write_all(buf.as_bytes())?;
    Ok(generator.produced())
}

/// The generator as a source: origin `generator`, partition 0, offsets numbered like the
/// lines of [`write_generated`]'s output (the CSV header is line 1).
///
/// With `rate > 0`, record `n` is released no earlier than `n / rate` seconds after the
/// first poll; a poll sleeps at most [`MAX_SLEEP`] waiting for the next one and otherwise
/// returns what is due. Records fall due on schedule even if the pipeline lags, so it
/// catches up in full batches. `Done` comes from a call that appended nothing.
pub struct GeneratorSource {
    generator: Generator,
    rate: u64,
    header_pending: bool,
    /// Line number of the last record emitted.
    line: u64,
    started: Option<Instant>,
    origin: Arc<str>,
    describe: String,
}

impl GeneratorSource {
    /// A source for this config. A bad `start` or `keys` (see [`Generator::new`]) is an
    /// [`Error::Io`] of kind [`io::ErrorKind::InvalidInput`] whose message names the key.
    pub fn new(cfg: &GeneratorConfig) -> Result<Self, Error> {
        let generator = Generator::new(cfg).map_err(|e| Error::Io {
            origin: "generator".to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let format = match cfg.format {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        };
        let rate = if cfg.rate > 0 {
            format!(", {}/s", cfg.rate)
        } else {
            String::new()
        };
        Ok(GeneratorSource {
            header_pending: generator.header().is_some(),
            generator,
            rate: cfg.rate,
            line: 0,
            started: None,
            origin: Arc::from("generator"),
            describe: format!(
                "generator {:?} ({} {format} records, {} keys, seed {}{rate})",
                cfg.workload, cfg.count, cfg.keys, cfg.seed
            )
            .to_lowercase(),
        })
    }

    fn push(&mut self, out: &mut RawBatch, payload: &str) {
        self.line += 1;
        out.push(0, &self.origin, self.line, payload);
    }

    /// How many records may be emitted now under the rate limit (all, without one).
    fn due(&self, produced: u64, now: Instant) -> u64 {
        match self.started {
            Some(started) if self.rate > 0 => {
                let elapsed = now.saturating_duration_since(started).as_nanos();
                // Record n is due at n / rate seconds: floor(elapsed · rate) + 1 are due.
                let due = elapsed.saturating_mul(u128::from(self.rate)) / 1_000_000_000 + 1;
                u64::try_from(due)
                    .unwrap_or(u64::MAX)
                    .saturating_sub(produced)
            }
            _ => u64::MAX,
        }
    }

    /// When record `n` falls due (only meaningful with a rate).
    fn due_at(&self, started: Instant, n: u64) -> Instant {
        let nanos = u128::from(n) * 1_000_000_000 / u128::from(self.rate.max(1));
        started + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl Source for GeneratorSource {
    fn poll(&mut self, out: &mut RawBatch, max: usize) -> Result<Poll, Error> {
        let mut appended = 0;
        if self.header_pending && max > 0 {
            self.header_pending = false;
            let header = self.generator.header().unwrap_or_default().to_string();
            self.push(out, &header);
            appended += 1;
        }
        let produced = self.generator.produced();
        if self.generator.remaining() == 0 {
            return Ok(if appended > 0 {
                Poll::Ready
            } else {
                Poll::Done
            });
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let mut due = self.due(produced, Instant::now());
        if due == 0 && appended == 0 {
            let wait = self
                .due_at(started, produced)
                .saturating_duration_since(Instant::now());
            std::thread::sleep(wait.min(MAX_SLEEP));
            due = self.due(produced, Instant::now());
        }
        for _ in 0..due.min((max - appended) as u64) {
            // Written straight into the batch's text.
            let mut made = false;
            let generator = &mut self.generator;
            out.push_with(0, &self.origin, self.line + 1, |text| {
                made = generator.next_record(text);
            });
            if !made {
                out.pop();
                break;
            }
            self.line += 1;
        }
        Ok(Poll::Ready)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn size_hint(&self) -> Option<SizeHint> {
        Some(SizeHint::Records(self.generator.count))
    }

    fn position(&self) -> u64 {
        self.generator.produced()
    }

    fn checkpoint(&self) -> Option<SourcePosition> {
        Some(SourcePosition::Generator { line: self.line })
    }

    fn restore(&mut self, position: &SourcePosition, headers: &mut RawBatch) -> Result<(), Error> {
        let &SourcePosition::Generator { line } = position else {
            return Err(Error::Resume(format!(
                "the checkpoint was written for another kind of source ({position:?})"
            )));
        };
        // The sequence is a function of the seed: produce what was read and drop it.
        let header = self.generator.header();
        let records = line.saturating_sub(u64::from(header.is_some()));
        if records > self.generator.count {
            return Err(Error::Resume(format!(
                "the checkpoint is {records} records into a generator of {} records",
                self.generator.count
            )));
        }
        let mut scratch = String::new();
        while self.generator.produced() < records {
            scratch.clear();
            self.generator.next_record(&mut scratch);
        }
        if let Some(h) = header.filter(|_| line > 0) {
            self.header_pending = false;
            headers.push(0, &self.origin, 1, h);
        }
        self.line = line;
        if self.rate > 0 {
            // Records already produced are not due again.
            let now = Instant::now();
            let ahead = self.due_at(now, records).saturating_duration_since(now);
            self.started = Some(now.checked_sub(ahead).unwrap_or(now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Millis;
    use crate::time::TimestampFormat;

    fn config(workload: Workload, format: Format) -> GeneratorConfig {
        GeneratorConfig {
            workload,
            count: 1000,
            rate: 0,
            keys: 10,
            interval: Millis(10),
            jitter: Millis(0),
            seed: 42,
            start: None,
            format,
        }
    }

    fn generate(cfg: &GeneratorConfig) -> String {
        let mut out = Vec::new();
        let n = write_generated(cfg, &mut out).unwrap();
        assert_eq!(n, cfg.count);
        String::from_utf8(out).unwrap()
    }

    fn json_lines(text: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn str_field<'a>(obj: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> &'a str {
        obj[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is not a string in {obj:?}"))
    }

    #[test]
    fn same_seed_same_output_other_seed_other_output() {
        for workload in [Workload::Stocks, Workload::Taxi, Workload::Ticker] {
            for format in [Format::Jsonl, Format::Csv] {
                let cfg = config(workload, format);
                let a = generate(&cfg);
                assert_eq!(a, generate(&cfg), "{workload:?} {format:?}");
                let other = GeneratorConfig {
                    seed: 43,
                    ..cfg.clone()
                };
                assert_ne!(a, generate(&other), "{workload:?} {format:?}");
                let header = usize::from(format == Format::Csv);
                assert_eq!(a.lines().count(), 1000 + header);
            }
        }
    }

    #[test]
    fn count_is_respected_and_zero_count_is_empty() {
        let cfg = GeneratorConfig {
            count: 7,
            ..config(Workload::Stocks, Format::Jsonl)
        };
        assert_eq!(generate(&cfg).lines().count(), 7);
        let cfg = GeneratorConfig {
            count: 0,
            ..config(Workload::Taxi, Format::Csv)
        };
        assert_eq!(generate(&cfg), format!("{TAXI_HEADER}\n"));
    }

    #[test]
    fn stocks_have_the_contract_fields_times_and_keys() {
        let cfg = GeneratorConfig {
            keys: 12,
            start: Some("2024-01-22T13:45:00Z".into()),
            ..config(Workload::Stocks, Format::Jsonl)
        };
        let text = generate(&cfg);
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(r#"{"ts":"2024-01-22T13:45:00.000Z","symbol":""#),
            "{first}"
        );
        let mut symbols = std::collections::BTreeSet::new();
        for (i, obj) in json_lines(&text).iter().enumerate() {
            assert_eq!(obj.len(), 4);
            // No jitter: event i is at start + 10 ms · i.
            let ts = TimestampFormat::Rfc3339
                .parse_str(str_field(obj, "ts"))
                .unwrap();
            assert_eq!(ts, 1_705_931_100_000 + 10 * i as i64);
            let price = obj["price"].as_f64().unwrap();
            assert!(price >= 1.0 && (price * 100.0 - (price * 100.0).round()).abs() < 1e-6);
            let volume = obj["volume"].as_i64().unwrap();
            assert!((1..=1000).contains(&volume));
            symbols.insert(str_field(obj, "symbol").to_string());
        }
        let expected: std::collections::BTreeSet<String> = STOCK_SYMBOLS
            .iter()
            .map(|s| s.to_string())
            .chain(["SYM10".to_string(), "SYM11".to_string()])
            .collect();
        assert_eq!(symbols, expected);
    }

    #[test]
    fn base_times_saturate_instead_of_wrapping() {
        let g = Generator::new(&config(Workload::Stocks, Format::Jsonl)).expect("config");
        // start 2024-01-22 + 10 ms · i: the product overflows for i = u64::MAX.
        assert_eq!(g.base_time(3), g.base_time(0) + 30);
        assert_eq!(g.base_time(u64::MAX), i64::MAX);
        assert_eq!(g.base_time(i64::MAX as u64 / 10 + 1), i64::MAX);
    }

    #[test]
    fn jitter_moves_events_back_by_at_most_jitter() {
        let cfg = GeneratorConfig {
            count: 5000,
            jitter: Millis(250),
            ..config(Workload::Stocks, Format::Csv)
        };
        let text = generate(&cfg);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("ts,symbol,price,volume"));
        let mut out_of_order = 0;
        let mut max_seen = i64::MIN;
        for (i, line) in lines.enumerate() {
            let ts = TimestampFormat::Rfc3339
                .parse_str(line.split(',').next().unwrap())
                .unwrap();
            let base = DEFAULT_START_MS + 10 * i as i64;
            assert!(
                (base - 250..=base).contains(&ts),
                "event {i}: {ts} vs base {base}"
            );
            if ts < max_seen {
                out_of_order += 1;
            }
            max_seen = max_seen.max(ts);
        }
        assert!(
            out_of_order > 1000,
            "only {out_of_order} events out of order"
        );
    }

    #[test]
    fn ticker_sends_numbers_as_strings_with_microsecond_times() {
        let cfg = GeneratorConfig {
            keys: 11,
            ..config(Workload::Ticker, Format::Jsonl)
        };
        let text = generate(&cfg);
        let mut products = std::collections::BTreeSet::new();
        for (i, obj) in json_lines(&text).iter().enumerate() {
            assert_eq!(str_field(obj, "type"), "ticker");
            let num = |name: &str| str_field(obj, name).parse::<f64>().unwrap();
            assert!(
                num("best_bid") < num("price") && num("price") < num("best_ask"),
                "{obj:?}"
            );
            assert!(num("volume_24h") > 0.0);
            let volume = str_field(obj, "volume_24h");
            assert_eq!(volume.len() - volume.find('.').unwrap(), 9, "{volume}");
            let time = str_field(obj, "time");
            // 2024-01-22T00:00:00.000000Z: 6 fraction digits.
            assert_eq!(time.len(), 27, "{time}");
            let ms = TimestampFormat::Rfc3339.parse_str(time).unwrap();
            assert_eq!(ms, DEFAULT_START_MS + 10 * i as i64);
            products.insert(str_field(obj, "product_id").to_string());
        }
        assert!(
            products.contains("BTC-USD") && products.contains("P10-USD"),
            "{products:?}"
        );
        assert_eq!(products.len(), 11);
    }

    #[test]
    fn taxi_csv_has_header_us_times_and_dirty_cells() {
        let cfg = GeneratorConfig {
            count: 4000,
            keys: 20,
            ..config(Workload::Taxi, Format::Csv)
        };
        let text = generate(&cfg);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(TAXI_HEADER));
        let us = TimestampFormat::parse("%m/%d/%Y %I:%M:%S %p").unwrap();
        let (mut no_area, mut no_tips) = (0, 0);
        for (i, line) in lines.enumerate() {
            // The quoted location holds no comma, so a plain split works.
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 10, "{line}");
            // Second resolution: event i at 10 ms · i, truncated to the second.
            let ts = us.parse_str(cells[1]).unwrap();
            assert_eq!(ts, DEFAULT_START_MS + (10 * i as i64) / 1000 * 1000);
            match cells[4] {
                "" => no_area += 1,
                a => assert!((1..=20).contains(&a.parse::<u32>().unwrap())),
            }
            assert!(cells[5].starts_with("\"POINT (-87.") && cells[5].ends_with(")\""));
            let cents = |s: &str| (s.parse::<f64>().unwrap() * 100.0).round() as i64;
            let fare = cents(cells[6]);
            assert!((325..=8000).contains(&fare));
            let tips = if cells[7].is_empty() {
                no_tips += 1;
                0
            } else {
                cents(cells[7])
            };
            assert!((0..=2000).contains(&tips));
            assert_eq!(cents(cells[8]), fare + tips);
        }
        // Expected 3 % of 4000 = 120 and 5 % = 200; allow wide margins.
        assert!((60..=180).contains(&no_area), "{no_area} rows without area");
        assert!(
            (120..=280).contains(&no_tips),
            "{no_tips} rows without tips"
        );
    }

    #[test]
    fn taxi_jsonl_uses_nulls_for_empty_cells() {
        let cfg = GeneratorConfig {
            count: 2000,
            ..config(Workload::Taxi, Format::Jsonl)
        };
        let objs = json_lines(&generate(&cfg));
        assert!(objs.iter().any(|o| o["tips"].is_null()));
        assert!(objs.iter().any(|o| o["pickup_community_area"].is_null()));
        let o = objs
            .iter()
            .find(|o| !o["pickup_community_area"].is_null())
            .unwrap();
        assert!(o["pickup_community_area"].is_u64());
        assert_eq!(o.len(), 10);
    }

    #[test]
    fn bad_config_is_named() {
        let cfg = GeneratorConfig {
            start: Some("monday".into()),
            ..config(Workload::Stocks, Format::Jsonl)
        };
        let err = write_generated(&cfg, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().starts_with("source.start `monday`"),
            "{err}"
        );
        let cfg = GeneratorConfig {
            keys: 0,
            ..config(Workload::Stocks, Format::Jsonl)
        };
        let err = GeneratorSource::new(&cfg).err().unwrap().to_string();
        assert_eq!(
            err,
            "reading generator: source.keys is 0; use at least 1 key"
        );
    }

    #[test]
    fn source_matches_written_output_with_offsets() {
        let cfg = GeneratorConfig {
            count: 25,
            ..config(Workload::Ticker, Format::Csv)
        };
        let mut src = GeneratorSource::new(&cfg).unwrap();
        assert_eq!(src.size_hint(), Some(SizeHint::Records(25)));
        let mut out = RawBatch::default();
        while src.poll(&mut out, 10).unwrap() == Poll::Ready {}
        assert_eq!(src.position(), 25);
        assert_eq!(out.len(), 26);
        let offsets: Vec<u64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (1..=26).collect::<Vec<_>>());
        assert!(
            out.iter()
                .all(|r| &**r.origin == "generator" && r.partition == 0)
        );
        let joined: String = out.iter().map(|r| format!("{}\n", r.payload)).collect();
        assert_eq!(joined, generate(&cfg));
    }

    #[test]
    fn rate_limits_each_poll_to_what_is_due() {
        // 10 records per second: the first poll releases record 0 only, and a poll never
        // sleeps for more than MAX_SLEEP.
        let cfg = GeneratorConfig {
            count: 100,
            rate: 10,
            ..config(Workload::Stocks, Format::Jsonl)
        };
        let mut src = GeneratorSource::new(&cfg).unwrap();
        let mut out = RawBatch::default();
        assert_eq!(src.poll(&mut out, 50).unwrap(), Poll::Ready);
        assert_eq!(out.len(), 1);
        let before = Instant::now();
        assert_eq!(src.poll(&mut out, 50).unwrap(), Poll::Ready);
        assert!(before.elapsed() < Duration::from_millis(500));
        // At most ~50 ms have passed (more on a loaded machine): far from all 100 records.
        assert!(
            out.len() <= 10,
            "{} records after ~50 ms at 10/s",
            out.len()
        );
    }

    #[test]
    fn fixed_point_formatting() {
        assert_eq!(Fixed(18723, 2).to_string(), "187.23");
        assert_eq!(Fixed(5, 2).to_string(), "0.05");
        assert_eq!(Fixed(1_234_567_890_000, 8).to_string(), "12345.67890000");
        assert_eq!(Fixed(-879_500, 4).to_string(), "-87.9500");
    }
}
