//! Snapshots of the writer's state, one per shard (a partition of the events topic, which holds
//! whole tenants: see `events::shard`), kept in PostgreSQL (`writer.snapshots`). A writer taking
//! over reads each shard's snapshot and the log after it, not the whole log.
//!
//! A snapshot is a cache, never a source of truth:
//! - it names the last record it holds (offset and event id); the take-over reads from that
//!   record and checks it is the one named, so a snapshot of another topic of the same name, or
//!   of records the log no longer holds, is never used;
//! - its [`FORMAT`] must be the running code's, or it is ignored, so a deploy never trusts a
//!   shape it does not know;
//! - it is sealed (AES-256-GCM, a key derived from `RSVP_MASTER_KEY`) together with what its row
//!   says it is: a row anyone else wrote or changed does not open and is ignored, and what it
//!   holds (recorded link tokens of old invites among it) is readable by a holder of the master
//!   key only;
//! - whatever is wrong with one, the writer reads the log whole instead (`crate::rebuild`), and
//!   deletes the snapshots that did not match the log.
//!
//! A snapshot is taken on the writer thread when nothing decided is still uncommitted, so the
//! state is exactly the log up to the records it names (see `crate::writer`).

use crate::state::{IdempotencyRecord, WriterState};
use anyhow::Context as _;
use events::chain::{Hash, TenantHead};
use events::{StreamId, Tenant, TenantId};
use std::collections::HashMap;
use uuid::Uuid;

/// The shape of the state a snapshot holds. Bump it in the commit that changes any type a
/// snapshot holds (`events::Tenant` and everything in it, `IdempotencyRecord`, the chain heads)
/// or what the writer folds from an event: a snapshot of another format is ignored. The test
/// `the_frozen_snapshot_of_this_format_reads_back` fails when a change makes the snapshot frozen
/// in `tests/fixtures` unreadable without a new format.
pub const FORMAT: i32 = 2;

/// The last record of its partition a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    pub offset: i64,
    pub event_id: Uuid,
}

/// A snapshot as read: still sealed (it is opened where it is decoded, on every core).
#[derive(Debug, Clone)]
pub struct Stored {
    pub partition: i32,
    pub covered: Covered,
    /// Sealed, compressed.
    pub state: Vec<u8>,
    /// What its row says it is, which the seal binds.
    context: Vec<u8>,
}

#[derive(serde::Serialize)]
struct TenantOut<'a> {
    id: TenantId,
    tenant: &'a Tenant,
    idempotency: Option<&'a HashMap<String, IdempotencyRecord>>,
    head: TenantHead,
    streams: Vec<(StreamId, Hash)>,
}

/// One tenant's part of a shard's state.
#[derive(serde::Deserialize)]
pub struct TenantPart {
    id: TenantId,
    tenant: Tenant,
    idempotency: Option<HashMap<String, IdempotencyRecord>>,
    head: TenantHead,
    streams: Vec<(StreamId, Hash)>,
}

/// Tenants are encoded in segments of about this many streams (invites and definitions), each
/// compressed apart, so a take-over decodes one shard's snapshot on every core.
const SEGMENT_STREAMS: usize = 16_384;

/// A shard's state encoded (not compressed yet): segments of whole tenants.
pub struct Encoded {
    pub tenants: usize,
    /// Each segment's streams (so a take-over sizes its maps once) and encoding.
    segments: Vec<(u32, Vec<u8>)>,
}

impl Encoded {
    /// The encoded size, uncompressed.
    pub fn len(&self) -> usize {
        self.segments.iter().map(|(_, s)| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants == 0
    }
}

/// The state of the tenants of `partition`, serialized (MessagePack with field names, which the
/// events' own optional fields need) in segments of whole tenants, uncompressed; `None` when the
/// shard has no tenant.
pub fn encode(state: &WriterState, partition: i32, partitions: usize) -> Option<Encoded> {
    encode_in_segments_of(state, partition, partitions, SEGMENT_STREAMS)
}

fn encode_in_segments_of(
    state: &WriterState,
    partition: i32,
    partitions: usize,
    segment_streams: usize,
) -> Option<Encoded> {
    let mut encoded = Encoded { tenants: 0, segments: Vec::new() };
    let mut segment: Vec<TenantOut<'_>> = Vec::new();
    let mut streams = 0;
    let flush = |segment: &mut Vec<TenantOut<'_>>, encoded: &mut Encoded| {
        encoded.tenants += segment.len();
        let streams = segment.iter().map(|t| t.streams.len()).sum::<usize>();
        let bytes = rmp_serde::to_vec_named(&segment).expect("the writer's state serializes");
        encoded.segments.push((u32::try_from(streams).expect("fewer than 4 billion streams"), bytes));
        segment.clear();
    };
    for (id, tenant) in state.tenants.iter().filter(|(id, _)| events::shard_of(**id, partitions) == partition) {
        let (head, heads) = state.chains.tenant_part(*id, tenant.streams());
        streams += heads.len();
        segment.push(TenantOut { id: *id, tenant, idempotency: state.idempotency.get(id), head, streams: heads });
        if streams >= segment_streams {
            flush(&mut segment, &mut encoded);
            streams = 0;
        }
    }
    if !segment.is_empty() {
        flush(&mut segment, &mut encoded);
    }
    (encoded.tenants > 0).then_some(encoded)
}

/// Compresses an encoded state for storing (zstd, the fast end: it runs beside the writer): each
/// segment apart, each after its compressed length and its streams (4 bytes each, little-endian).
pub fn compress(encoded: &Encoded) -> Vec<u8> {
    let mut out = Vec::new();
    for (streams, segment) in &encoded.segments {
        let compressed = zstd::bulk::compress(segment, 1).expect("compressing to memory cannot fail");
        out.extend_from_slice(&u32::try_from(compressed.len()).expect("a segment is far below 4 GB").to_le_bytes());
        out.extend_from_slice(&streams.to_le_bytes());
        out.extend_from_slice(&compressed);
    }
    out
}

/// One compressed segment of an opened snapshot, as [`segments`] finds it.
pub struct Segment<'a> {
    /// The streams its tenants hold.
    pub streams: usize,
    pub compressed: &'a [u8],
}

/// A stored snapshot opened under `master`, if it opens for what its row says: its segments,
/// still compressed (see [`segments`] and [`decode`]).
pub fn open(master: &service_kit::vault::MasterKey, stored: &Stored) -> anyhow::Result<Vec<u8>> {
    master.open_snapshot(&stored.context, &stored.state).with_context(|| {
        format!(
            "the snapshot of partition {} does not open under this master key for what its row says (written or \
             changed by something else than a writer)",
            stored.partition
        )
    })
}

/// The compressed segments of an opened snapshot, each decoded apart by [`decode`].
pub fn segments(opened: &[u8]) -> anyhow::Result<Vec<Segment<'_>>> {
    let mut rest = opened;
    let mut segments = Vec::new();
    while !rest.is_empty() {
        let (head, after) = rest.split_first_chunk::<8>().context("the snapshot is cut inside a segment's head")?;
        let (len, streams) = head.split_at(4);
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let streams = u32::from_le_bytes(streams.try_into().expect("4 bytes")) as usize;
        anyhow::ensure!(after.len() >= len, "the snapshot is cut inside a segment");
        let (compressed, after) = after.split_at(len);
        segments.push(Segment { streams, compressed });
        rest = after;
    }
    Ok(segments)
}

/// The tenants one compressed segment holds; `buffer` is reused between calls (so its pages are
/// touched once per thread, not once per segment).
pub fn decode(segment: &Segment<'_>, buffer: &mut Vec<u8>) -> anyhow::Result<Vec<TenantPart>> {
    buffer.clear();
    zstd::stream::copy_decode(segment.compressed, &mut *buffer).context("the snapshot does not decompress")?;
    rmp_serde::from_slice(buffer).context("the snapshot does not decode")
}

/// Makes room in `state` for `streams` more streams (restored from snapshots), so its maps grow
/// once.
pub fn reserve(state: &mut WriterState, streams: usize) {
    state.invite_tenants.reserve(streams);
    state.chains.reserve(streams);
}

/// Puts decoded tenants into a state (which must not hold them yet).
pub fn restore(state: &mut WriterState, tenants: Vec<TenantPart>) {
    for t in tenants {
        state.chains.restore_tenant(t.id, t.head, t.streams);
        state.restore_tenant(t.id, t.tenant, t.idempotency.unwrap_or_default());
    }
}

/// What a sealed snapshot says it is, bound to it (so a row's columns cannot be changed under it).
fn context(topic: &str, partition: i32, partitions: usize, format: i32, covered: Covered) -> Vec<u8> {
    format!("rsvp-snapshot-v1\n{topic}\n{partition}\n{partitions}\n{format}\n{}\n{}", covered.offset, covered.event_id)
        .into_bytes()
}

/// The snapshots of the shards `only` of `topic` this code can read, for a topic of `partitions`
/// partitions. Others (another format, another partition count) are named in the log and left out.
pub async fn load(pool: &sqlx::PgPool, topic: &str, partitions: usize, only: &[i32]) -> anyhow::Result<Vec<Stored>> {
    let rows: Vec<(i32, i32, i32, i64, Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT partition, partitions, format, last_offset, last_event, state FROM writer.snapshots \
         WHERE topic = $1 AND partition = ANY($2)",
    )
    .bind(topic)
    .bind(only)
    .fetch_all(pool)
    .await
    .context("cannot read the writer's snapshots")?;
    let mut usable = Vec::with_capacity(rows.len());
    for (partition, count, format, offset, event_id, state) in rows {
        if format != FORMAT || count as usize != partitions {
            tracing::warn!(
                partition,
                format,
                partitions = count,
                "snapshot ignored: taken by code of another snapshot format (this one: {FORMAT}) or for another \
                 partition count ({partitions}); the shard is read from the log"
            );
            continue;
        }
        let covered = Covered { offset, event_id };
        let context = context(topic, partition, partitions, format, covered);
        usable.push(Stored { partition, covered, state, context });
    }
    Ok(usable)
}

/// Seals a shard's compressed snapshot for storing, bound to what its row will say it is.
pub fn seal(
    master: &service_kit::vault::MasterKey,
    topic: &str,
    partitions: usize,
    partition: i32,
    covered: Covered,
    compressed: &[u8],
) -> Stored {
    let context = context(topic, partition, partitions, FORMAT, covered);
    let state = master.seal_snapshot(&context, compressed);
    Stored { partition, covered, state, context }
}

/// Seals and stores a shard's snapshot, unless a newer one of the same format is there already
/// (`false` then).
#[allow(clippy::too_many_arguments)]
pub async fn store(
    pool: &sqlx::PgPool,
    master: &service_kit::vault::MasterKey,
    topic: &str,
    partitions: usize,
    partition: i32,
    covered: Covered,
    tenants: usize,
    compressed: &[u8],
) -> anyhow::Result<bool> {
    let sealed = seal(master, topic, partitions, partition, covered, compressed);
    let stored = sqlx::query(
        "INSERT INTO writer.snapshots (topic, partition, partitions, format, last_offset, last_event, tenants, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (topic, partition) DO UPDATE SET partitions = EXCLUDED.partitions, format = EXCLUDED.format, \
           last_offset = EXCLUDED.last_offset, last_event = EXCLUDED.last_event, tenants = EXCLUDED.tenants, \
           taken_at = now(), state = EXCLUDED.state \
         WHERE writer.snapshots.format <> EXCLUDED.format OR writer.snapshots.partitions <> EXCLUDED.partitions \
           OR writer.snapshots.last_offset < EXCLUDED.last_offset",
    )
    .bind(topic)
    .bind(partition)
    .bind(partitions as i32)
    .bind(FORMAT)
    .bind(covered.offset)
    .bind(covered.event_id)
    .bind(tenants as i32)
    .bind(sealed.state)
    .execute(pool)
    .await
    .context("cannot store the snapshot")?;
    Ok(stored.rows_affected() == 1)
}

/// Deletes the snapshots of `partitions` of `topic` (they did not match the log: a newer-looking
/// row would otherwise keep every new one out).
pub async fn forget(pool: &sqlx::PgPool, topic: &str, partitions: &[i32]) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM writer.snapshots WHERE topic = $1 AND partition = ANY($2)")
        .bind(topic)
        .bind(partitions)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Envelope, EventMeta};

    const PARTITIONS: usize = 4;

    /// Every tenant of a compressed snapshot, segment after segment.
    fn decode_all(compressed: &[u8]) -> Vec<TenantPart> {
        let mut buffer = Vec::new();
        segments(compressed)
            .expect("the segments are whole")
            .into_iter()
            .flat_map(|segment| decode(&segment, &mut buffer).expect("the snapshot of this format reads"))
            .collect()
    }

    /// A state as a writer folds it: `tenants` tenants with three invites and a definition each,
    /// every event chained, the first invite of each created with an idempotency key.
    fn folded(tenants: &[TenantId]) -> WriterState {
        let mut state = WriterState::default();
        let mut chains = crate::chains::Chains::default();
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z").unwrap().to_utc();
        for (t, tenant) in tenants.iter().enumerate() {
            let mut envelopes: Vec<Envelope> =
                (0..3).map(|i| rsvp_tests::load::created_envelope(*tenant, at, t * 3 + i)).collect();
            envelopes[0].meta.idempotency_key = Some("k-1".into());
            envelopes[0].meta.request_hash = Some("h-1".into());
            let rules = events::DefinitionRules {
                handle: format!("gold-{t}"),
                max_invites_per_inviter: Some(5),
                starts_at: None,
                ends_at: None,
                max_send_count: Some(2),
                default_expiry_days: None,
                templates: None,
            };
            let definition = events::DefinitionId::from_uuid(Uuid::now_v7());
            envelopes.push(Envelope::new(
                EventMeta { stream: StreamId::Definition(definition), ..envelopes[0].meta.clone() },
                events::DomainEvent::Definition(events::DefinitionEvent::Created(rules)),
            ));
            for envelope in envelopes {
                chains.link(&envelope.meta, envelope.data_json().as_slice());
                state.apply_owned(envelope);
            }
        }
        state.chains = chains;
        state
    }

    fn tenants() -> Vec<TenantId> {
        (1..=8u128).map(|n| TenantId::from_uuid(Uuid::from_u128(n))).collect()
    }

    /// What a snapshot must keep of a state, comparably.
    fn summary(state: &WriterState) -> Vec<String> {
        let mut lines: Vec<String> = state
            .tenants
            .iter()
            .flat_map(|(id, tenant)| {
                let mut streams: Vec<StreamId> = tenant.streams().collect();
                streams.sort();
                let (head, heads) = state.chains.tenant_part(*id, streams.iter().copied());
                let invites: Vec<String> =
                    tenant.invite_ids().map(|i| format!("{i} {:?}", tenant.invite(i).unwrap())).collect();
                let mut invites = invites;
                invites.sort();
                let mut idempotency: Vec<String> = state
                    .idempotency
                    .get(id)
                    .into_iter()
                    .flatten()
                    .map(|(k, r)| format!("{k} {:?} {:?}", r.request_hash, r.changes))
                    .collect();
                idempotency.sort();
                let definitions: Vec<String> = {
                    let mut d: Vec<String> = tenant.definitions().map(|(d, def)| format!("{d} {def:?}")).collect();
                    d.sort();
                    d
                };
                [
                    format!("{id} head {} {:?}", head.seq, head.chain.to_hex()),
                    format!(
                        "{id} streams {:?}",
                        heads.iter().map(|(s, h)| (s.to_string(), h.to_hex())).collect::<Vec<_>>()
                    ),
                    format!("{id} invites {invites:?}"),
                    format!("{id} definitions {definitions:?}"),
                    format!("{id} idempotency {idempotency:?}"),
                    format!(
                        "{id} tenant of invites {:?}",
                        tenant.invite_ids().map(|i| state.invite_tenants.get(&i)).collect::<Vec<_>>()
                    ),
                ]
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn a_state_restored_from_its_shards_snapshots_is_the_state_they_were_taken_of() {
        let state = folded(&tenants());
        let mut restored = WriterState::default();
        let (mut shards, mut segments) = (0, 0);
        for p in 0..PARTITIONS as i32 {
            // Two tenants' streams (four each) to a segment at most.
            if let Some(encoded) = encode_in_segments_of(&state, p, PARTITIONS, 5) {
                shards += 1;
                segments += encoded.segments.len();
                let parts = decode_all(&compress(&encoded));
                assert_eq!(parts.len(), encoded.tenants);
                assert!(parts.iter().all(|t| events::shard_of(t.id, PARTITIONS) == p), "only the shard's tenants");
                restore(&mut restored, parts);
            }
        }
        assert!(shards > 1, "the tenants spread over shards");
        assert!(segments > shards, "some shard in more than one segment");
        assert_eq!(summary(&restored), summary(&state));
        assert_eq!(restored.tenants.len(), 8);
    }

    #[test]
    fn a_snapshot_cut_inside_a_segment_is_refused_not_half_restored() {
        let state = folded(&tenants());
        let p = (0..PARTITIONS as i32).find(|p| encode(&state, *p, PARTITIONS).is_some()).unwrap();
        let compressed = compress(&encode_in_segments_of(&state, p, PARTITIONS, 1).unwrap());
        // Inside the first segment's head, inside its body, inside the last one's body.
        for cut in [1, 4, 9, compressed.len() - 1] {
            let cut = &compressed[..cut];
            let refused = segments(cut).and_then(|all| {
                let mut buffer = Vec::new();
                all.iter().map(|s| decode(s, &mut buffer)).collect::<anyhow::Result<Vec<_>>>()
            });
            assert!(refused.is_err(), "a snapshot cut at {} of {} bytes", cut.len(), compressed.len());
        }
    }

    /// The events a frozen snapshot was taken over: whole invite lives of two tenants, some under
    /// an idempotency key, as one line each (CloudEvents headers and JSON data).
    fn frozen_events() -> Vec<Envelope> {
        let mut lives = rsvp_tests::load::Lifecycles::new(2, 12, 7);
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z").unwrap().to_utc();
        (0..240)
            .map(|i| {
                let mut e = lives.next_event(at);
                if i % 7 == 0 {
                    e.meta.idempotency_key = Some(format!("k-{i}"));
                    e.meta.request_hash = Some(format!("h-{i}"));
                }
                e
            })
            .collect()
    }

    fn fold(envelopes: Vec<Envelope>) -> WriterState {
        let mut state = WriterState::default();
        let mut chains = crate::chains::Chains::default();
        for envelope in envelopes {
            chains.link(&envelope.meta, envelope.data_json().as_slice());
            state.apply_owned(envelope);
        }
        state.chains = chains;
        state
    }

    /// A snapshot of this [`FORMAT`] frozen in `tests/fixtures`, with the events it was taken
    /// over, must restore exactly the state the running code folds from those events: the
    /// tenants whole (every map a decision reads), idempotency records, indexes, chain heads. So
    /// any change to the state's shape or to what the writer folds from an event fails here
    /// until [`FORMAT`] is bumped (no writer then reads an older snapshot) and a new one frozen
    /// (`RSVP_FREEZE_SNAPSHOT=1 cargo test -p command-api --lib frozen`).
    #[test]
    fn the_frozen_snapshot_of_this_format_restores_what_this_code_folds_from_its_events() {
        // This checkout's files (cargo sets the variable when it runs the test), not the ones of
        // the checkout a shared build cache compiled it in.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
            .join("tests/fixtures");
        let (snapshot_path, events_path) = (
            dir.join(format!("snapshot-format-{FORMAT}.bin")),
            dir.join(format!("snapshot-format-{FORMAT}.events.jsonl")),
        );
        if std::env::var_os("RSVP_FREEZE_SNAPSHOT").is_some() {
            let envelopes = frozen_events();
            let lines: Vec<String> = envelopes
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "headers": e.cloudevents_headers(),
                        "data": String::from_utf8(e.data_json()).unwrap(),
                    })
                    .to_string()
                })
                .collect();
            let state = fold(envelopes);
            let mut shards = Vec::new();
            for p in 0..PARTITIONS as i32 {
                if let Some(encoded) = encode_in_segments_of(&state, p, PARTITIONS, 5) {
                    shards.push((p, compress(&encoded)));
                }
            }
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&events_path, lines.join("\n") + "\n").unwrap();
            std::fs::write(&snapshot_path, rmp_serde::to_vec(&shards).unwrap()).unwrap();
        }
        let read = |path: &std::path::Path| {
            std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}: freeze one for format {FORMAT}", path.display()))
        };
        let envelopes: Vec<Envelope> = String::from_utf8(read(&events_path))
            .unwrap()
            .lines()
            .map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).unwrap();
                let headers: Vec<(String, String)> = serde_json::from_value(line["headers"].clone()).unwrap();
                let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
                service_kit::kafka::envelope_of_parts(&headers, line["data"].as_str().unwrap().as_bytes()).unwrap()
            })
            .collect();
        let shards: Vec<(i32, Vec<u8>)> = rmp_serde::from_slice(&read(&snapshot_path)).unwrap();
        let mut restored = WriterState::default();
        for (_, compressed) in shards {
            restore(&mut restored, decode_all(&compressed));
        }
        let folded = fold(envelopes);
        assert_eq!(folded.tenants.len(), 2);
        assert!(folded.tenants == restored.tenants, "the tenants restored are not the ones this code folds");
        assert_eq!(restored.idempotency, folded.idempotency);
        assert_eq!(restored.invite_tenants, folded.invite_tenants);
        assert_eq!(restored.tokens, folded.tokens);
        assert_eq!(summary(&restored), summary(&folded), "chain heads");
    }
}
