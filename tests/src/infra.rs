//! Kafka and PostgreSQL for tests, and a fresh topic, database and tenant per test.

use anyhow::Context;
use events::TenantId;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use service_kit::auth::{ensure_tenant, issue_key, Scope};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// A record as it sits in a topic.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl RawRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Where the shared servers are.
struct Servers {
    brokers: String,
    admin_database_url: String,
}

static SERVERS: OnceCell<Servers> = OnceCell::const_new();

async fn servers() -> &'static Servers {
    SERVERS
        .get_or_init(|| async {
            match (std::env::var("RSVP_TEST_KAFKA_BROKERS"), std::env::var("RSVP_TEST_DATABASE_URL")) {
                (Ok(brokers), Ok(admin_database_url)) => Servers { brokers, admin_database_url },
                _ => containers::start().await.expect("cannot start Kafka and PostgreSQL in Docker; set RSVP_TEST_KAFKA_BROKERS and RSVP_TEST_DATABASE_URL or run the README's test command"),
            }
        })
        .await
}

/// Everything one test owns.
pub struct TestEnv {
    pub brokers: String,
    pub topic: String,
    pub database_url: String,
    pub pool: PgPool,
    pub tenant: TenantId,
    /// A key with every scope for `tenant`.
    pub key: String,
    database: String,
    admin_database_url: String,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_partitions(3).await
    }

    pub async fn with_partitions(partitions: i32) -> Self {
        let servers = servers().await;
        Self::on(&servers.brokers, &servers.admin_database_url, partitions).await
    }

    /// A topic, database and tenant on the given servers (e.g. a broker and a database server of
    /// the test's own, which it may stop and restart).
    pub async fn on(brokers: &str, admin_database_url: &str, partitions: i32) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let topic = format!("rsvp-test-{id}");
        create_topic(brokers, &topic, partitions).await.expect("cannot create the test topic");
        let database = format!("rsvp_test_{id}");
        let mut admin = PgConnection::connect(admin_database_url).await.expect("cannot reach PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&mut admin)
            .await
            .expect("cannot create the test database");
        let database_url = with_database(admin_database_url, &database);
        let pool = service_kit::db::connect(&database_url, 5).await.expect("cannot connect to the test database");
        service_kit::db::migrate(&pool).await.expect("cannot migrate the test database");
        let tenant = ensure_tenant(&pool, "tenant-a").await.expect("cannot create the tenant");
        let key = issue_key(&pool, tenant, &Scope::ALL, None, Some("test")).await.expect("cannot issue a key").token;
        Self {
            brokers: brokers.to_owned(),
            topic,
            database_url,
            pool,
            tenant,
            key,
            database,
            admin_database_url: admin_database_url.to_owned(),
        }
    }

    /// Another key for the test tenant, with the given scopes, optionally inviter-scoped.
    pub async fn key_with(&self, scopes: &[Scope], inviter: Option<&str>) -> String {
        issue_key(&self.pool, self.tenant, scopes, inviter, None).await.expect("cannot issue a key").token
    }

    /// Every committed event of the test's topic, in per-partition order.
    pub fn read_log(&self) -> Vec<events::Envelope> {
        let mut events = Vec::new();
        service_kit::kafka::read_to_end(
            &self.brokers,
            &self.topic,
            &Default::default(),
            std::time::Duration::from_secs(60),
            |_, _, m| {
                events.push(service_kit::kafka::envelope_of(m)?);
                Ok(())
            },
        )
        .expect("cannot read the log");
        events
    }

    /// The first target of every invite created in the log, in per-partition order: which
    /// creates were committed.
    /// The values are sealed in the log; they are opened with the test's key store.
    pub async fn created_targets(&self) -> Vec<String> {
        let sealed: Vec<String> = self
            .read_log()
            .iter()
            .filter_map(|e| match e.invite_event() {
                Some((_, events::InviteEvent::Created(c))) => Some(c.targets[0].value.clone()),
                _ => None,
            })
            .collect();
        let mut doc = serde_json::json!(sealed);
        self.unsealer().unseal(self.tenant, &mut doc).await.expect("cannot open the targets");
        serde_json::from_value(doc).expect("strings")
    }

    /// Opens sealed personal data as the services do, with the harness's master key.
    pub fn unsealer(&self) -> service_kit::vault::Unsealer {
        let master = service_kit::vault::MasterKey::new(crate::MASTER_KEY).expect("a valid master key");
        service_kit::vault::Unsealer::new(master, self.pool.clone())
    }

    /// Appends records to the test's topic as they are (no transaction), acknowledged by the broker.
    pub async fn produce_raw(&self, key: &str, payload: &[u8], headers: &[(&str, &str)]) {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = service_kit::kafka::client_config(&self.brokers, "rsvp-tests")
            .set("partitioner", "murmur2_random")
            .create()
            .expect("cannot create a producer");
        let headers =
            headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(*value) }));
        producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(payload).headers(headers),
                std::time::Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("cannot produce");
    }

    /// Appends an event the way the writer does (CloudEvents headers, JSON data).
    pub async fn produce_event(&self, envelope: &events::Envelope) {
        let headers = envelope.cloudevents_headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.produce_raw(&envelope.key(), &envelope.data_json(), &headers).await;
    }

    /// Appends events the way the writer does, in order, through one producer; all acknowledged.
    pub async fn produce_events(&self, envelopes: &[events::Envelope]) {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = service_kit::kafka::client_config(&self.brokers, "rsvp-tests")
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("cannot create a producer");
        let mut deliveries = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let (key, payload) = (envelope.key(), envelope.data_json());
            let record = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&payload)
                .headers(service_kit::kafka::headers_of(envelope));
            deliveries.push(producer.send_result(record).map_err(|(e, _)| e).expect("cannot produce"));
        }
        for delivery in deliveries {
            delivery.await.expect("the producer went away").map_err(|(e, _)| e).expect("cannot produce");
        }
    }

    /// Every record of another topic (e.g. the dead-letter topic), with its headers.
    pub fn read_raw(&self, topic: &str) -> Vec<RawRecord> {
        use rdkafka::message::{Headers, Message};
        let mut records = Vec::new();
        service_kit::kafka::read_to_end(
            &self.brokers,
            topic,
            &Default::default(),
            std::time::Duration::from_secs(60),
            |_, _, m| {
                records.push(RawRecord {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
                Ok(())
            },
        )
        .expect("cannot read the topic");
        records
    }

    /// Takes the test's database offline (no new connections, every open one cut) or back
    /// online: a database outage as a service sees it, without touching other tests.
    pub async fn set_database_online(&self, online: bool) {
        let mut admin = PgConnection::connect(&self.admin_database_url).await.expect("cannot reach PostgreSQL");
        sqlx::query(&format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {online}", self.database))
            .execute(&mut admin)
            .await
            .expect("cannot change the database's connection setting");
        if !online {
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&self.database)
                .execute(&mut admin)
                .await
                .expect("cannot cut the database's connections");
        }
    }

    /// A second tenant with its own all-scopes key: for isolation tests.
    pub async fn other_tenant(&self, name: &str) -> (TenantId, String) {
        let tenant = ensure_tenant(&self.pool, name).await.expect("cannot create the tenant");
        let key = issue_key(&self.pool, tenant, &Scope::ALL, None, None).await.expect("cannot issue a key").token;
        (tenant, key)
    }
}

impl Drop for TestEnv {
    /// Drops the database so repeated local runs do not pile them up (best effort).
    fn drop(&mut self) {
        let (url, database) = (self.admin_database_url.clone(), self.database.clone());
        let pool = self.pool.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                pool.close().await;
                let mut admin = PgConnection::connect(&url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Every event of the test's topic: (partition, offset, tenant, stream key, event id).
pub fn placed(env: &TestEnv) -> Vec<(i32, i64, events::TenantId, String, uuid::Uuid)> {
    let mut found = Vec::new();
    service_kit::kafka::read_to_end(
        &env.brokers,
        &env.topic,
        &Default::default(),
        std::time::Duration::from_secs(60),
        |p, o, m| {
            let e = service_kit::kafka::envelope_of(m)?;
            found.push((p, o, e.meta.tenant_id, e.key(), e.meta.event_id));
            Ok(())
        },
    )
    .unwrap();
    found
}

pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        service_kit::kafka::client_config(brokers, "rsvp-tests").create().context("cannot create admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1)).set("retention.ms", "-1");
    let results = admin.create_topics([&new], &AdminOptions::new()).await.context("cannot create topic")?;
    for r in results {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t}: {e}"))?;
    }
    Ok(())
}

/// Deletes a topic (best effort: benchmarks clean up after themselves).
pub async fn delete_topic(brokers: &str, topic: &str) {
    if let Ok(admin) =
        service_kit::kafka::client_config(brokers, "rsvp-tests").create::<AdminClient<DefaultClientContext>>()
    {
        let _ = admin.delete_topics(&[topic], &AdminOptions::new()).await;
    }
}

/// The same URL pointing at another database.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

mod containers {
    //! The laptop path: Kafka and PostgreSQL in Docker, alive for the rest of the test process.
    use super::Servers;
    use testcontainers_modules::kafka::apache::Kafka;
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;

    pub async fn start() -> anyhow::Result<Servers> {
        let kafka = Kafka::default().start().await?;
        let brokers =
            format!("127.0.0.1:{}", kafka.get_host_port_ipv4(testcontainers_modules::kafka::apache::KAFKA_PORT).await?);
        let postgres = Postgres::default().start().await?;
        let port = postgres.get_host_port_ipv4(5432).await?;
        let admin_database_url = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres");
        // The containers must outlive every test of this process.
        std::mem::forget(kafka);
        std::mem::forget(postgres);
        Ok(Servers { brokers, admin_database_url })
    }
}
