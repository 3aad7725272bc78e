//! `rsvp-audit`: verify the log, export a tenant's events with their proofs, verify an export.
//!
//! Exit codes: 0 everything checked holds; 1 a problem was found (or there was nothing to check);
//! 2 the check could not run (Kafka unreachable, a file unreadable, a bad key).

use crate::checkpoint::{PublicKey, SigningKey};
use crate::export::{self, Selection};
use crate::log;
use crate::verify::{Anchors, Verifier};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::io::Write as _;

#[derive(Debug, Parser)]
#[command(name = "rsvp-audit", about = "rsvp's tamper evidence: check that the log is the log that was written")]
pub struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long, global = true, env = "RSVP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// The event topic; its checkpoints are in `<topic>.audit`.
    #[arg(long, global = true, env = "RSVP_KAFKA_TOPIC", default_value = "rsvp.invite-events")]
    pub topic: String,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Replay the log and its checkpoints: report, per stream and overall, any event removed,
    /// altered, reordered or inserted, naming the first; exit 1 on any problem.
    Verify {
        /// The writer's public key (base64, or a file holding it): `rsvp-audit public-key`, or
        /// `GET /v1/audit/public-key` of the command API.
        #[arg(long, env = "RSVP_AUDIT_PUBLIC_KEY")]
        public_key: String,
    },
    /// Write a tenant's events as CloudEvents JSON lines (structured mode) with their chain values,
    /// the checkpoints that sign them and, when `--from` cuts into the history, the anchor values.
    Export {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Events at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Events at or before this time (RFC 3339).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// The file to write; default: standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Check an export offline (no Kafka, no PostgreSQL); exit 1 on any problem.
    VerifyExport {
        file: std::path::PathBuf,
        #[arg(long, env = "RSVP_AUDIT_PUBLIC_KEY")]
        public_key: String,
    },
    /// Print the public key of `RSVP_AUDIT_SIGNING_KEY` (base64), for auditors.
    PublicKey {
        #[arg(long, env = "RSVP_AUDIT_SIGNING_KEY", hide_env_values = true)]
        signing_key: String,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Cmd::Verify { public_key } => {
            let key = PublicKey::parse(&public_key)?;
            let mut verifier = Verifier::new(key, Anchors::default());
            let checkpoints = log::read_checkpoints(&cli.brokers, &cli.topic)?;
            let missing = checkpoints.is_none();
            for (c, at) in checkpoints.unwrap_or_default() {
                verifier.checkpoint(c, at);
            }
            log::read_events(&cli.brokers, &cli.topic, |r| verifier.event(&r))
                .with_context(|| format!("cannot read {}", cli.topic))?;
            let mut report = verifier.finish();
            // The writer that chains events creates the checkpoint topic before it writes any.
            if missing && report.chained > 0 {
                report.problems.push(crate::verify::Problem {
                    kind: crate::verify::Kind::BadCheckpoint,
                    tenant: "*".into(),
                    stream: None,
                    at: crate::audit_topic(&cli.topic),
                    detail: "the checkpoint topic is missing although the log holds chained events: it was deleted"
                        .into(),
                });
            }
            print!("{}", report.render());
            Ok(if report.ok() { 0 } else { 1 })
        }
        Cmd::Export { tenant, from, to, out } => {
            let mut records = Vec::new();
            let id = tenant.to_string();
            // Only the tenant's records are kept: the log may be far larger than one tenant.
            log::read_events(&cli.brokers, &cli.topic, |r| {
                if r.attributes.iter().any(|(n, v)| n == "tenantid" && v == id.as_bytes()) {
                    records.push(r);
                }
            })
            .with_context(|| format!("cannot read {}", cli.topic))?;
            let checkpoints = log::read_checkpoints(&cli.brokers, &cli.topic)?
                .unwrap_or_default()
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            let selection = Selection { tenant: events::TenantId::from_uuid(tenant), from, to };
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let written = export::write(records, checkpoints, &selection, &mut sink)?;
            sink.flush()?;
            eprintln!("exported {} events and {} checkpoints of tenant {tenant}", written.events, written.checkpoints);
            Ok(0)
        }
        Cmd::VerifyExport { file, public_key } => {
            let key = PublicKey::parse(&public_key)?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let report = export::verify(&text, key);
            print!("{}", report.render());
            Ok(if report.ok() { 0 } else { 1 })
        }
        Cmd::PublicKey { signing_key } => {
            println!("{}", SigningKey::from_base64_seed(&signing_key)?.public_key().to_base64());
            Ok(0)
        }
    }
}
