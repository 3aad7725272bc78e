//! The writer's side of tamper evidence (`events::chain`, the `audit` crate): where each stream's
//! and each tenant's chain stands, the links it gives the events it appends, and when a tenant's
//! chain is due a signed checkpoint.
//!
//! The heads are restored from the chain values the log's events carry when the writer starts, so
//! a new writer continues the chains where the last one left them; a stream's events written before
//! chaining have their values computed. Checkpoints go to `<topic>.audit` in the transaction that
//! holds the last events they cover (or, when the writer is idle, in one of their own after it):
//! a checkpoint never names an event the log does not hold.

use audit::SigningKey;
use events::chain::{self, Hash, Link, TenantHead};
use events::{EventMeta, StreamId, TenantId};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How the writer signs checkpoints.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub key: SigningKey,
    /// At most this often per tenant whose chain moved.
    pub interval: Duration,
}

/// Where the chains stand.
#[derive(Default)]
pub struct Chains {
    streams: HashMap<StreamId, Hash>,
    tenants: HashMap<TenantId, TenantHead>,
    /// The last seq signed per tenant.
    signed: HashMap<TenantId, u64>,
    /// Tenants whose chain moved past their last checkpoint.
    due: HashSet<TenantId>,
}

/// What a record read back from the log says about the chains.
pub enum Observed {
    Linked(Link),
    /// Written before chaining: its digest, from which its stream chain is computed.
    Unchained(Hash),
}

impl Observed {
    /// From a record's headers (key, value) and value.
    pub fn of_record<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone, value: &[u8]) -> Self {
        let attribute = |name: &str| {
            headers.clone().into_iter().find_map(|(k, v)| {
                (chain::attribute_of_header(k) == Some(name)).then(|| std::str::from_utf8(v).ok()).flatten()
            })
        };
        match Link::from_attributes(attribute) {
            Ok(Some(link)) => Self::Linked(link),
            _ => Self::Unchained(chain::event_digest(&chain::canonical_of_headers(headers, value))),
        }
    }
}

impl Chains {
    /// Links the next event of `meta`'s stream and tenant, whose canonical bytes are `canonical`.
    pub fn link(&mut self, meta: &EventMeta, canonical: &[u8]) -> Link {
        let before = self.streams.get(&meta.stream).copied().unwrap_or(Hash::ZERO);
        let stream_chain = chain::stream_chain(before, chain::event_digest(canonical));
        self.streams.insert(meta.stream, stream_chain);
        let head = self.tenants.entry(meta.tenant_id).or_default();
        *head = head.next(stream_chain);
        self.due.insert(meta.tenant_id);
        Link { stream_chain, tenant_seq: head.seq, tenant_chain: head.chain }
    }

    /// Folds an event read back from the log (per partition in log order; a tenant's events come
    /// from several partitions, so its head is the highest seq seen).
    pub fn observe(&mut self, meta: &EventMeta, observed: Observed) {
        match observed {
            Observed::Linked(link) => {
                self.streams.insert(meta.stream, link.stream_chain);
                let head = self.tenants.entry(meta.tenant_id).or_default();
                if link.tenant_seq > head.seq {
                    *head = TenantHead { seq: link.tenant_seq, chain: link.tenant_chain };
                }
            }
            Observed::Unchained(digest) => {
                let before = self.streams.get(&meta.stream).copied().unwrap_or(Hash::ZERO);
                self.streams.insert(meta.stream, chain::stream_chain(before, digest));
            }
        }
    }

    /// A tenant's part of the chains, for a snapshot: its head and its streams' heads.
    pub fn tenant_part(
        &self,
        tenant: TenantId,
        streams: impl Iterator<Item = StreamId>,
    ) -> (TenantHead, Vec<(StreamId, Hash)>) {
        let head = self.tenants.get(&tenant).copied().unwrap_or_default();
        (head, streams.filter_map(|s| Some((s, *self.streams.get(&s)?))).collect())
    }

    /// Makes room for `streams` more streams' heads.
    pub fn reserve(&mut self, streams: usize) {
        self.streams.reserve(streams);
    }

    /// Takes a tenant's part back from a snapshot ([`Chains::signed_up_to`] then says whether it
    /// is due a checkpoint).
    pub fn restore_tenant(&mut self, tenant: TenantId, head: TenantHead, streams: Vec<(StreamId, Hash)>) {
        if head.seq > 0 {
            self.tenants.insert(tenant, head);
        }
        self.streams.extend(streams);
    }

    /// Whether an event read back continues its tenant's chain from where it stands: the next
    /// number (always so in a topic partitioned by tenant, read in order); an unchained event
    /// has nothing to continue.
    pub fn continues(&self, meta: &EventMeta, observed: &Observed) -> bool {
        match observed {
            Observed::Linked(link) => self.tenants.get(&meta.tenant_id).map_or(0, |h| h.seq) + 1 == link.tenant_seq,
            Observed::Unchained(_) => true,
        }
    }

    /// Takes note of the checkpoints already in the audit topic: tenants whose chain went past
    /// theirs (or who have none) are due one.
    pub fn signed_up_to(&mut self, signed: HashMap<TenantId, u64>) {
        self.due =
            self.tenants.iter().filter(|(t, h)| signed.get(t).is_none_or(|&s| h.seq > s)).map(|(t, _)| *t).collect();
        self.signed = signed;
    }

    /// A signed checkpoint of every tenant whose chain moved since its last one.
    pub fn checkpoints(&mut self, key: &SigningKey, at: chrono::DateTime<chrono::Utc>) -> Vec<audit::Checkpoint> {
        let mut due: Vec<TenantId> = self.due.drain().collect();
        due.sort();
        due.into_iter()
            .filter_map(|t| {
                let head = *self.tenants.get(&t)?;
                self.signed.insert(t, head.seq);
                Some(key.sign(t, head, at))
            })
            .collect()
    }
}

/// When checkpoints are next due.
pub struct Checkpointer {
    pub config: AuditConfig,
    last: Instant,
}

impl Checkpointer {
    pub fn new(config: AuditConfig) -> Self {
        Self { config, last: Instant::now() }
    }

    /// Whether the interval has passed (and, if so, starts the next one).
    pub fn due(&mut self) -> bool {
        if self.last.elapsed() < self.config.interval {
            return false;
        }
        self.last = Instant::now();
        true
    }
}

/// The last signed seq of every tenant, from `<topic>.audit` (which the writer creates first).
pub fn read_signed(brokers: &str, topic: &str) -> anyhow::Result<HashMap<TenantId, u64>> {
    let mut signed: HashMap<TenantId, u64> = HashMap::new();
    for (c, _) in audit::log::read_checkpoints(brokers, topic)?.unwrap_or_default() {
        let seq = signed.entry(c.tenant_id).or_default();
        *seq = (*seq).max(c.tenant_seq);
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Actor, ActorKind, InviteId};

    fn meta(tenant: u128, invite: u128) -> EventMeta {
        EventMeta {
            event_id: uuid::Uuid::now_v7(),
            stream: StreamId::Invite(InviteId::from_uuid(uuid::Uuid::from_u128(invite))),
            tenant_id: TenantId::from_uuid(uuid::Uuid::from_u128(tenant)),
            version: 1,
            occurred_at: chrono::Utc::now(),
            actor: Actor { kind: ActorKind::System, id: "t".into() },
            correlation_id: None,
            causation_id: None,
            idempotency_key: None,
            request_hash: None,
        }
    }

    #[test]
    fn a_writer_that_observes_the_log_continues_its_chains() {
        let mut writer = Chains::default();
        let links: Vec<Link> = [(1, 10), (1, 11), (1, 10), (2, 20)]
            .iter()
            .map(|&(t, i)| writer.link(&meta(t, i), format!("{t}{i}").as_bytes()))
            .collect();
        assert_eq!(links.iter().map(|l| l.tenant_seq).collect::<Vec<_>>(), [1, 2, 3, 1]);
        // A restarted writer reads them back, tenant 1's in another partition order.
        let mut restarted = Chains::default();
        for (i, &(t, inv)) in [(2, 20), (1, 11), (1, 10), (1, 10)].iter().enumerate() {
            let link = [links[3], links[1], links[0], links[2]][i];
            restarted.observe(&meta(t, inv), Observed::Linked(link));
        }
        assert_eq!(restarted.link(&meta(1, 11), b"next"), writer.link(&meta(1, 11), b"next"));
        // Both tenants are due a checkpoint until one is signed.
        restarted.signed_up_to(HashMap::from([(TenantId::from_uuid(uuid::Uuid::from_u128(2)), 1)]));
        let key = SigningKey::from_base64_seed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        let checkpoints = restarted.checkpoints(&key, chrono::Utc::now());
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(checkpoints[0].tenant_seq, 4);
        assert!(restarted.checkpoints(&key, chrono::Utc::now()).is_empty());
    }
}
