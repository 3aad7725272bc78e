//! The end checks over the log alone, pure so they can be tested on made-up ledgers and logs:
//! - every acknowledged command's events are in the log, exactly once: as many events as the
//!   answer named, all from one decision (one causation id), the answered version among them;
//! - nothing in the log belongs to a command that was answered with an error or never sent;
//! - every event belongs to a command of the ledger, and every stream's versions run 1, 2, 3...
//!   with no gap and no repeat;
//! - and, for the comparison with the query API, each touched invite's status and version as the
//!   log says they are.

use super::ledger::{Command, Outcome};
use chrono::{DateTime, Utc};
use events::{Envelope, InviteState, StreamId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

#[derive(Debug, Default, Clone)]
pub struct Audit {
    pub events: usize,
    pub acknowledged: usize,
    pub refused: usize,
    pub not_sent: usize,
    pub unanswered: usize,
    /// Unanswered commands whose events are in the log (they took effect; no client was told).
    pub unanswered_committed: usize,
    /// Acknowledged commands with fewer events in the log than their answer named (none: lost).
    pub lost: Vec<String>,
    /// Commands with more events than they should have, or from more than one decision.
    pub duplicated: Vec<String>,
    /// Commands answered with an error (or never sent) whose events are in the log anyway.
    pub refused_in_log: Vec<String>,
    /// Events whose correlation id is no command of the ledger.
    pub unattributed: Vec<String>,
    /// Streams whose versions are not 1..=n.
    pub version_anomalies: Vec<String>,
    /// Every invite touched by the load, with its status and version as the log has them.
    pub invites: BTreeMap<Uuid, (String, u64)>,
}

impl Audit {
    /// The findings that break a guarantee, one line each.
    pub fn violations(&self) -> Vec<String> {
        let lines =
            |what: &str, items: &[String]| items.iter().take(20).map(|i| format!("{what}: {i}")).collect::<Vec<_>>();
        [
            lines("acknowledged but lost", &self.lost),
            lines("duplicated", &self.duplicated),
            lines("refused but in the log", &self.refused_in_log),
            lines("event of no command", &self.unattributed),
            lines("version sequence broken", &self.version_anomalies),
        ]
        .concat()
    }
}

/// Audits `log` (every committed event, in per-partition order) against `commands`.
pub fn audit(commands: &[Command], log: &[Envelope], now: DateTime<Utc>) -> Audit {
    let mut by_request: HashMap<Uuid, Vec<&Envelope>> = HashMap::new();
    for e in log {
        by_request.entry(e.meta.correlation_id.unwrap_or_default()).or_default().push(e);
    }
    let mut audit = Audit { events: log.len(), ..Audit::default() };
    let known: BTreeSet<Uuid> = commands.iter().map(|c| c.request_id).collect();
    for (request, events) in &by_request {
        if !known.contains(request) {
            audit.unattributed.push(format!("request {request}: {} events", events.len()));
        }
    }
    for c in commands {
        let events = by_request.get(&c.request_id).map(Vec::as_slice).unwrap_or_default();
        let decisions: BTreeSet<Option<Uuid>> = events.iter().map(|e| e.meta.causation_id).collect();
        let what = || format!("{} {} ({:?})", c.kind.as_str(), c.request_id, c.outcome);
        if decisions.len() > 1 {
            audit.duplicated.push(format!("{}: {} decisions", what(), decisions.len()));
        }
        match &c.outcome {
            Outcome::Acked { stream, version, events: expected, .. } => {
                audit.acknowledged += 1;
                if let Some(expected) = *expected {
                    if events.len() < expected {
                        audit.lost.push(format!("{}: {} of {expected} events in the log", what(), events.len()));
                    } else if events.len() > expected {
                        audit.duplicated.push(format!("{}: {} events, {expected} answered", what(), events.len()));
                    }
                }
                if let (Some(stream), Some(version)) = (stream, version) {
                    let named =
                        events.iter().any(|e| *e.meta.stream.as_uuid() == *stream && e.meta.version == *version);
                    // A command that changed nothing answers with the version it found.
                    if !named && expected.is_none_or(|n| n > 0) {
                        audit.lost.push(format!("{}: no event at version {version} of {stream}", what()));
                    }
                }
            }
            Outcome::Refused { .. } | Outcome::NotSent => {
                if matches!(c.outcome, Outcome::NotSent) {
                    audit.not_sent += 1;
                } else {
                    audit.refused += 1;
                }
                if !events.is_empty() {
                    audit.refused_in_log.push(format!("{}: {} events", what(), events.len()));
                }
            }
            Outcome::NoAnswer => {
                audit.unanswered += 1;
                if !events.is_empty() {
                    audit.unanswered_committed += 1;
                }
            }
        }
    }
    audit.version_anomalies = version_anomalies(log);
    audit.invites = invites_touched(commands, log, &by_request, now);
    audit
}

fn version_anomalies(log: &[Envelope]) -> Vec<String> {
    let mut versions: HashMap<StreamId, Vec<u64>> = HashMap::new();
    for e in log {
        versions.entry(e.meta.stream).or_default().push(e.meta.version);
    }
    versions
        .into_iter()
        .filter(|(_, v)| v.iter().enumerate().any(|(i, v)| *v != i as u64 + 1))
        .map(|(stream, v)| format!("{} has versions {:?}", stream.subject(), &v[..v.len().min(12)]))
        .collect()
}

/// The invites the ledger's commands touched (named, answered, or written by them), each folded
/// from the log to its status now and its version.
fn invites_touched(
    commands: &[Command],
    log: &[Envelope],
    by_request: &HashMap<Uuid, Vec<&Envelope>>,
    now: DateTime<Utc>,
) -> BTreeMap<Uuid, (String, u64)> {
    let mut touched: BTreeSet<Uuid> = BTreeSet::new();
    for c in commands {
        for e in by_request.get(&c.request_id).into_iter().flatten() {
            if let StreamId::Invite(id) = e.meta.stream {
                touched.insert(*id.as_uuid());
            }
        }
    }
    let mut states: HashMap<Uuid, InviteState> = HashMap::new();
    for e in log {
        if let Some((id, event)) = e.invite_event() {
            if touched.contains(id.as_uuid()) {
                let state = states.remove(id.as_uuid()).unwrap_or_default();
                states.insert(*id.as_uuid(), events::evolve(state, event));
            }
        }
    }
    states
        .into_iter()
        .filter_map(|(id, s)| s.live().map(|i| (id, (i.status_at(now).as_str().to_owned(), i.version))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ledger::CommandKind;
    use std::time::Duration;

    fn created(request: Uuid, decision: Uuid) -> Envelope {
        let mut e = crate::load::created_envelope(events::TenantId::from_uuid(Uuid::now_v7()), Utc::now(), 1);
        e.meta.correlation_id = Some(request);
        e.meta.causation_id = Some(decision);
        e
    }

    fn command(request: Uuid, outcome: Outcome) -> Command {
        Command {
            request_id: request,
            kind: CommandKind::Create,
            subject: None,
            sent: Duration::ZERO,
            answered: Duration::ZERO,
            outcome,
        }
    }

    fn acked(e: &Envelope) -> Outcome {
        Outcome::Acked { status: 201, stream: Some(*e.meta.stream.as_uuid()), version: Some(1), events: Some(1) }
    }

    #[test]
    fn an_acknowledged_create_found_once_in_the_log_is_no_violation() {
        let request = Uuid::new_v4();
        let e = created(request, Uuid::new_v4());
        let audit = audit(&[command(request, acked(&e))], std::slice::from_ref(&e), Utc::now());
        assert_eq!(audit.violations(), Vec::<String>::new());
        assert_eq!(audit.acknowledged, 1);
        assert_eq!(audit.invites[e.meta.stream.as_uuid()], ("created".to_owned(), 1));
    }

    #[test]
    fn an_acknowledged_command_missing_from_the_log_is_reported_lost() {
        let request = Uuid::new_v4();
        let e = created(request, Uuid::new_v4());
        let audit = audit(&[command(request, acked(&e))], &[], Utc::now());
        assert_eq!(audit.lost.len(), 2, "{:?}", audit.lost);
        assert!(!audit.violations().is_empty());
    }

    #[test]
    fn a_command_written_twice_is_reported_duplicated() {
        let request = Uuid::new_v4();
        let first = created(request, Uuid::new_v4());
        let mut again = created(request, Uuid::new_v4());
        again.meta.stream = first.meta.stream;
        again.meta.version = 2;
        let audit = audit(&[command(request, acked(&first))], &[first, again], Utc::now());
        assert_eq!(audit.duplicated.len(), 2, "{:?}", audit.duplicated);
    }

    #[test]
    fn a_refused_command_in_the_log_and_an_event_of_no_command_are_reported() {
        let (refused, stranger) = (Uuid::new_v4(), Uuid::new_v4());
        let log = [created(refused, Uuid::new_v4()), created(stranger, Uuid::new_v4())];
        let audit = audit(&[command(refused, Outcome::Refused { status: 503 })], &log, Utc::now());
        assert_eq!(audit.refused_in_log.len(), 1);
        assert_eq!(audit.unattributed.len(), 1);
    }

    #[test]
    fn an_unanswered_command_may_be_in_the_log_once_but_a_version_gap_is_reported() {
        let request = Uuid::new_v4();
        let mut e = created(request, Uuid::new_v4());
        let audit_once = audit(&[command(request, Outcome::NoAnswer)], std::slice::from_ref(&e), Utc::now());
        assert_eq!(audit_once.violations(), Vec::<String>::new());
        assert_eq!(audit_once.unanswered_committed, 1);
        e.meta.version = 2;
        let gap = audit(&[command(request, Outcome::NoAnswer)], &[e], Utc::now());
        assert_eq!(gap.version_anomalies.len(), 1);
    }
}
