//! What the Kafka source, the Kafka sink and `weir produce` share: a producer that counts
//! the deliveries the broker refused, a send that waits while librdkafka's local queue
//! is full, and, for exactly-once, the consumed offsets a transaction commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

/// Deliveries the broker refused, counted by the producer's delivery callback.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    /// How many were refused, and the first refusal's error.
    pub fn failed(&self) -> (u64, Option<String>) {
        let first = self.first_error.lock().ok().and_then(|f| f.clone());
        (self.failed.load(Ordering::Relaxed), first)
    }
}

/// The producer's context: counts refused deliveries.
pub struct Counting(pub Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.0.first_error.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// A producer that counts refused deliveries, from `bootstrap.servers` and `options`
/// (which override Weir's own settings).
pub fn producer<'a>(
    brokers: &str,
    options: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> KafkaResult<(ThreadedProducer<Counting>, Arc<Deliveries>)> {
    let deliveries = Arc::new(Deliveries::default());
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers).set("linger.ms", "5");
    for (k, v) in options {
        cfg.set(k, v);
    }
    let producer = cfg.create_with_context(Counting(deliveries.clone()))?;
    Ok((producer, deliveries))
}

/// Sends a record, waiting while the local queue is full (deliveries make room).
pub fn send(
    producer: &ThreadedProducer<Counting>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> KafkaResult<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Waits, at most `timeout`, until the broker confirmed or refused every message sent; an
/// error when any was refused since `before` (a count from [`Deliveries::failed`]).
pub fn confirm(
    producer: &ThreadedProducer<Counting>,
    deliveries: &Deliveries,
    before: u64,
    timeout: Duration,
) -> Result<(), String> {
    producer
        .flush(timeout)
        .map_err(|e| format!("waiting for the broker to confirm: {e}"))?;
    match deliveries.failed() {
        (n, first) if n > before => Err(format!(
            "{} messages were not delivered; the first error: {}",
            n - before,
            first.unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

/// Creates `topic` with `partitions` partitions and the topic settings `settings` (such as
/// `cleanup.policy = compact`), through a client with `options` (security settings); a
/// topic that exists already is left as it is.
pub fn create_topic<'a>(
    brokers: &str,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
    options: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let mut cfg = rdkafka::config::ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    for (k, v) in options {
        cfg.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = cfg
        .create()
        .map_err(|e| format!("creating the Kafka admin client: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in settings {
        new = new.set(k, v);
    }
    let results = runtime
        .block_on(
            admin.create_topics(
                [&new],
                &AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(5)))
                    .request_timeout(Some(Duration::from_secs(5))),
            ),
        )
        .map_err(|e| format!("creating topic {topic}: {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("creating topic {t}: {e}")),
        }
    }
    Ok(())
}
