//! The checks, over records from anywhere (the Kafka log, an export file): pure, no I/O.
//!
//! Per stream: versions consecutive from 1 (or from an anchor), each `streamchain` recomputed from
//! the previous one and the event's canonical bytes. Per tenant: `tenantseq` consecutive from 1,
//! each `tenantchain` recomputed, in each lane (a partition, or the export file) in increasing
//! order; each checkpoint's signature verified and its chain equal to the tenant chain at its seq;
//! no checkpoint beyond the last event. After a problem the checks go on from the values the
//! records claim, so that one change is reported once, where it is, and not at every event after.

use crate::checkpoint::{Checkpoint, PublicKey};
use events::chain::{self, Hash, Link};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// One event record: its attributes (names without `ce_`) and its value, as read.
pub struct Record {
    /// Where it was read: `topic/partition/offset`, or `line N`.
    pub at: String,
    /// Records of one lane are read in the order they were written (a Kafka partition, a file).
    pub lane: i64,
    pub attributes: Vec<(String, Vec<u8>)>,
    pub value: Vec<u8>,
}

impl Record {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// What an export carries for a history cut by `--from`: the values before its first event.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    /// subject → (version, stream chain) before the stream's first event in the file.
    pub streams: HashMap<String, (u64, Hash)>,
    /// tenant → head before its first chained event in the file.
    pub tenants: HashMap<String, chain::TenantHead>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Removed,
    Altered,
    Reordered,
    Inserted,
    TruncatedTail,
    BadCheckpoint,
    Malformed,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Removed => "removed",
            Self::Altered => "altered",
            Self::Reordered => "reordered",
            Self::Inserted => "inserted",
            Self::TruncatedTail => "truncated tail",
            Self::BadCheckpoint => "bad checkpoint",
            Self::Malformed => "malformed",
        })
    }
}

/// One thing wrong, naming the event it was found at.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: Kind,
    pub tenant: String,
    /// The stream, for a problem within one.
    pub stream: Option<String>,
    /// The record it was seen at: where, its event id and version (and tenant seq).
    pub at: String,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.kind)?;
        if let Some(stream) = &self.stream {
            write!(f, "stream {stream}: ")?;
        } else {
            write!(f, "tenant {}: ", self.tenant)?;
        }
        write!(f, "{} (at {})", self.detail, self.at)
    }
}

/// What was checked and what was found.
#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    /// Events that carry chain values, each checked.
    pub chained: u64,
    /// Events written before chaining: versions checked, their chain values computed but there is
    /// nothing to compare them with.
    pub unchained: u64,
    pub streams: usize,
    pub tenants: usize,
    pub checkpoints: u64,
    /// Chained events after their tenant's last checkpoint: chained, not signed.
    pub unsigned: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.events > 0
    }

    /// The report as the binary prints it: problems grouped per stream, then one overall line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut per_stream: BTreeMap<String, Vec<&Problem>> = BTreeMap::new();
        for p in &self.problems {
            let key = match &p.stream {
                Some(s) => format!("stream {s} (tenant {})", p.tenant),
                None => format!("tenant {}", p.tenant),
            };
            per_stream.entry(key).or_default().push(p);
        }
        for (key, problems) in &per_stream {
            out.push_str(&format!("{key}: {} problem(s)\n", problems.len()));
            for p in problems {
                out.push_str(&format!("  {}: {} (at {})\n", p.kind, p.detail, p.at));
            }
        }
        let counts = format!(
            "{} events in {} streams of {} tenants: {} chained and checked, {} unchained (written before chaining); \
             {} checkpoints verified; {} chained events after their tenant's last checkpoint (chained, not signed)",
            self.events, self.streams, self.tenants, self.chained, self.unchained, self.checkpoints, self.unsigned
        );
        if self.events == 0 {
            out.push_str(&format!("FAILED: nothing to verify: {counts}\n"));
        } else if let Some(first) = self.problems.first() {
            out.push_str(&format!("FAILED: {} problem(s); the first: {first}\n{counts}\n", self.problems.len()));
        } else {
            out.push_str(&format!("OK: {counts}\n"));
        }
        out
    }
}

struct StreamState {
    tenant: String,
    last_version: u64,
    /// The chain after `last_version`, as recomputed or, after a problem, as claimed.
    head: Option<Hash>,
    /// Versions missing where a later version came first: the record after the gap and what it
    /// skipped. Settled at the end: all turned up later → reordered, else removed.
    gaps: Vec<(String, Vec<u64>)>,
    late: Vec<(u64, String)>,
}

struct TenantEntry {
    seq: u64,
    lane: i64,
    ordinal: u64,
    stream_chain: Hash,
    tenant_chain: Hash,
    at: String,
}

/// Reads records one at a time (in lane order), then settles per tenant.
pub struct Verifier {
    key: PublicKey,
    anchors: Anchors,
    streams: HashMap<String, StreamState>,
    tenants: HashMap<String, Vec<TenantEntry>>,
    checkpoints: HashMap<String, Vec<(Checkpoint, String)>>,
    report: Report,
    ordinal: u64,
}

impl Verifier {
    pub fn new(key: PublicKey, anchors: Anchors) -> Self {
        Self {
            key,
            anchors,
            streams: HashMap::new(),
            tenants: HashMap::new(),
            checkpoints: HashMap::new(),
            report: Report::default(),
            ordinal: 0,
        }
    }

    fn problem(&mut self, kind: Kind, tenant: &str, stream: Option<&str>, at: String, detail: String) {
        self.report.problems.push(Problem {
            kind,
            tenant: tenant.to_owned(),
            stream: stream.map(str::to_owned),
            at,
            detail,
        });
    }

    pub fn checkpoint(&mut self, checkpoint: Checkpoint, at: String) {
        self.checkpoints.entry(checkpoint.tenant_id.to_string()).or_default().push((checkpoint, at));
    }

    pub fn event(&mut self, record: &Record) {
        self.report.events += 1;
        self.ordinal += 1;
        let id = record.attribute("id").unwrap_or("?").to_owned();
        let (Some(tenant), Some(subject), Some(version)) = (
            record.attribute("tenantid").map(str::to_owned),
            record.attribute("subject").map(str::to_owned),
            record.attribute("inviteversion").and_then(|v| v.parse::<u64>().ok()),
        ) else {
            let detail = "lacks its tenantid, subject or inviteversion attribute".to_owned();
            return self.problem(Kind::Malformed, "?", None, format!("{}, event {id}", record.at), detail);
        };
        let link = match Link::from_attributes(|name| record.attribute(name)) {
            Ok(link) => link,
            Err(attribute) => {
                let at = format!("{}, event {id}, version {version}", record.at);
                return self.problem(
                    Kind::Altered,
                    &tenant,
                    Some(&subject),
                    at,
                    format!("its {attribute} is malformed"),
                );
            }
        };
        let at = match link {
            Some(l) => format!("{}, event {id}, version {version}, tenant seq {}", record.at, l.tenant_seq),
            None => format!("{}, event {id}, version {version}", record.at),
        };
        match link {
            Some(_) => self.report.chained += 1,
            None => self.report.unchained += 1,
        }
        let digest = chain::event_digest(&chain::canonical(
            record.attributes.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            &record.value,
        ));

        let anchor = self.anchors.streams.get(&subject).copied();
        let stream = self.streams.entry(subject.clone()).or_insert_with(|| {
            let (last_version, head) = anchor.unwrap_or((0, Hash::ZERO));
            StreamState { tenant: tenant.clone(), last_version, head: Some(head), gaps: Vec::new(), late: Vec::new() }
        });
        let mut found = None;
        if stream.tenant != tenant {
            found = Some((Kind::Inserted, format!("its tenant {tenant} is not its stream's ({})", stream.tenant)));
        } else if version == stream.last_version + 1 {
            let computed = stream.head.map(|h| chain::stream_chain(h, digest));
            if let (Some(c), Some(l)) = (computed, link) {
                if c != l.stream_chain {
                    found = Some((
                        Kind::Altered,
                        "its stream chain does not recompute from the one before it and its content: \
                         the event was changed"
                            .to_owned(),
                    ));
                }
            }
            stream.head = link.map(|l| l.stream_chain).or(computed);
            stream.last_version = version;
        } else if version > stream.last_version + 1 {
            stream.gaps.push((at.clone(), (stream.last_version + 1..version).collect()));
            stream.head = link.map(|l| l.stream_chain);
            stream.last_version = version;
        } else if stream.gaps.iter().any(|(_, missing)| missing.contains(&version)) {
            stream.late.push((version, at.clone()));
        } else {
            found =
                Some((Kind::Inserted, format!("version {version} comes again after version {}", stream.last_version)));
        }
        if let Some((kind, detail)) = found {
            self.problem(kind, &tenant, Some(&subject), at.clone(), detail);
        }
        if let Some(l) = link {
            self.tenants.entry(tenant).or_default().push(TenantEntry {
                seq: l.tenant_seq,
                lane: record.lane,
                ordinal: self.ordinal,
                stream_chain: l.stream_chain,
                tenant_chain: l.tenant_chain,
                at,
            });
        }
    }

    /// Settles what needed every record: gaps, tenant chains, checkpoints.
    pub fn finish(mut self) -> Report {
        let mut streams: Vec<(String, StreamState)> = std::mem::take(&mut self.streams).into_iter().collect();
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        self.report.streams = streams.len();
        for (subject, s) in streams {
            for (at, missing) in &s.gaps {
                let late: Vec<&(u64, String)> = s.late.iter().filter(|(v, _)| missing.contains(v)).collect();
                if late.len() == missing.len() {
                    let detail = format!(
                        "versions {} come after this event, at {}",
                        range(missing),
                        late.iter().map(|(_, at)| at.as_str()).collect::<Vec<_>>().join("; ")
                    );
                    self.problem(Kind::Reordered, &s.tenant, Some(&subject), at.clone(), detail);
                } else {
                    let detail = format!("version(s) {} are missing before this event", range(missing));
                    self.problem(Kind::Removed, &s.tenant, Some(&subject), at.clone(), detail);
                }
            }
        }
        let mut tenants: Vec<String> = self.tenants.keys().chain(self.checkpoints.keys()).cloned().collect();
        tenants.sort();
        tenants.dedup();
        self.report.tenants = tenants.len();
        for tenant in tenants {
            self.settle_tenant(&tenant);
        }
        self.report
    }

    fn settle_tenant(&mut self, tenant: &str) {
        let mut entries = self.tenants.remove(tenant).unwrap_or_default();
        let mut checkpoints = self.checkpoints.remove(tenant).unwrap_or_default();
        // Each lane holds its events in the order the writer decided them.
        // A seq that comes twice is an insert, reported below, not a reorder.
        let mut count: HashMap<u64, usize> = HashMap::new();
        for e in &entries {
            *count.entry(e.seq).or_default() += 1;
        }
        let mut lanes: HashMap<i64, (u64, String)> = HashMap::new();
        for e in &entries {
            if let Some((seq, at)) = lanes.get(&e.lane) {
                if e.seq < *seq && count[&e.seq] == 1 {
                    let detail = format!("tenant seq {} comes after seq {seq} (at {at})", e.seq);
                    self.problem(Kind::Reordered, tenant, None, e.at.clone(), detail);
                    continue;
                }
            }
            lanes.insert(e.lane, (e.seq, e.at.clone()));
        }
        entries.sort_by_key(|e| (e.seq, e.ordinal));
        let start = self.anchors.tenants.get(tenant).copied().unwrap_or_default();
        let mut head = start;
        // Where the chain stood at each seq, as the records have it once every link was checked.
        let mut chain_at: HashMap<u64, (Hash, String)> = HashMap::new();
        for e in &entries {
            if e.seq <= head.seq && e.seq > start.seq {
                let detail = format!("tenant seq {} comes twice", e.seq);
                self.problem(Kind::Inserted, tenant, None, e.at.clone(), detail);
                continue;
            }
            if e.seq <= start.seq {
                let detail = format!("tenant seq {} is at or before the export's anchor ({})", e.seq, start.seq);
                self.problem(Kind::Inserted, tenant, None, e.at.clone(), detail);
                continue;
            }
            if e.seq == head.seq + 1 {
                if head.next(e.stream_chain).chain != e.tenant_chain {
                    let detail = "its tenant chain does not recompute from the one before it".to_owned();
                    self.problem(Kind::Altered, tenant, None, e.at.clone(), detail);
                }
            } else {
                let missing: Vec<u64> = (head.seq + 1..e.seq).collect();
                let detail = format!("tenant seq {} missing before this event", range(&missing));
                self.problem(Kind::Removed, tenant, None, e.at.clone(), detail);
            }
            head = chain::TenantHead { seq: e.seq, chain: e.tenant_chain };
            chain_at.insert(e.seq, (e.tenant_chain, e.at.clone()));
        }
        checkpoints.sort_by_key(|(c, _)| c.tenant_seq);
        let mut signed_up_to = start.seq;
        for (c, at) in &checkpoints {
            if let Err(why) = self.key.verify(c) {
                let detail = format!("the checkpoint of tenant seq {}: {why}", c.tenant_seq);
                self.problem(Kind::BadCheckpoint, tenant, None, at.clone(), detail);
                continue;
            }
            self.report.checkpoints += 1;
            if c.tenant_seq <= start.seq {
                continue;
            }
            match chain_at.get(&c.tenant_seq) {
                Some((chain, event_at)) if Some(*chain) == c.chain() => signed_up_to = signed_up_to.max(c.tenant_seq),
                Some((_, event_at)) => {
                    let detail = format!(
                        "the tenant chain at seq {} is not the one the checkpoint at {at} signed: an event at \
                         or before it, after seq {signed_up_to}, was changed, removed or inserted and the chains \
                         recomputed after it",
                        c.tenant_seq
                    );
                    self.problem(Kind::Altered, tenant, None, event_at.clone(), detail);
                }
                None if c.tenant_seq > head.seq => {
                    let detail = format!(
                        "the checkpoint at {at} signed tenant seq {} but the events end at seq {}: the last {} \
                         were removed",
                        c.tenant_seq,
                        head.seq,
                        c.tenant_seq - head.seq
                    );
                    self.problem(Kind::TruncatedTail, tenant, None, at.clone(), detail);
                }
                None => {} // that event's removal is reported above
            }
        }
        self.report.unsigned += entries.iter().filter(|e| e.seq > signed_up_to).count() as u64;
    }
}

fn range(v: &[u64]) -> String {
    match (v.first(), v.last()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::SigningKey;
    use events::chain::TenantHead;

    const TENANT: &str = "01930000-0000-7000-8000-000000000aaa";

    /// `n` events of one tenant over two streams, chained as the writer chains them, and a
    /// checkpoint of the last.
    fn log(n: u64) -> (Vec<Record>, Checkpoint, PublicKey) {
        let mut heads: HashMap<String, (u64, Hash)> = HashMap::new();
        let mut tenant = TenantHead::default();
        let mut records = Vec::new();
        for i in 0..n {
            let subject = format!("invites/{}", i % 2);
            let (version, before) = heads.get(&subject).copied().unwrap_or((0, Hash::ZERO));
            let mut attributes: Vec<(String, Vec<u8>)> = [
                ("id", format!("event-{i}")),
                ("tenantid", TENANT.to_owned()),
                ("subject", subject.clone()),
                ("inviteversion", (version + 1).to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_bytes()))
            .collect();
            let value = format!("{{\"n\":{i}}}").into_bytes();
            let digest = chain::event_digest(&chain::canonical(
                attributes.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
                &value,
            ));
            let stream_chain = chain::stream_chain(before, digest);
            heads.insert(subject, (version + 1, stream_chain));
            tenant = tenant.next(stream_chain);
            for (k, v) in (Link { stream_chain, tenant_seq: tenant.seq, tenant_chain: tenant.chain }).headers() {
                attributes.push((k.trim_start_matches("ce_").to_owned(), v.into_bytes()));
            }
            records.push(Record { at: format!("offset {i}"), lane: 0, attributes, value });
        }
        let key = SigningKey::from_base64_seed("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().to_utc();
        let checkpoint = key.sign(events::TenantId::parse(TENANT).unwrap(), tenant, at);
        (records, checkpoint, key.public_key())
    }

    fn verify(records: &[Record], checkpoint: &Checkpoint, key: &PublicKey) -> Report {
        let mut v = Verifier::new(key.clone(), Anchors::default());
        v.checkpoint(checkpoint.clone(), "audit 0".into());
        for r in records {
            v.event(r);
        }
        v.finish()
    }

    #[test]
    fn an_untouched_log_passes_and_an_empty_one_does_not() {
        let (records, checkpoint, key) = log(6);
        let report = verify(&records, &checkpoint, &key);
        assert!(report.ok(), "{}", report.render());
        assert_eq!((report.events, report.chained, report.checkpoints, report.unsigned), (6, 6, 1, 0));
        let empty = Verifier::new(key, Anchors::default()).finish();
        assert!(!empty.ok());
        assert!(empty.render().starts_with("FAILED: nothing to verify"), "{}", empty.render());
    }

    #[test]
    fn a_repeated_record_is_an_insert_and_a_forged_checkpoint_is_refused() {
        let (mut records, mut checkpoint, key) = log(6);
        let copy = Record { at: "offset 9".into(), ..clone(&records[2]) };
        records.push(copy);
        let report = verify(&records, &checkpoint, &key);
        let kinds: Vec<Kind> = report.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [Kind::Inserted, Kind::Inserted], "{}", report.render());
        assert!(report.problems[0].at.starts_with("offset 9"), "{}", report.render());
        records.pop();
        checkpoint.tenant_seq = 5;
        let report = verify(&records, &checkpoint, &key);
        assert_eq!(report.problems[0].kind, Kind::BadCheckpoint, "{}", report.render());
        assert_eq!(report.unsigned, 6);
    }

    fn clone(r: &Record) -> Record {
        Record { at: r.at.clone(), lane: r.lane, attributes: r.attributes.clone(), value: r.value.clone() }
    }
}
