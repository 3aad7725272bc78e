//! Audit tooling over the read models: `rebuild` (from offset 0 into a scratch schema, then swap
//! it in one transaction while readers go on) and `verify` (replay into a scratch schema and
//! compare it with the live read models row by row).
//!
//! A replay reads the partitions in an [`Interleaving`] of the caller's choice: all at once as the
//! broker hands them out (like the live projector), or one partition after another in a given
//! order. The read models must come out the same in every interleaving, since the order in which
//! two partitions are read says nothing about the order in which the writer decided.
//!
//! Nothing is passed over silently: every event a replay could not take is reported with where it
//! sits and why ([`PassedOver`]), and `verify` also looks at what the live projector parked in the
//! dead-letter topic ([`Verdict::parked`]).

use crate::consumer::Positioned;
use crate::projection::{self, SWAP_LOCK};
use anyhow::Context;
use service_kit::db::READ_MODEL_SCHEMA;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const REBUILD_SCHEMA: &str = "read_model_rebuild";
const VERIFY_SCHEMA: &str = "read_model_verify";
const RETIRED_SCHEMA: &str = "read_model_retired";
/// Reading the log must end: a bound, generous for a long log.
const READ_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where the log and the database are, and whose positions to follow.
#[derive(Debug, Clone)]
pub struct Source {
    pub database_url: String,
    pub brokers: String,
    pub topic: String,
    /// The projector name whose positions the read models carry.
    pub name: String,
    pub batch: usize,
    /// In which order a replay reads the partitions.
    pub interleaving: Interleaving,
}

/// The order in which a replay reads the partitions of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Interleaving {
    /// Every partition at once, their events interleaved as the broker hands them out (what the
    /// live projector does).
    #[default]
    AsRead,
    /// One partition after another, each read to its end before the next one starts.
    PartitionByPartition(PartitionOrder),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionOrder {
    Ascending,
    Descending,
    /// These partitions first, in this order; any other after them, ascending.
    Given(Vec<i32>),
}

impl std::str::FromStr for Interleaving {
    type Err = String;

    /// `as-read`, `ascending`, `descending`, or partitions in order (`2,0,1`).
    fn from_str(s: &str) -> Result<Self, String> {
        let order = match s {
            "as-read" => return Ok(Self::AsRead),
            "ascending" => PartitionOrder::Ascending,
            "descending" => PartitionOrder::Descending,
            list => {
                let partitions: Vec<i32> = list
                    .split(',')
                    .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        format!("{s:?}: expected as-read, ascending, descending or partitions in order (2,0,1)")
                    })?;
                let distinct: std::collections::BTreeSet<_> = partitions.iter().collect();
                if distinct.len() != partitions.len() {
                    return Err(format!("{s:?}: a partition is named twice"));
                }
                PartitionOrder::Given(partitions)
            }
        };
        Ok(Self::PartitionByPartition(order))
    }
}

impl PartitionOrder {
    /// The topic's partitions in this order.
    fn arrange(&self, mut partitions: Vec<i32>) -> anyhow::Result<Vec<i32>> {
        partitions.sort_unstable();
        Ok(match self {
            Self::Ascending => partitions,
            Self::Descending => partitions.into_iter().rev().collect(),
            Self::Given(first) => {
                if let Some(p) = first.iter().find(|p| !partitions.contains(p)) {
                    anyhow::bail!("the log has no partition {p} (it has {partitions:?})");
                }
                first.iter().copied().chain(partitions.into_iter().filter(|p| !first.contains(p))).collect()
            }
        })
    }
}

#[derive(Debug, Default)]
pub struct Replayed {
    /// Events read (decodable ones, applied or not).
    pub events: u64,
    /// Records the replay could not take (undecodable, or refused by the read models): the read
    /// models it produced lack them.
    pub passed_over: Vec<PassedOver>,
    pub elapsed: Duration,
}

/// A record of the log a replay passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedOver {
    pub partition: i32,
    pub offset: i64,
    /// The stream's id (an undecodable record: its key, if it has one).
    pub stream: Option<String>,
    pub version: Option<u64>,
    pub reason: String,
}

impl PassedOver {
    fn refused(event: &Positioned, error: &anyhow::Error) -> Self {
        Self {
            partition: event.partition,
            offset: event.offset,
            stream: Some(event.envelope.meta.stream.as_uuid().to_string()),
            version: Some(event.envelope.meta.version),
            reason: format!("the read models refuse the event: {error:#}"),
        }
    }

    fn undecodable<M: rdkafka::Message>(
        partition: i32,
        offset: i64,
        record: &M,
        error: &dyn std::fmt::Display,
    ) -> Self {
        Self {
            partition,
            offset,
            stream: record.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            version: None,
            reason: format!("undecodable event: {error}"),
        }
    }
}

impl std::fmt::Display for PassedOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "partition {} offset {}", self.partition, self.offset)?;
        if let Some(stream) = &self.stream {
            write!(f, " stream {stream}")?;
        }
        if let Some(version) = self.version {
            write!(f, " version {version}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Replays the whole log into a fresh copy of the read models and swaps it in for the live one.
pub async fn rebuild(source: &Source) -> anyhow::Result<Replayed> {
    let started = Instant::now();
    let admin = service_kit::db::connect(&source.database_url, 2).await?;
    service_kit::db::migrate(&admin).await?;
    create_scratch(&admin, REBUILD_SCHEMA).await?;
    let scratch = service_kit::db::connect_with_schema(&source.database_url, 2, REBUILD_SCHEMA).await?;
    let mut replayed = Replayed::default();
    replay(&scratch, source, &HashMap::new(), None, &mut replayed).await?;

    // The swap: with every live batch held off, replay what the live projector applied meanwhile,
    // so both sides stand at the same positions, then trade the schemas' names.
    let mut tx = admin.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SWAP_LOCK).execute(&mut *tx).await?;
    let live = positions(&mut tx, READ_MODEL_SCHEMA, &source.name, &source.topic).await?;
    let ours = positions(&mut tx, REBUILD_SCHEMA, &source.name, &source.topic).await?;
    let tail = read_events(source, &ours, Some(&live)).await?;
    sqlx::query(&format!("SET LOCAL search_path TO {REBUILD_SCHEMA}, public")).execute(&mut *tx).await?;
    for chunk in tail.events.chunks(source.batch.max(1)) {
        projection::apply_in(&mut tx, &source.name, &source.topic, chunk, &next_positions(chunk)).await?;
    }
    projection::apply_in(&mut tx, &source.name, &source.topic, &[], &tail.next).await?;
    replayed.events += tail.events.len() as u64;
    replayed.passed_over.extend(tail.passed_over);
    sqlx::raw_sql(&format!(
        "ALTER SCHEMA {READ_MODEL_SCHEMA} RENAME TO {RETIRED_SCHEMA}; \
         ALTER SCHEMA {REBUILD_SCHEMA} RENAME TO {READ_MODEL_SCHEMA}; \
         DROP SCHEMA {RETIRED_SCHEMA} CASCADE"
    ))
    .execute(&mut *tx)
    .await
    .context("cannot swap the rebuilt read models in")?;
    tx.commit().await.context("cannot commit the swap")?;
    replayed.elapsed = started.elapsed();
    Ok(replayed)
}

/// A difference between the live read models and a replay of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub table: String,
    /// The row as the live read model has it (`None`: missing there).
    pub live: Option<String>,
    /// The row as the replay produced it (`None`: missing there).
    pub replayed: Option<String>,
}

/// What `verify` found.
#[derive(Debug)]
pub struct Verdict {
    pub replayed: Replayed,
    /// The first differences between the live read models and the replay (empty: none).
    pub drift: Vec<Drift>,
    /// Events the live projector parked in the dead-letter topic, within the verified positions,
    /// that the live read models still lack: both sides may agree and yet both miss them.
    pub parked: Vec<crate::redrive::Parked>,
}

impl Verdict {
    /// No drift, and nothing either side passed over: the read models hold the whole log.
    pub fn clean(&self) -> bool {
        self.drift.is_empty() && self.replayed.passed_over.is_empty() && self.parked.is_empty()
    }
}

/// Replays the log up to the live projector's positions into a scratch schema and compares every
/// table row by row with the live read models as they were at those positions, keeping the first
/// `limit` differences; and lists the events either side passed over.
pub async fn verify(source: &Source, limit: usize) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let admin = service_kit::db::connect(&source.database_url, 3).await?;
    service_kit::db::migrate(&admin).await?;
    create_scratch(&admin, VERIFY_SCHEMA).await?;

    // One snapshot of the live side: its positions and its rows, read in the same transaction.
    let mut live = admin.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *live).await?;
    let upto = positions(&mut live, READ_MODEL_SCHEMA, &source.name, &source.topic).await?;

    let scratch = service_kit::db::connect_with_schema(&source.database_url, 2, VERIFY_SCHEMA).await?;
    let mut replayed = Replayed::default();
    replay(&scratch, source, &HashMap::new(), Some(&upto), &mut replayed).await?;

    let mut drift = Vec::new();
    let mut other = scratch.acquire().await?;
    // The redrive's position is bookkeeping of the live side, not derived from the log.
    for table in tables(&admin, READ_MODEL_SCHEMA).await?.into_iter().filter(|t| t != "projector_redrive") {
        let left = table_rows(&mut live, READ_MODEL_SCHEMA, &table).await?;
        let right = table_rows(&mut other, VERIFY_SCHEMA, &table).await?;
        diff_sorted(&table, &left, &right, limit, &mut drift);
        if drift.len() >= limit {
            break;
        }
    }
    let parked = crate::redrive::still_parked(source, &mut live, &upto).await?;
    live.rollback().await?;
    drop(other);
    scratch.close().await;
    sqlx::query(&format!("DROP SCHEMA {VERIFY_SCHEMA} CASCADE")).execute(&admin).await?;
    replayed.elapsed = started.elapsed();
    Ok(Verdict { replayed, drift, parked })
}

/// Merges two sorted row lists, noting rows found on one side only.
fn diff_sorted(table: &str, live: &[String], replayed: &[String], limit: usize, out: &mut Vec<Drift>) {
    let (mut i, mut j) = (0, 0);
    while (i < live.len() || j < replayed.len()) && out.len() < limit {
        let drift = |live: Option<&String>, replayed: Option<&String>| Drift {
            table: table.to_owned(),
            live: live.cloned(),
            replayed: replayed.cloned(),
        };
        match (live.get(i), replayed.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                out.push(drift(Some(a), None));
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                out.push(drift(None, Some(b)));
                j += 1;
            }
            (Some(a), None) => {
                out.push(drift(Some(a), None));
                i += 1;
            }
            (None, None) => break,
        }
    }
}

/// Every row of a table as JSON text, in one order both sides share.
async fn table_rows(conn: &mut PgConnection, schema: &str, table: &str) -> anyhow::Result<Vec<String>> {
    // Byte order ("C"), the same order Rust's string comparison uses in the merge.
    let sql = format!(
        "SELECT r FROM (SELECT row_to_json(t)::text AS r FROM {schema}.\"{table}\" t) rows ORDER BY r COLLATE \"C\""
    );
    let rows = sqlx::query(&sql).fetch_all(conn).await.with_context(|| format!("cannot read {schema}.{table}"))?;
    Ok(rows.into_iter().map(|r| r.get::<String, _>("r")).collect())
}

async fn tables(pool: &PgPool, schema: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await?)
}

/// An empty copy of every read-model table (columns, defaults, constraints, indexes).
async fn create_scratch(pool: &PgPool, schema: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")).execute(&mut *tx).await?;
    for table in tables(pool, READ_MODEL_SCHEMA).await? {
        sqlx::query(&format!("CREATE TABLE {schema}.\"{table}\" (LIKE {READ_MODEL_SCHEMA}.\"{table}\" INCLUDING ALL)"))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("cannot copy table {table}"))?;
    }
    tx.commit().await?;
    Ok(())
}

async fn positions(
    conn: &mut PgConnection,
    schema: &str,
    name: &str,
    topic: &str,
) -> anyhow::Result<HashMap<i32, i64>> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(&format!(
        "SELECT partition, next_offset FROM {schema}.projector_offsets WHERE consumer = $1 AND topic = $2"
    ))
    .bind(name)
    .bind(topic)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

fn next_positions(events: &[Positioned]) -> BTreeMap<i32, i64> {
    events.iter().map(|e| (e.partition, e.offset + 1)).collect()
}

/// The reads a replay of `[start, end)` makes one after another, for the source's interleaving.
fn reads(
    source: &Source,
    start: &HashMap<i32, i64>,
    end: Option<&HashMap<i32, i64>>,
) -> anyhow::Result<Vec<(HashMap<i32, i64>, Option<HashMap<i32, i64>>)>> {
    let order = match &source.interleaving {
        Interleaving::AsRead => return Ok(vec![(start.clone(), end.cloned())]),
        Interleaving::PartitionByPartition(order) => order,
    };
    let consumer: rdkafka::consumer::BaseConsumer =
        service_kit::kafka::client_config(&source.brokers, "rsvp-log-reader").create()?;
    let partitions = service_kit::kafka::partitions(&consumer, &source.topic, Duration::from_secs(30))?;
    Ok(order
        .arrange(partitions)?
        .into_iter()
        .map(|p| {
            // With an end, partitions it does not name are not read: this one alone.
            let stop = end.map_or(i64::MAX, |e| e.get(&p).copied().unwrap_or(0));
            (HashMap::from([(p, start.get(&p).copied().unwrap_or(0))]), Some(HashMap::from([(p, stop)])))
        })
        .collect())
}

/// What the log reader hands the replay: a batch, the positions after it, and the records it
/// could not decode.
type Chunk = (Vec<Positioned>, BTreeMap<i32, i64>, Vec<PassedOver>);

/// Replays `[start, end)` of the log into the read models of `pool`, in batches, reading the
/// partitions in the source's interleaving.
async fn replay(
    pool: &PgPool,
    source: &Source,
    start: &HashMap<i32, i64>,
    end: Option<&HashMap<i32, i64>>,
    replayed: &mut Replayed,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(4);
    let reader = {
        let (source, start, end) = (source.clone(), start.clone(), end.cloned());
        tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(source.batch);
            let mut next = BTreeMap::new();
            let mut undecodable = Vec::new();
            for (start, end) in reads(&source, &start, end.as_ref())? {
                service_kit::kafka::read_range(
                    &source.brokers,
                    &source.topic,
                    &start,
                    end.as_ref(),
                    READ_TIMEOUT,
                    |p, o, m| {
                        next.insert(p, o + 1);
                        match service_kit::kafka::envelope_of(m) {
                            Ok(envelope) => batch.push(Positioned { partition: p, offset: o, envelope }),
                            Err(e) => {
                                tracing::warn!(partition = p, offset = o, error = %e, "replay passes over a poison event");
                                undecodable.push(PassedOver::undecodable(p, o, m, &e));
                            }
                        }
                        if batch.len() >= source.batch {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(source.batch));
                            tx.blocking_send((full, std::mem::take(&mut next), std::mem::take(&mut undecodable)))?;
                        }
                        Ok(())
                    },
                )?;
            }
            tx.blocking_send((batch, next, undecodable))?;
            anyhow::Ok(())
        })
    };
    while let Some((batch, next, undecodable)) = rx.recv().await {
        replayed.passed_over.extend(undecodable);
        replayed.events += batch.len() as u64;
        // Only a refusal is passed over (the live projector parked the same event); any other
        // failure ends the replay, so a rebuild never swaps in read models that miss events.
        let refused_only = |e: anyhow::Error| match projection::is_refusal(&e) {
            true => Ok(e),
            false => Err(e.context("the database failed during the replay; nothing was swapped")),
        };
        if let Err(e) = projection::apply_batch(pool, &source.name, &source.topic, &batch, &next).await {
            refused_only(e)?;
            // One by one: the database refuses some event even alone, as it did live.
            for event in &batch {
                let one = std::slice::from_ref(event);
                if let Err(e) =
                    projection::apply_batch(pool, &source.name, &source.topic, one, &next_positions(one)).await
                {
                    let refusal = refused_only(e)?;
                    tracing::warn!(partition = event.partition, offset = event.offset, error = ?refusal, "replay passes over a refused event");
                    replayed.passed_over.push(PassedOver::refused(event, &refusal));
                }
            }
            projection::apply_batch(pool, &source.name, &source.topic, &[], &next).await?;
        }
    }
    reader.await.context("the log reader panicked")??;
    Ok(())
}

/// Events of `[start, end)` read into memory (the short tail a swap catches up on).
struct Tail {
    events: Vec<Positioned>,
    next: BTreeMap<i32, i64>,
    passed_over: Vec<PassedOver>,
}

async fn read_events(
    source: &Source,
    start: &HashMap<i32, i64>,
    end: Option<&HashMap<i32, i64>>,
) -> anyhow::Result<Tail> {
    let (source, start, end) = (source.clone(), start.clone(), end.cloned());
    tokio::task::spawn_blocking(move || {
        let mut tail = Tail { events: Vec::new(), next: BTreeMap::new(), passed_over: Vec::new() };
        service_kit::kafka::read_range(
            &source.brokers,
            &source.topic,
            &start,
            end.as_ref(),
            READ_TIMEOUT,
            |p, o, m| {
                tail.next.insert(p, o + 1);
                match service_kit::kafka::envelope_of(m) {
                    Ok(envelope) => tail.events.push(Positioned { partition: p, offset: o, envelope }),
                    Err(e) => tail.passed_over.push(PassedOver::undecodable(p, o, m, &e)),
                }
                Ok(())
            },
        )?;
        Ok(tail)
    })
    .await
    .context("the log reader panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_order_names_every_partition_once_with_the_given_ones_first() {
        let parse = |s: &str| s.parse::<Interleaving>();
        assert_eq!(parse("as-read"), Ok(Interleaving::AsRead));
        let order = |s: &str| match parse(s) {
            Ok(Interleaving::PartitionByPartition(o)) => o.arrange(vec![2, 0, 3, 1]).map_err(|e| e.to_string()),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(order("ascending").unwrap(), [0, 1, 2, 3]);
        assert_eq!(order("descending").unwrap(), [3, 2, 1, 0]);
        assert_eq!(order("2,0").unwrap(), [2, 0, 1, 3]);
        assert!(order("7").unwrap_err().contains("no partition 7"));
        for bad in ["", "1,1", "-1", "first", "1,,2"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
