//! In-process: work that writes the metadata image and waits for its fsync (a topic
//! creation, auto-create, a new producer-id block) never runs on the connection task.
//! `dispatch` is what the connection task awaits; here the test's own thread is that task
//! (a current-thread runtime), and the broker's log events say which thread did the work:
//! it must be another one (the blocking pool). Requests with nothing to write are answered
//! at dispatch's first poll, as before.

mod common;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, InitProducerIdRequest, MetadataRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Every event logged in this test process: the thread it was logged on and its text
/// (message and fields).
static EVENTS: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        EVENTS
            .lock()
            .unwrap()
            .push((std::thread::current().id(), text.0));
    }
}

fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::registry().with(Capture).init();
    });
}

/// The threads that logged an event containing every one of `words`.
fn threads_logging(words: &[&str]) -> Vec<ThreadId> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, text)| words.iter().all(|w| text.contains(w)))
        .map(|(thread, _)| *thread)
        .collect()
}

/// The work behind `words` was done, and not on this thread (the connection task's).
fn assert_done_off_this_thread(words: &[&str]) {
    let threads = threads_logging(words);
    assert!(!threads.is_empty(), "no event {words:?} was logged");
    assert!(
        !threads.contains(&std::thread::current().id()),
        "{words:?} was done on the connection task's thread"
    );
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// An idempotent (not transactional) producer asking for a new id.
fn new_producer() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

fn metadata_for(topic: &str) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(true)
}

#[tokio::test]
async fn create_topics_runs_off_the_connection_task() {
    capture();
    let b = common::open(&[]);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("made-by-request"))
            .with_num_partitions(3)
            .with_replication_factor(1)])
        .with_timeout_ms(5_000);
    let response = common::call(&b.broker, 5, &request).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(
        b.broker.topic("made-by-request").unwrap().partitions.len(),
        3
    );
    assert_done_off_this_thread(&["topic created", "made-by-request"]);
}

#[tokio::test]
async fn auto_create_runs_off_the_connection_task_and_known_topics_do_not() {
    capture();
    let b = common::open(&[("auto.create.topics.enable", "true")]);
    let response = common::call(&b.broker, 9, &metadata_for("made-by-metadata")).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert!(b.broker.topic("made-by-metadata").is_some());
    assert_done_off_this_thread(&["topic created", "made-by-metadata"]);

    // Nothing to create: dispatched at once, on this thread.
    let dispatched = futures_util::FutureExt::now_or_never(common::send(
        &b.broker,
        9,
        &metadata_for("made-by-metadata"),
    ))
    .expect("a metadata request for a known topic is dispatched at once");
    let response = common::decode::<MetadataRequest>(9, dispatched.await);
    assert_eq!(response.topics[0].error_code, 0);
}

#[tokio::test]
async fn a_new_producer_id_block_is_reserved_off_the_connection_task() {
    capture();
    let b = common::open(&[]);
    // A fresh broker holds no block yet: the first id needs one.
    assert!(b.broker.producer_id_block_used_up());
    let response = common::call(&b.broker, 4, &new_producer()).await;
    assert_eq!(response.error_code, 0, "{response:?}");
    assert_eq!(response.producer_id.0, 0, "{response:?}");
    assert_done_off_this_thread(&["producer-id block reserved"]);

    // Ids from the reserved block: no disk work, dispatched at once.
    assert!(!b.broker.producer_id_block_used_up());
    let dispatched =
        futures_util::FutureExt::now_or_never(common::send(&b.broker, 4, &new_producer()))
            .expect("dispatched at once");
    let response = common::decode::<InitProducerIdRequest>(4, dispatched.await);
    assert_eq!(response.producer_id.0, 1);
}
