//! Reading the log to its end (`service_kit::kafka::read_to_end`), which the writer's state,
//! `projector verify`, `rebuild`, `as-of` and the fault-injection audit all rest on, never ends
//! before a committed record: a transaction still open below it holds the read until it is decided
//! (or the read fails for its timeout), instead of the read stopping short and calling that the end.

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rsvp_tests::TestEnv;
use std::time::Duration;

fn transactional(brokers: &str, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let producer: ThreadedProducer<DefaultProducerContext> = service_kit::kafka::client_config(brokers, id)
        .set("transactional.id", id)
        .create()
        .expect("cannot create a producer");
    producer.init_transactions(Duration::from_secs(30)).expect("cannot initialise transactions");
    producer
}

fn read(env: &TestEnv, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let mut payloads = Vec::new();
    service_kit::kafka::read_to_end(&env.brokers, &env.topic, &Default::default(), timeout, |_, _, m| {
        payloads.push(String::from_utf8_lossy(rdkafka::Message::payload(m).unwrap_or_default()).into_owned());
        Ok(())
    })?;
    Ok(payloads)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_to_the_end_waits_out_an_open_transaction_instead_of_skipping_what_was_committed_after_it() {
    let env = TestEnv::with_partitions(1).await;
    tokio::task::block_in_place(|| {
        // A transaction left open (a writer that has not committed yet, or a zombie not yet
        // fenced), and after it on the same partition a record of a transaction that committed.
        let open = transactional(&env.brokers, &format!("{}-open", env.topic));
        open.begin_transaction().unwrap();
        open.send(BaseRecord::<str, str>::to(&env.topic).partition(0).payload("undecided")).unwrap();
        open.flush(Duration::from_secs(30)).unwrap();
        let committed = transactional(&env.brokers, &format!("{}-committed", env.topic));
        committed.begin_transaction().unwrap();
        committed.send(BaseRecord::<str, str>::to(&env.topic).partition(0).payload("committed")).unwrap();
        committed.commit_transaction(Duration::from_secs(30)).unwrap();

        // While the first is open, a read cannot know the end: it must not claim one without the
        // committed record.
        match read(&env, Duration::from_secs(3)) {
            Ok(payloads) => assert!(
                payloads.contains(&"committed".to_owned()),
                "the read ended without a committed record: {payloads:?}"
            ),
            Err(e) => assert!(e.to_string().contains("open transaction"), "{e:#}"),
        }

        // Once it is decided, the read ends, with what committed and without what aborted.
        open.abort_transaction(Duration::from_secs(30)).unwrap();
        assert_eq!(read(&env, Duration::from_secs(30)).unwrap(), vec!["committed".to_owned()]);
    });
}
