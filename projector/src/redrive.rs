//! `projector redrive`: re-applies the events the live projector parked in the dead-letter topic,
//! once a fix (a migration, a new release) lets the read models take them.
//!
//! A parked event freezes its stream: every later event of it meets the version guard and is
//! parked too. Redrive reads `<topic>.dlq` from where it last stopped, keeps the records this
//! projector (its name) parked from this topic, and re-applies them stream by stream in version
//! order through the same projection code as the live projector, in their original place in the
//! log (partition and offset from the `rsvp_dlq_*` headers), so the rows equal what a replay
//! writes.
//!
//! Exactly once in effect: an event whose (stream, version) the read models already hold with the
//! same event id is recognised and left alone, and the history row and the version guard keep a
//! live batch and a redrive running at the same time from both applying an event. Running it twice
//! changes nothing. Its position (`projector_redrive`, beside the read models so a rebuild starts
//! it afresh) is the first record not yet resolved: a later run reads only what is new or was still
//! refused. What it still cannot apply stays parked and is reported, never dropped.

use crate::consumer::Positioned;
use crate::projection;
use crate::replay::Source;
use anyhow::Context;
use events::Envelope;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use uuid::Uuid;

/// Reading the dead-letter topic must end.
const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the live projector parks what it cannot project.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// A record of the dead-letter topic, parked by this projector from this topic.
#[derive(Debug, Clone)]
pub struct Parked {
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    /// Where it sat in the log (`rsvp_dlq_partition`, `rsvp_dlq_offset`).
    pub origin: Option<(i32, i64)>,
    /// Why it was parked (`rsvp_dlq_reason`).
    pub reason: String,
    pub key: Option<String>,
    /// The event, or why it cannot be decoded.
    pub event: Result<Envelope, String>,
}

impl std::fmt::Display for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.origin {
            Some((partition, offset)) => write!(f, "partition {partition} offset {offset}")?,
            None => write!(f, "dead-letter offset {}", self.dlq_offset)?,
        }
        match &self.event {
            Ok(e) => write!(f, " stream {} version {} ({})", e.meta.stream.as_uuid(), e.meta.version, e.event_type())?,
            Err(_) => {
                if let Some(key) = &self.key {
                    write!(f, " key {key}")?;
                }
            }
        }
        write!(f, ": {}", self.reason)
    }
}

/// The parked records of `source` in the dead-letter topic from `start` (per partition) to its
/// end, and the positions after what was read. No dead-letter topic: nothing parked.
fn read_parked(source: &Source, start: &HashMap<i32, i64>) -> anyhow::Result<(Vec<Parked>, BTreeMap<i32, i64>)> {
    let dlq = dead_letter_topic(&source.topic);
    let consumer: BaseConsumer = service_kit::kafka::client_config(&source.brokers, "rsvp-redrive")
        .create()
        .context("cannot create a consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&dlq), Duration::from_secs(30))
        .with_context(|| format!("cannot read metadata of topic {dlq}"))?;
    let exists = metadata.topics().iter().any(|t| t.name() == dlq && t.error().is_none() && !t.partitions().is_empty());
    let (mut parked, mut ends) = (Vec::new(), BTreeMap::new());
    if !exists {
        return Ok((parked, ends));
    }
    service_kit::kafka::read_to_end(&source.brokers, &dlq, start, READ_TIMEOUT, |p, o, m| {
        ends.insert(p, o + 1);
        let header =
            |name: &str| m.headers()?.iter().find(|h| h.key == name).and_then(|h| std::str::from_utf8(h.value?).ok());
        if header("rsvp_dlq_topic") != Some(source.topic.as_str())
            || header("rsvp_dlq_consumer") != Some(source.name.as_str())
        {
            return Ok(());
        }
        let origin =
            (|| Some((header("rsvp_dlq_partition")?.parse().ok()?, header("rsvp_dlq_offset")?.parse().ok()?)))();
        parked.push(Parked {
            dlq_partition: p,
            dlq_offset: o,
            origin,
            reason: header("rsvp_dlq_reason").unwrap_or("(no reason given)").to_owned(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            event: service_kit::kafka::envelope_of(m).map_err(|e| e.to_string()),
        });
        Ok(())
    })?;
    Ok((parked, ends))
}

async fn read_parked_async(
    source: &Source,
    start: HashMap<i32, i64>,
) -> anyhow::Result<(Vec<Parked>, BTreeMap<i32, i64>)> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || read_parked(&source, &start))
        .await
        .context("the dead-letter reader panicked")?
}

/// The event id the read models hold for this event's (stream, version), if any.
async fn held(conn: &mut PgConnection, event: &Envelope) -> anyhow::Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT event_id FROM events WHERE stream_id = $1 AND version = $2")
        .bind(event.meta.stream.as_uuid())
        .bind(event.meta.version as i64)
        .fetch_optional(conn)
        .await?)
}

/// The parked events of the log up to `upto` that the read models reached through `conn` do not
/// hold: what the live projection lacks although its positions are past it (`verify`).
pub async fn still_parked(
    source: &Source,
    conn: &mut PgConnection,
    upto: &HashMap<i32, i64>,
) -> anyhow::Result<Vec<Parked>> {
    let (parked, _) = read_parked_async(source, HashMap::new()).await?;
    let mut missing: Vec<Parked> = Vec::new();
    for p in parked {
        if let Some((partition, offset)) = p.origin {
            if offset >= upto.get(&partition).copied().unwrap_or(0) {
                continue; // beyond what is verified
            }
        }
        let applied = match &p.event {
            Ok(event) => held(conn, event).await?.is_some_and(|id| id == event.meta.event_id),
            Err(_) => false,
        };
        // The same event may have been parked twice (a crash between parking and moving on).
        if !applied && !missing.iter().any(|m| m.origin.is_some() && m.origin == p.origin) {
            missing.push(p);
        }
    }
    Ok(missing)
}

/// What a redrive did.
#[derive(Debug, Default)]
pub struct Redriven {
    /// Parked records of this projector read (from the stored position on).
    pub read: usize,
    /// Applied now, in the order applied.
    pub applied: Vec<Parked>,
    /// Already in the read models (applied by an earlier redrive, or parked twice).
    pub already: usize,
    /// Still not applicable, with why: they stay parked.
    pub refused: Vec<(Parked, String)>,
}

/// Re-applies the parked events of `source` (see the module docs).
pub async fn redrive(source: &Source) -> anyhow::Result<Redriven> {
    let pool = service_kit::db::connect(&source.database_url, 2).await?;
    service_kit::db::migrate(&pool).await?;
    let dlq = dead_letter_topic(&source.topic);
    let start: HashMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
        "SELECT partition, next_offset FROM projector_redrive WHERE consumer = $1 AND topic = $2",
    )
    .bind(&source.name)
    .bind(&dlq)
    .fetch_all(&pool)
    .await
    .context("cannot read the redrive position")?
    .into_iter()
    .collect();
    let (parked, ends) = read_parked_async(source, start).await?;

    let mut done = Redriven { read: parked.len(), ..Redriven::default() };
    // Per stream, in version order (then in the order parked).
    let mut streams: BTreeMap<Uuid, Vec<Parked>> = BTreeMap::new();
    for p in parked {
        match &p.event {
            Ok(event) if p.origin.is_some() => streams.entry(*event.meta.stream.as_uuid()).or_default().push(p),
            Ok(_) => done.refused.push((p, "the record does not say where it sat in the log".into())),
            Err(e) => {
                let why = format!("undecodable: {e}");
                done.refused.push((p, why));
            }
        }
    }
    let mut conn = pool.acquire().await?;
    for (_, mut events) in streams {
        events.sort_by_key(|p| (p.event.as_ref().map_or(0, |e| e.meta.version), p.dlq_partition, p.dlq_offset));
        for p in events {
            let (Ok(event), Some((partition, offset))) = (&p.event, p.origin) else { unreachable!("sorted out above") };
            match held(&mut conn, event).await? {
                Some(id) if id == event.meta.event_id => {
                    done.already += 1;
                    continue;
                }
                Some(other) => {
                    let why =
                        format!("version {} of the stream is held by another event ({other})", event.meta.version);
                    done.refused.push((p, why));
                    continue;
                }
                None => {}
            }
            let one = [Positioned { partition, offset, envelope: event.clone() }];
            // No positions: the live projector's stay where they are.
            match projection::apply_batch(&pool, &source.name, &source.topic, &one, &BTreeMap::new()).await {
                Ok(0) => done.already += 1, // the live projector got there first
                Ok(_) => done.applied.push(p),
                Err(e) if projection::is_refusal(&e) => {
                    let why = format!("the read models still refuse it: {e:#}");
                    done.refused.push((p, why));
                }
                Err(e) => return Err(e.context("the database failed during the redrive; run it again")),
            }
        }
    }

    // The position: the first record still refused, else the end of what was read.
    for (partition, end) in ends {
        let next = done
            .refused
            .iter()
            .filter(|(p, _)| p.dlq_partition == partition)
            .map(|(p, _)| p.dlq_offset)
            .min()
            .unwrap_or(end);
        sqlx::query(
            "INSERT INTO projector_redrive (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
        )
        .bind(&source.name)
        .bind(&dlq)
        .bind(partition)
        .bind(next)
        .execute(&mut *conn)
        .await
        .context("cannot store the redrive position")?;
    }
    Ok(done)
}
