//! Emails per second through Mailpit, end to end, against the floor lettre and Mailpit set.
//!
//! The system: a fresh topic and database, a Mailpit of the bench's own and the command API as a
//! real process (no projector, no query API: the dispatcher needs neither). N invites (default
//! 2000), each created with `"send": "email"` through the command API (32 in flight) while no
//! dispatcher runs; then the dispatcher starts (a real process too) and the clock runs until
//! Mailpit holds N messages and every delivery is `sent` and reported through the command API
//! (`dispatch.deliveries`: state `sent`, `reported`). What it does per email: `sending` through
//! the writer, render, SMTP send, commit, `sent` through the writer.
//!
//! The raw baseline, in the same round: lettre alone (the dispatcher's own lettre dependency,
//! features and transport settings: a pooled `AsyncSmtpTransport`) sending N emails of the same
//! size (the same rendered invitation, multipart text + HTML) one after another to a fresh
//! Mailpit, until Mailpit holds N. `--rounds R` alternates system and baseline R times (fresh
//! everything each time) and reports the medians.
//!
//!   cargo build --release -p command-api --bins   # the command API binary, next to the bench's
//!   cargo bench -p dispatcher --bench emails -- [N] [--rounds R] [--default-limit]
//!
//! The dispatcher's per-tenant limit (`RSVP_SEND_RATE_PER_TENANT`, default 50/s) is raised to
//! 100,000/s: the figure is what the dispatcher can do, not the limit (all N invites are one
//! tenant's). `--default-limit` adds one run of the system with the default limit.
//!
//! The last line, `result: {...}`, is the same figures as JSON, for `make bench`. Needs Kafka and
//! PostgreSQL (`make run`): `RSVP_KAFKA_BROKERS` (default 127.0.0.1:9092) and
//! `RSVP_BENCH_DATABASE_URL`, a role that may create databases (default: the local one), as for
//! `cargo bench -p projector --bench catchup`; and Mailpit (`RSVP_TEST_MAILPIT`, else
//! `~/.cache/rsvp/bin/mailpit`, where `deploy/local/mailpit.sh install` builds it).

use anyhow::Context as _;
use events::InviteCreated;
use futures::StreamExt as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rsvp_tests::mailpit::Mailpit;
use rsvp_tests::services::Service;
use rsvp_tests::{Api, TestEnv};
use serde_json::json;
use std::time::{Duration, Instant};

/// Creates in flight during the preload.
const PRELOAD_CONCURRENCY: usize = 32;
/// The per-tenant send limit during the measured runs.
const RATE_LIMIT: u32 = 100_000;
/// The dispatcher's default `RSVP_SEND_RATE_PER_TENANT`.
const DEFAULT_RATE_LIMIT: u32 = 50;
const MAIL_FROM: &str = "rsvp <invites@rsvp.localhost>";
/// No run may take longer than this.
const LIMIT: Duration = Duration::from_secs(900);

struct SystemRun {
    preload: Duration,
    /// From starting the dispatcher process until it answered ready (following the log).
    ready: Duration,
    /// From starting the dispatcher process until Mailpit held N and all N were reported sent.
    total: Duration,
    /// Messages in Mailpit once done (and a second later).
    received: usize,
    /// Delivery rows the dispatcher made, and how many of them stand `sent` and reported.
    deliveries: i64,
    sent: i64,
    /// Mean size in bytes of the messages, as Mailpit counts them.
    message_bytes: f64,
    /// One invite's creation and the links' base, to render the baseline's email from.
    sample: Option<InviteCreated>,
    public_url: String,
}

struct RawRun {
    /// From the first send until the last one returned.
    sends: Duration,
    /// The same messages over a bare SMTP client with `TCP_NODELAY` (what Mailpit takes).
    bare: Duration,
    /// From the first send until Mailpit held N.
    total: Duration,
    received: usize,
    message_bytes: f64,
}

fn invite_body(i: usize) -> serde_json::Value {
    json!({
        "inviter": { "id": "user-1", "name": "Ann Inviter", "email": "ann@example.com" },
        "targets": [{ "type": "email", "value": format!("guest{i}@example.com"), "name": format!("Guest {i}") }],
        "message": "join us",
        "expires_in_days": 7,
        "send": "email",
    })
}

async fn mean_size(mailpit: &Mailpit) -> f64 {
    let messages = mailpit.messages().await;
    messages.iter().map(|m| m.size as f64).sum::<f64>() / messages.len().max(1) as f64
}

/// One run of the system: preload N invites, then the dispatcher sends them all.
async fn system(brokers: &str, admin_url: &str, n: usize, rate_limit: u32) -> anyhow::Result<SystemRun> {
    let env = TestEnv::on(brokers, admin_url, 12).await;
    let mailpit = Mailpit::start_default().await;
    let command = Service::start("command-api", &env, &[("RSVP_RATE_LIMIT_PER_SECOND", "0".into())]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);

    let started = Instant::now();
    let failures: Vec<String> = futures::stream::iter(0..n)
        .map(|i| {
            let api = &api;
            async move {
                let reply = api.post("/v1/invites", &invite_body(i)).await;
                (reply.status != reqwest::StatusCode::CREATED).then(|| format!("{}: {}", reply.status, reply.body))
            }
        })
        .buffer_unordered(PRELOAD_CONCURRENCY)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    anyhow::ensure!(failures.is_empty(), "{} of {n} creates failed, e.g. {}", failures.len(), failures[0]);
    let preload = started.elapsed();

    let started = Instant::now();
    let dispatcher = rsvp_tests::dispatcher(
        &env,
        &command,
        &[("RSVP_SMTP_URL", mailpit.smtp_url()), ("RSVP_SEND_RATE_PER_TENANT", rate_limit.to_string())],
    )
    .await;
    let ready = started.elapsed();
    let total = loop {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dispatch.deliveries WHERE state = 'sent' AND reported")
                .fetch_one(&env.pool)
                .await?;
        if sent as usize >= n && mailpit.count().await >= n {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < LIMIT,
            "{sent} of {n} sent after {LIMIT:?}; the dispatcher's log: {}",
            dispatcher.log.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Anything sent twice would show by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = mailpit.count().await;
    let (deliveries, sent): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE state = 'sent' AND reported) FROM dispatch.deliveries")
            .fetch_one(&env.pool)
            .await?;
    let message_bytes = mean_size(&mailpit).await;
    let sample: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT created FROM dispatch.invites LIMIT 1").fetch_optional(&env.pool).await?;
    let sample = sample.and_then(|c| serde_json::from_value(c).ok());
    let public_url = command.url.clone();
    drop(dispatcher);
    drop(command);
    rsvp_tests::infra::delete_topic(brokers, &env.topic).await;
    Ok(SystemRun { preload, ready, total, received, deliveries, sent, message_bytes, sample, public_url })
}

/// The floor: lettre alone sends the same email N times, one after another, over one pooled
/// transport, to a fresh Mailpit.
async fn raw(n: usize, sample: &InviteCreated, public_url: &str) -> anyhow::Result<RawRun> {
    let mailpit = Mailpit::start_default().await;
    // As `dispatcher::channels::Smtp::new` builds it.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&mailpit.smtp_url())?
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let from: Mailbox = MAIL_FROM.parse()?;
    let target = &sample.targets[0];
    // The link as the dispatcher builds it (a link token derived from the invite id).
    let secrets = service_kit::vault::MasterKey::new(rsvp_tests::MASTER_KEY)?.secrets();
    let link = events::personal::link_token_of(events::InviteId::from_uuid(uuid::Uuid::now_v7()), sample, &secrets)
        .link(public_url);
    let ctx = dispatcher::deliveries::context(link, sample, &target.value);
    let rendered = events::message::render_email(None, &ctx).map_err(anyhow::Error::msg)?;

    let started = Instant::now();
    for i in 0..n {
        // Built as the dispatcher builds each email: its own Message-ID, recipient and name.
        let to: lettre::Address = format!("guest{i}@example.com").parse()?;
        let message = Message::builder()
            .from(from.clone())
            .to(Mailbox::new(Some(format!("Guest {i}")), to))
            .subject(rendered.subject.clone())
            .message_id(Some(format!("<{}@rsvp.localhost>", uuid::Uuid::new_v4())))
            .multipart(MultiPart::alternative_plain_html(rendered.text.clone(), rendered.html.clone()))?;
        transport.send(message).await.context("lettre's send")?;
    }
    let sends = started.elapsed();
    while mailpit.count().await < n {
        anyhow::ensure!(started.elapsed() < LIMIT, "Mailpit did not hold {n} messages after {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = mailpit.count().await;
    let message_bytes = mean_size(&mailpit).await;
    drop(mailpit);

    // What Mailpit itself takes: the same messages over one connection with TCP_NODELAY, each
    // body and its final `.` in one write (lettre writes them apart, without TCP_NODELAY, so
    // each email waits for the server's delayed ACK, 40 ms on Linux).
    let mailpit = Mailpit::start_default().await;
    let started = Instant::now();
    bare_smtp(&mailpit, n, |i| {
        let to: lettre::Address = format!("guest{i}@example.com").parse()?;
        Ok(Message::builder()
            .from(from.clone())
            .to(Mailbox::new(Some(format!("Guest {i}")), to))
            .subject(rendered.subject.clone())
            .message_id(Some(format!("<{}@rsvp.localhost>", uuid::Uuid::new_v4())))
            .multipart(MultiPart::alternative_plain_html(rendered.text.clone(), rendered.html.clone()))?)
    })
    .await?;
    while mailpit.count().await < n {
        anyhow::ensure!(started.elapsed() < LIMIT, "Mailpit did not hold {n} messages after {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bare = started.elapsed();
    Ok(RawRun { sends, bare, total, received, message_bytes })
}

/// A bare SMTP client: one connection, TCP_NODELAY, one command at a time.
async fn bare_smtp(
    mailpit: &Mailpit,
    n: usize,
    message: impl Fn(usize) -> anyhow::Result<Message>,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", mailpit.smtp_port)).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    async fn reply(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, expect: char) -> anyhow::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            anyhow::ensure!(read.read_line(&mut line).await? > 0, "Mailpit closed the connection");
            if line.as_bytes().get(3) != Some(&b'-') {
                anyhow::ensure!(line.starts_with(expect), "Mailpit answered {line:?}");
                return Ok(());
            }
        }
    }
    reply(&mut read, '2').await?;
    write.write_all(b"EHLO localhost\r\n").await?;
    reply(&mut read, '2').await?;
    for i in 0..n {
        let message = message(i)?;
        let envelope = message.envelope();
        let from = envelope.from().map(ToString::to_string).unwrap_or_default();
        write.write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes()).await?;
        reply(&mut read, '2').await?;
        for to in envelope.to() {
            write.write_all(format!("RCPT TO:<{to}>\r\n").as_bytes()).await?;
            reply(&mut read, '2').await?;
        }
        write.write_all(b"DATA\r\n").await?;
        reply(&mut read, '3').await?;
        let mut body = message.formatted();
        if !body.ends_with(b"\r\n") {
            body.extend_from_slice(b"\r\n");
        }
        // Dot-stuffing: a line that begins with `.` gets another.
        let mut data = Vec::with_capacity(body.len() + 16);
        let mut line_start = true;
        for &b in &body {
            if line_start && b == b'.' {
                data.push(b'.');
            }
            data.push(b);
            line_start = b == b'\n';
        }
        data.extend_from_slice(b".\r\n");
        write.write_all(&data).await?;
        reply(&mut read, '2').await?;
    }
    write.write_all(b"QUIT\r\n").await?;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    // The services log as they do by default, not at the harness's `info` for everything.
    if std::env::var_os("RSVP_TEST_SERVICE_LOG").is_none() {
        std::env::set_var("RSVP_TEST_SERVICE_LOG", "info,rdkafka=warn,sqlx=warn,actix_server=warn");
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(2000).max(1);
    let rounds: usize =
        args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(1).max(1);
    let default_limit = args.iter().any(|a| a == "--default-limit");
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let admin_url = std::env::var("RSVP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://rsvp:rsvp@127.0.0.1:5433/postgres".into());
    println!(
        "{n} invitation emails per run, {rounds} round(s); the dispatcher's RSVP_SEND_RATE_PER_TENANT is {RATE_LIMIT} \
         (default {DEFAULT_RATE_LIMIT}) so that it, not the limit, sets the pace"
    );

    let (mut systems, mut raws) = (Vec::new(), Vec::new());
    for r in 1..=rounds {
        let s = system(&brokers, &admin_url, n, RATE_LIMIT).await?;
        let rate = n as f64 / s.total.as_secs_f64();
        println!(
            "round {r}: preloaded {n} invites (send: email) through the command API in {:.2?}; dispatcher: ready in \
             {:.2?}, all {n} in Mailpit and reported sent after {:.2?} = {rate:.0} emails/s ({:.0} emails/s after \
             ready); Mailpit got {} messages ({:.0} bytes each), {} of {} deliveries sent",
            s.preload,
            s.ready,
            s.total,
            n as f64 / (s.total - s.ready).as_secs_f64(),
            s.received,
            s.message_bytes,
            s.sent,
            s.deliveries
        );
        let sample = s.sample.clone().context("no invite reached the dispatcher")?;
        let b = raw(n, &sample, &s.public_url).await?;
        let floor = n as f64 / b.total.as_secs_f64();
        println!(
            "round {r}: raw lettre, one after another over a pooled transport: {n} in Mailpit after {:.2?} (sends \
             returned after {:.2?}) = {floor:.0} emails/s; Mailpit got {} messages ({:.0} bytes each); ratio \
             dispatcher / lettre {:.2}",
            b.total,
            b.sends,
            b.received,
            b.message_bytes,
            rate / floor
        );
        println!(
            "round {r}: for reference, the same {n} messages over a bare SMTP client with TCP_NODELAY (one write per \
             body and its final dot): {:.2?} = {:.0} emails/s: what Mailpit takes",
            b.bare,
            n as f64 / b.bare.as_secs_f64()
        );
        if s.received != n || b.received != n {
            println!("round {r}: WARNING: Mailpit should hold exactly {n} messages on both sides");
        }
        systems.push(s);
        raws.push(b);
    }
    let rates: Vec<f64> = systems.iter().map(|s| n as f64 / s.total.as_secs_f64()).collect();
    let after_ready: Vec<f64> = systems.iter().map(|s| n as f64 / (s.total - s.ready).as_secs_f64()).collect();
    let floors: Vec<f64> = raws.iter().map(|b| n as f64 / b.total.as_secs_f64()).collect();
    let ratios: Vec<f64> = rates.iter().zip(&floors).map(|(a, b)| a / b).collect();
    println!(
        "median of {rounds}: dispatcher {:.0} emails/s, raw lettre {:.0} emails/s, ratio dispatcher / lettre {:.2}",
        median(rates.clone()),
        median(floors.clone()),
        median(ratios.clone())
    );

    let default = if default_limit {
        let s = system(&brokers, &admin_url, n, DEFAULT_RATE_LIMIT).await?;
        let rate = n as f64 / s.total.as_secs_f64();
        println!(
            "with the default RSVP_SEND_RATE_PER_TENANT={DEFAULT_RATE_LIMIT} (one tenant): all {n} after {:.2?} = \
             {rate:.0} emails/s; Mailpit got {}",
            s.total, s.received
        );
        json!({ "rate_per_tenant": DEFAULT_RATE_LIMIT, "total_s": s.total.as_secs_f64(), "rate": rate, "received": s.received })
    } else {
        serde_json::Value::Null
    };

    let result = json!({
        "emails": n,
        "rounds": rounds,
        "rate_per_tenant": RATE_LIMIT,
        "preload_concurrency": PRELOAD_CONCURRENCY,
        "preload_s": systems.iter().map(|s| s.preload.as_secs_f64()).collect::<Vec<_>>(),
        "ready_s": systems.iter().map(|s| s.ready.as_secs_f64()).collect::<Vec<_>>(),
        "total_s": systems.iter().map(|s| s.total.as_secs_f64()).collect::<Vec<_>>(),
        "rate": rates,
        "rate_after_ready": after_ready,
        "received": systems.iter().map(|s| s.received).collect::<Vec<_>>(),
        "deliveries": systems.iter().map(|s| s.deliveries).collect::<Vec<_>>(),
        "sent": systems.iter().map(|s| s.sent).collect::<Vec<_>>(),
        "message_bytes": systems.iter().map(|s| s.message_bytes).collect::<Vec<_>>(),
        "raw_sends_s": raws.iter().map(|b| b.sends.as_secs_f64()).collect::<Vec<_>>(),
        "raw_total_s": raws.iter().map(|b| b.total.as_secs_f64()).collect::<Vec<_>>(),
        "raw_rate": floors,
        "raw_received": raws.iter().map(|b| b.received).collect::<Vec<_>>(),
        "raw_message_bytes": raws.iter().map(|b| b.message_bytes).collect::<Vec<_>>(),
        "bare_smtp_s": raws.iter().map(|b| b.bare.as_secs_f64()).collect::<Vec<_>>(),
        "bare_smtp_rate": raws.iter().map(|b| n as f64 / b.bare.as_secs_f64()).collect::<Vec<_>>(),
        "ratio": ratios,
        "default_limit": default,
    });
    println!("result: {result}");
    Ok(())
}
