//! `weir produce`: sends lines (a file, or stdin: `weir gen … | weir produce …`) to a Kafka
//! topic, one message per line, keyed by fields of each JSON line, at a chosen rate — the
//! seed projects' producer scripts, so a Kafka demo is a broker and two commands.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::producer::BaseRecord;

/// `weir produce` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Bootstrap servers, `host:port[,host:port…]`.
    #[arg(long)]
    pub brokers: String,
    /// The topic to send to.
    #[arg(long)]
    pub topic: String,
    /// Read lines from this file (default: stdin).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Key each message by these fields of its JSON line (one field: its value; several:
    /// their values as a JSON array). Without it, messages have no key.
    #[arg(long, value_delimiter = ',')]
    pub key: Vec<String>,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Messages per second (0 = as fast as the broker takes them).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Skip the first line (a CSV header).
    #[arg(long)]
    pub skip_header: bool,
    /// A librdkafka producer property, `name=value` (as kcat's `-X`): security, SASL,
    /// batching. Repeat for several.
    #[arg(short = 'X', long = "option", value_parser = parse_option)]
    pub options: Vec<(String, String)>,
}

/// Splits `name=value`.
fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "`{s}` is not name=value; write e.g. -X security.protocol=SASL_SSL"
        )),
    }
}

/// Sends every line and waits until the broker confirmed all of them; returns how many
/// were sent.
pub fn run(args: &Args) -> anyhow::Result<u64> {
    if let Some(n) = args.partitions {
        create_topic(&args.brokers, &args.topic, n)?;
    }
    let (producer, deliveries) =
        crate::kafka::producer(&args.brokers, args.options.iter().map(|(k, v)| (k, v)))
            .context("creating the Kafka producer")?;
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let started = Instant::now();
    let mut sent = 0u64;
    for (i, line) in input.lines().enumerate() {
        let line = line.context("reading the input")?;
        if (i == 0 && args.skip_header) || line.trim().is_empty() {
            continue;
        }
        if args.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let key = message_key(&line, &args.key);
        let mut record = BaseRecord::to(&args.topic).payload(line.as_bytes());
        if let Some(k) = &key {
            record = record.key(k.as_bytes());
        }
        crate::kafka::send(&producer, record).with_context(|| format!("sending line {}", i + 1))?;
        sent += 1;
    }
    crate::kafka::confirm(
        &producer,
        &deliveries,
        0,
        std::time::Duration::from_secs(60),
    )
    .map_err(|e| anyhow::anyhow!("{e} (of {sent} sent)"))?;
    Ok(sent)
}

/// The key of a JSON line: one field's value (strings as they are, other values as JSON),
/// or several fields' values as a JSON array; `None` without key fields or when the line is
/// not a JSON object (it is sent unkeyed, and the pipeline dead-letters it).
fn message_key(line: &str, fields: &[String]) -> Option<String> {
    if fields.is_empty() {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let object = value.as_object()?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match fields {
        [one] => object.get(one).map(text),
        many => Some(
            serde_json::Value::Array(
                many.iter()
                    .map(|f| object.get(f).cloned().unwrap_or(serde_json::Value::Null))
                    .collect(),
            )
            .to_string(),
        ),
    }
}

/// Creates `topic` with `partitions` partitions (replication 1) unless it exists.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    crate::kafka::create_topic(brokers, topic, partitions, &[], std::iter::empty())
        .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_keyed_by_its_fields() {
        let line = r#"{"symbol":"AAPL","venue":3,"price":1.5}"#;
        assert_eq!(message_key(line, &[]), None);
        assert_eq!(message_key(line, &["symbol".into()]), Some("AAPL".into()));
        assert_eq!(message_key(line, &["venue".into()]), Some("3".into()));
        assert_eq!(
            message_key(line, &["symbol".into(), "venue".into()]),
            Some(r#"["AAPL",3]"#.into())
        );
        assert_eq!(message_key("not json", &["symbol".into()]), None);
    }
}
