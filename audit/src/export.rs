//! A tenant's events as CloudEvents JSON lines (structured content mode), with what proves them,
//! and the offline check of such a file.
//!
//! Lines, in this order:
//! - when `--from` cuts into the history, one `dev.rsvp.audit.Anchor.v1` line: the tenant chain
//!   before the first exported event and, per stream whose first exported version is not 1, its
//!   stream chain before it. An anchor needs no signature: a wrong one does not chain up to the
//!   signed checkpoints;
//! - the events written before chaining (in log order), then the chained ones in `tenantseq`
//!   order: every attribute of the record (the `ce_*` headers without their prefix, `content-type`
//!   as `datacontenttype`), the chain attributes, and `data`;
//! - after the event it covers, each `dev.rsvp.audit.Checkpoint.v1` line, the checkpoint as `data`.
//!
//! The chain covers the record value's exact bytes. The writer writes `serde_json::to_vec` of a
//! `serde_json::Value` (keys sorted, no `preserve_order` in this workspace), so parsing `data` and
//! writing it again gives those bytes back; the export checks this for every event and, for a value
//! that does not round-trip (another writer, non-JSON), writes `data_base64` instead of `data`.

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::verify::{Anchors, Record, Report, Verifier};
use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use events::chain::{self, Hash, Link, TenantHead};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Write;

pub const CHECKPOINT_TYPE: &str = "dev.rsvp.audit.Checkpoint.v1";
pub const ANCHOR_TYPE: &str = "dev.rsvp.audit.Anchor.v1";

/// What to export.
pub struct Selection {
    pub tenant: events::TenantId,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

struct Candidate {
    record: Record,
    link: Option<Link>,
    subject: String,
    version: u64,
    /// The stream chain before this event.
    before: Hash,
    time: Option<DateTime<Utc>>,
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub events: usize,
    pub checkpoints: usize,
}

/// Writes the selection from `records` (the whole log, in per-partition order) and `checkpoints`.
pub fn write(
    records: impl IntoIterator<Item = Record>,
    checkpoints: Vec<Checkpoint>,
    selection: &Selection,
    out: &mut impl Write,
) -> anyhow::Result<Written> {
    let tenant = selection.tenant.to_string();
    // Each stream's chain as it stands, computed over the tenant's records in log order.
    let mut heads: HashMap<String, Hash> = HashMap::new();
    let mut candidates = Vec::new();
    for record in records {
        let attribute = |name: &str| {
            record.attributes.iter().find(|(n, _)| n == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        if attribute("tenantid") != Some(tenant.as_str()) {
            continue;
        }
        let subject = attribute("subject").unwrap_or_default().to_owned();
        let version = attribute("inviteversion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let time = attribute("time").and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
        let link = Link::from_attributes(attribute).ok().flatten();
        let digest = chain::event_digest(&chain::canonical(
            record.attributes.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            &record.value,
        ));
        let before = heads.get(&subject).copied().unwrap_or(Hash::ZERO);
        heads.insert(subject.clone(), link.map_or_else(|| chain::stream_chain(before, digest), |l| l.stream_chain));
        candidates.push(Candidate { record, link, subject, version, before, time });
    }
    let within = |c: &Candidate| {
        c.time.is_some_and(|t| selection.from.is_none_or(|f| t >= f) && selection.to.is_none_or(|to| t <= to))
    };
    let (unchained, mut chained): (Vec<Candidate>, Vec<Candidate>) =
        candidates.into_iter().partition(|c| c.link.is_none());
    chained.sort_by_key(|c| c.link.map(|l| l.tenant_seq));
    // The chained events form one run of tenant seqs, so that the tenant chain verifies.
    let first = chained.iter().position(within);
    let last = chained.iter().rposition(within);
    // Where the tenant chain stood before the first exported event, as the log has it.
    let tenant_anchor = first.and_then(|a| chained[a].link).filter(|l| l.tenant_seq > 1).map(|l| {
        let seq = l.tenant_seq - 1;
        let before = first.and_then(|a| a.checked_sub(1)).and_then(|i| chained[i].link);
        TenantHead { seq, chain: before.filter(|b| b.tenant_seq == seq).map_or(Hash::ZERO, |b| b.tenant_chain) }
    });
    let chained: Vec<Candidate> = match (first, last) {
        (Some(a), Some(b)) => chained.drain(a..=b).collect(),
        _ => Vec::new(),
    };
    let exported: Vec<&Candidate> = unchained.iter().filter(|c| within(c)).chain(chained.iter()).collect();
    let mut streams = Map::new();
    let mut seen = std::collections::HashSet::new();
    for c in &exported {
        if seen.insert(c.subject.clone()) && c.version > 1 {
            streams.insert(c.subject.clone(), json!({ "version": c.version - 1, "chain": c.before.to_hex() }));
        }
    }
    let last_seq = chained.last().and_then(|c| c.link).map_or(0, |l| l.tenant_seq);
    let anchor_seq = tenant_anchor.map_or(0, |h| h.seq);
    if tenant_anchor.is_some() || !streams.is_empty() {
        let head = tenant_anchor.unwrap_or_default();
        let line = json!({
            "specversion": "1.0",
            "type": ANCHOR_TYPE,
            "id": format!("anchor-{tenant}-{}", head.seq),
            "source": format!("/tenants/{tenant}"),
            "datacontenttype": "application/json",
            "data": { "tenant_seq": head.seq, "tenant_chain": head.chain.to_hex(), "streams": streams },
        });
        writeln!(out, "{line}")?;
    }
    let mut by_seq: HashMap<u64, Vec<Checkpoint>> = HashMap::new();
    for c in checkpoints {
        if c.tenant_id == selection.tenant && c.tenant_seq > anchor_seq && c.tenant_seq <= last_seq {
            by_seq.entry(c.tenant_seq).or_default().push(c);
        }
    }
    let mut written = Written::default();
    for c in exported {
        writeln!(out, "{}", event_line(&c.record))?;
        written.events += 1;
        let Some(l) = c.link else { continue };
        for checkpoint in by_seq.remove(&l.tenant_seq).unwrap_or_default() {
            writeln!(out, "{}", checkpoint_line(&checkpoint))?;
            written.checkpoints += 1;
        }
    }
    Ok(written)
}

fn event_line(record: &Record) -> Value {
    let mut line = Map::new();
    for (name, value) in &record.attributes {
        line.insert(name.clone(), Value::String(String::from_utf8_lossy(value).into_owned()));
    }
    let data: Option<Value> = serde_json::from_slice(&record.value).ok();
    match data {
        Some(data) if serde_json::to_vec(&data).ok().as_deref() == Some(record.value.as_slice()) => {
            line.insert("data".into(), data);
        }
        _ => {
            line.insert("data_base64".into(), Value::String(B64.encode(&record.value)));
        }
    }
    Value::Object(line)
}

fn checkpoint_line(c: &Checkpoint) -> Value {
    json!({
        "specversion": "1.0",
        "type": CHECKPOINT_TYPE,
        "id": format!("checkpoint-{}-{}", c.tenant_id, c.tenant_seq),
        "source": format!("/tenants/{}", c.tenant_id),
        "subject": format!("tenants/{}", c.tenant_id),
        "time": c.at,
        "datacontenttype": "application/json",
        "data": c,
    })
}

/// Checks an export offline: the same checks as on the log, over the file's lines.
pub fn verify(text: &str, key: PublicKey) -> Report {
    let mut anchors = Anchors::default();
    let mut checkpoints = Vec::new();
    let mut events = Vec::new();
    let mut malformed = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let Ok(Value::Object(mut member)) = serde_json::from_str::<Value>(line) else {
            malformed.push((at, "is not a JSON object".to_owned()));
            continue;
        };
        match member.get("type").and_then(Value::as_str) {
            Some(CHECKPOINT_TYPE) => match member.remove("data").map(serde_json::from_value::<Checkpoint>) {
                Some(Ok(c)) => checkpoints.push((c, at)),
                _ => malformed.push((at, "is a checkpoint line without a checkpoint".to_owned())),
            },
            Some(ANCHOR_TYPE) => {
                if let Err(e) = read_anchor(&member, &mut anchors) {
                    malformed.push((at, format!("is an anchor line that cannot be read: {e}")));
                }
            }
            _ => match record_of_line(member, at.clone()) {
                Ok(record) => events.push(record),
                Err(e) => malformed.push((at, e)),
            },
        }
    }
    let mut verifier = Verifier::new(key, anchors);
    for (c, at) in checkpoints {
        verifier.checkpoint(c, at);
    }
    for record in &events {
        verifier.event(record);
    }
    let mut report = verifier.finish();
    for (at, detail) in malformed {
        report.problems.push(crate::verify::Problem {
            kind: crate::verify::Kind::Malformed,
            tenant: "?".into(),
            stream: None,
            at,
            detail,
        });
    }
    report
}

fn read_anchor(member: &Map<String, Value>, anchors: &mut Anchors) -> anyhow::Result<()> {
    let data = member.get("data").context("no data")?;
    let tenant = member
        .get("source")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("/tenants/"))
        .context("no /tenants/ source")?;
    let seq = data.get("tenant_seq").and_then(Value::as_u64).context("no tenant_seq")?;
    let chain =
        data.get("tenant_chain").and_then(Value::as_str).and_then(Hash::parse_hex).context("no tenant_chain")?;
    if seq > 0 {
        anchors.tenants.insert(tenant.to_owned(), TenantHead { seq, chain });
    }
    for (subject, s) in data.get("streams").and_then(Value::as_object).context("no streams")? {
        let version = s.get("version").and_then(Value::as_u64).context("a stream without its version")?;
        let chain =
            s.get("chain").and_then(Value::as_str).and_then(Hash::parse_hex).context("a stream without chain")?;
        anchors.streams.insert(subject.clone(), (version, chain));
    }
    Ok(())
}

fn record_of_line(mut member: Map<String, Value>, at: String) -> Result<Record, String> {
    let value = match (member.remove("data"), member.remove("data_base64")) {
        (Some(data), None) => serde_json::to_vec(&data).map_err(|e| e.to_string())?,
        (None, Some(Value::String(b))) => B64.decode(b).map_err(|_| "its data_base64 is not base64".to_owned())?,
        _ => return Err("has neither data nor data_base64 (or both)".to_owned()),
    };
    let attributes = member
        .into_iter()
        .map(|(name, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (name, text.into_bytes())
        })
        .collect();
    Ok(Record { at, lane: 0, attributes, value })
}
