//! A run's outcome: what broke a guarantee (violations), and the figures: faults by kind with
//! their recovery times, commands by outcome, lost, duplicated.

use super::check::Audit;
use super::ledger::{Command, CommandKind, Outcome};
use super::{FaultKind, FaultRecord, Plan};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

pub struct Report {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub plan: Plan,
    pub faults: Vec<FaultRecord>,
    /// Why the fault loop stopped early, if it did.
    pub aborted: Option<String>,
    pub load_time: Duration,
    pub commands: Vec<Command>,
    pub audit: Audit,
    /// Touched invites the query API shows otherwise than the log.
    pub disagreements: Vec<String>,
    pub verify_clean: bool,
    pub verify_output: String,
    pub dead_letters: usize,
}

impl Report {
    /// Every broken guarantee, one line each; empty when the run is clean.
    pub fn violations(&self) -> Vec<String> {
        let mut v = self.audit.violations();
        v.extend(self.aborted.iter().cloned());
        v.extend(self.disagreements.iter().take(20).map(|d| format!("query API disagrees with the log: {d}")));
        if !self.verify_clean {
            v.push(format!("projector verify: {}", self.verify_output));
        }
        if self.dead_letters > 0 {
            v.push(format!("{} events dead-lettered by the projector", self.dead_letters));
        }
        v
    }

    fn by_kind(&self) -> BTreeMap<FaultKind, Vec<&FaultRecord>> {
        let mut m: BTreeMap<FaultKind, Vec<&FaultRecord>> = BTreeMap::new();
        for f in &self.faults {
            m.entry(f.kind).or_default().push(f);
        }
        m
    }

    fn commands_by_kind(&self) -> BTreeMap<CommandKind, [usize; 4]> {
        let mut m: BTreeMap<CommandKind, [usize; 4]> = BTreeMap::new();
        for c in &self.commands {
            let slot = match c.outcome {
                Outcome::Acked { .. } => 0,
                Outcome::Refused { .. } => 1,
                Outcome::NotSent => 2,
                Outcome::NoAnswer => 3,
            };
            m.entry(c.kind).or_default()[slot] += 1;
        }
        m
    }

    fn refusals_by_status(&self) -> BTreeMap<u16, usize> {
        let mut m = BTreeMap::new();
        for c in &self.commands {
            if let Outcome::Refused { status } = c.outcome {
                *m.entry(status).or_default() += 1;
            }
        }
        m
    }

    /// The short summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let a = &self.audit;
        let mut s = String::new();
        let _ = writeln!(s, "faults: {} in {:.0} s of load", self.faults.len(), self.load_time.as_secs_f64());
        for (kind, faults) in self.by_kind() {
            let _ = writeln!(
                s,
                "  {:<30} {:>3}  write back after {}  readable after {}",
                kind.as_str(),
                faults.len(),
                spread(faults.iter().map(|f| f.write_recovery)),
                spread(faults.iter().map(|f| f.read_recovery))
            );
        }
        let _ = writeln!(
            s,
            "commands: {} sent, {} acknowledged, {} refused {:?}, {} not sent, {} unanswered ({} of them in the log)",
            self.commands.len(),
            a.acknowledged,
            a.refused,
            self.refusals_by_status(),
            a.not_sent,
            a.unanswered,
            a.unanswered_committed
        );
        let _ = writeln!(
            s,
            "log: {} events; lost {}, duplicated {}, refused but in the log {}, of no command {}, version gaps {}",
            a.events,
            a.lost.len(),
            a.duplicated.len(),
            a.refused_in_log.len(),
            a.unattributed.len(),
            a.version_anomalies.len()
        );
        let _ = writeln!(
            s,
            "read side: {} touched invites, {} disagree with the log; projector verify {}; {} dead letters",
            a.invites.len(),
            self.disagreements.len(),
            if self.verify_clean { "clean" } else { "FOUND DRIFT" },
            self.dead_letters
        );
        let violations = self.violations();
        if violations.is_empty() {
            s.push_str("no violation\n");
        } else {
            let _ = writeln!(s, "{} VIOLATIONS:", violations.len());
            for v in violations {
                let _ = writeln!(s, "  {v}");
            }
        }
        s
    }

    /// RELIABILITY.md: the figures of a long run, with when, where and how it was made.
    pub fn markdown(&self, command: &str, revision: &str, machine: &str, duration: Duration) -> String {
        let a = &self.audit;
        let mut s = String::new();
        let _ = writeln!(s, "# Reliability\n");
        let _ = writeln!(
            s,
            "Figures of one run of the fault-injection command (`make reliability`; README, \"Reliability\"), \
             written by the run itself.\n"
        );
        let _ = writeln!(s, "- date: {} (UTC)", self.started_at.format("%Y-%m-%d %H:%M"));
        let _ = writeln!(s, "- machine: {machine}");
        let _ = writeln!(s, "- command: `{command}` at revision {revision}");
        let _ = writeln!(
            s,
            "- load: {} clients, {} ms between commands each; {} partitions; writer lease session timeout {} ms; \
             {:.0} s of load, {:.0} s in all (with the fuzzing before it)",
            self.plan.clients,
            self.plan.think.as_millis(),
            self.plan.partitions,
            self.plan.lease_timeout_ms,
            self.load_time.as_secs_f64(),
            duration.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "- verdict: {}\n",
            if self.violations().is_empty() { "no violation" } else { "VIOLATIONS (below)" }
        );

        let _ = writeln!(s, "## Faults and recovery\n");
        let _ = writeln!(
            s,
            "Recovery is measured from the moment of the fault: *write back* until the first acknowledged \
             write sent after it; *readable* until a write made after it could be read on the query API \
             (the projection caught up). Median and maximum over the faults of the kind.\n"
        );
        let _ = writeln!(s, "| fault | count | write back (median / max) | readable (median / max) |");
        let _ = writeln!(s, "| --- | ---: | --- | --- |");
        for (kind, faults) in self.by_kind() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                kind.as_str(),
                faults.len(),
                spread(faults.iter().map(|f| f.write_recovery)),
                spread(faults.iter().map(|f| f.read_recovery))
            );
        }
        let _ = writeln!(s, "| all | {} | | |\n", self.faults.len());

        let _ = writeln!(s, "## Commands\n");
        let _ = writeln!(s, "| command | acknowledged | refused | not sent | unanswered |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
        for (kind, [acked, refused, not_sent, unanswered]) in self.commands_by_kind() {
            let _ = writeln!(s, "| {} | {acked} | {refused} | {not_sent} | {unanswered} |", kind.as_str());
        }
        let _ = writeln!(s, "| all | {} | {} | {} | {} |\n", a.acknowledged, a.refused, a.not_sent, a.unanswered);
        let refusals: Vec<String> =
            self.refusals_by_status().iter().map(|(status, n)| format!("{status}: {n}")).collect();
        let _ = writeln!(
            s,
            "Refusals by status: {}. A 503 is the system saying it cannot take the write now (no writer \
             while the lease moves, Kafka or PostgreSQL down); 409s are the load's own conflicts (an \
             engagement on a revoked invite, ...). Not sent: the connection was refused (a killed \
             instance). Unanswered: no answer within {} s; {} of them had taken effect.\n",
            if refusals.is_empty() { "none".to_owned() } else { refusals.join(", ") },
            super::load::ANSWER_TIMEOUT.as_secs(),
            a.unanswered_committed
        );

        let _ = writeln!(s, "## End checks\n");
        let _ = writeln!(s, "| check | result |");
        let _ = writeln!(s, "| --- | --- |");
        let _ = writeln!(s, "| events in the log | {} |", a.events);
        let _ = writeln!(s, "| acknowledged commands lost (events missing from the log) | {} |", a.lost.len());
        let _ = writeln!(s, "| commands duplicated (events twice, or two decisions) | {} |", a.duplicated.len());
        let _ = writeln!(s, "| refused or unsent commands found in the log | {} |", a.refused_in_log.len());
        let _ = writeln!(s, "| events of no command | {} |", a.unattributed.len());
        let _ = writeln!(s, "| streams with a version gap or repeat | {} |", a.version_anomalies.len());
        let _ = writeln!(
            s,
            "| touched invites whose status or version differs on the query API | {} of {} |",
            self.disagreements.len(),
            a.invites.len()
        );
        let _ = writeln!(s, "| `projector verify` | {} |", if self.verify_clean { "no drift" } else { "drift" });
        let _ = writeln!(s, "| dead-lettered events | {} |\n", self.dead_letters);
        let violations = self.violations();
        if !violations.is_empty() {
            let _ = writeln!(s, "## Violations\n");
            for v in violations {
                let _ = writeln!(s, "- {v}");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "`projector verify` said: `{}`", self.verify_output.lines().last().unwrap_or_default());
        s
    }
}

/// `median / max` of the measured durations, and how many never came.
fn spread(values: impl Iterator<Item = Option<Duration>>) -> String {
    let (mut got, mut missing) = (Vec::new(), 0);
    for v in values {
        match v {
            Some(d) => got.push(d),
            None => missing += 1,
        }
    }
    got.sort();
    let mut s = match got.len() {
        0 => "-".to_owned(),
        n => format!("{:.1} s / {:.1} s", got[n / 2].as_secs_f64(), got[n - 1].as_secs_f64()),
    };
    if missing > 0 {
        s.push_str(&format!(" ({missing} never)"));
    }
    s
}
