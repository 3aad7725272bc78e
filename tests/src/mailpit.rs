//! Mailpit (github.com/axllent/mailpit), the SMTP server the email tests send to: a private
//! process per test on free loopback ports (SMTP and its HTTP API), with a mailbox (database) in
//! a folder of its own; killed (and its folder removed) when dropped. The tests read what arrived
//! through its API (`/api/v1/...`), as a person reads it in its web UI under `make run`.
//!
//! The binary: `RSVP_TEST_MAILPIT` (which `make test` sets after `deploy/local/mailpit.sh
//! install`), else `~/.cache/rsvp/bin/mailpit` (where that script builds it), else `mailpit` on
//! PATH. What this harness relies on was checked against Mailpit v1.27.11 (`MAILPIT_VERSION` in
//! `deploy/local/env.sh`); see `tests/tests/mailpit_harness.rs`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How a test's Mailpit behaves.
#[derive(Debug, Clone, Default)]
pub struct MailpitOptions {
    /// Only recipients matching this regular expression are taken (`--smtp-allowed-recipients`);
    /// any other is refused at `RCPT TO` with the permanent `550 5.1.0 Requested action not
    /// taken: mailbox unavailable`. `None`: every recipient is taken.
    pub allowed_recipients: Option<String>,
    /// Chaos on (`--enable-chaos`): [`Mailpit::set_chaos`] can then make the SMTP server fail.
    pub chaos: bool,
}

pub struct Mailpit {
    pub smtp_port: u16,
    pub http_port: u16,
    /// Its folder: the database (`mailpit.db`) and its output (`mailpit.log`).
    pub dir: PathBuf,
    http: reqwest::Client,
    child: Child,
}

/// An address as Mailpit shows it: the display name (empty when none) and the address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Address {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Address")]
    pub address: String,
}

/// One message in the list (`GET /api/v1/messages`).
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    /// Mailpit's own id, for [`Mailpit::message`].
    #[serde(rename = "ID")]
    pub id: String,
    /// The `Message-ID` header without its angle brackets (`abc@host` for `<abc@host>`); for an
    /// email that came without one, an id Mailpit made up (`...@mailpit`).
    #[serde(rename = "MessageID")]
    pub message_id: String,
    #[serde(rename = "From")]
    pub from: Option<Address>,
    #[serde(rename = "To", default, deserialize_with = "null_as_empty")]
    pub to: Vec<Address>,
    /// Decoded (an RFC 2047 encoded word comes back as its text).
    #[serde(rename = "Subject")]
    pub subject: String,
    /// When Mailpit received it (RFC 3339).
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "Size")]
    pub size: u64,
    /// The start of its text.
    #[serde(rename = "Snippet")]
    pub snippet: String,
}

/// One message in full (`GET /api/v1/message/{ID}` and `GET /api/v1/message/{ID}/headers`).
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    #[serde(rename = "ID")]
    pub id: String,
    /// The `Message-ID` header without its angle brackets (`abc@host` for `<abc@host>`); the
    /// header itself, brackets and all, is in [`Message::headers`] (see [`Message::header`]).
    #[serde(rename = "MessageID")]
    pub message_id: String,
    #[serde(rename = "From")]
    pub from: Option<Address>,
    #[serde(rename = "To", default, deserialize_with = "null_as_empty")]
    pub to: Vec<Address>,
    #[serde(rename = "Cc", default, deserialize_with = "null_as_empty")]
    pub cc: Vec<Address>,
    #[serde(rename = "ReplyTo", default, deserialize_with = "null_as_empty")]
    pub reply_to: Vec<Address>,
    /// The envelope sender (`MAIL FROM`), as Mailpit's `Return-Path`.
    #[serde(rename = "ReturnPath")]
    pub return_path: String,
    /// Decoded.
    #[serde(rename = "Subject")]
    pub subject: String,
    /// The text/plain part, decoded (Mailpit keeps the CRLF line ends); empty when none.
    #[serde(rename = "Text")]
    pub text: String,
    /// The text/html part, decoded; empty when none.
    #[serde(rename = "HTML")]
    pub html: String,
    /// Every header as sent (values not decoded, e.g. a Subject's `=?utf-8?q?...?=`), each name
    /// in Go's canonical form (`Message-Id`, `Content-Type`, `X-Rsvp-Invite`) with its values in
    /// order. Mailpit adds `Received` and `Return-Path`.
    #[serde(skip)]
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Message {
    /// The first value of header `name`, its name compared without case (`Message-ID` finds
    /// Mailpit's `Message-Id`). The `Message-ID` comes back as sent: `<abc@host>`, brackets and all.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }
}

/// The SMTP chaos triggers (`PUT /api/v1/chaos`). Each one set makes the SMTP server answer its
/// command with `error_code` (and the text `Chaos sender error`, `Chaos recipient error`, ...)
/// with that probability. A `PUT` replaces all three: a trigger left `None` is off.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chaos {
    /// At `MAIL FROM`. A 421 there also closes the connection.
    #[serde(rename = "Sender", skip_serializing_if = "Option::is_none")]
    pub sender: Option<Trigger>,
    /// At `RCPT TO`.
    #[serde(rename = "Recipient", skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Trigger>,
    /// At `AUTH`.
    #[serde(rename = "Authentication", skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Trigger>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Trigger {
    /// 400 to 599 (Mailpit refuses any other with a 400).
    #[serde(rename = "ErrorCode")]
    pub error_code: u16,
    /// In percent, 0 to 100.
    #[serde(rename = "Probability")]
    pub probability: u8,
}

impl Chaos {
    /// Every trigger off.
    pub fn off() -> Self {
        Self::default()
    }

    /// Every `RCPT TO` answered with `error_code` (e.g. 451, a transient error).
    pub fn every_recipient(error_code: u16) -> Self {
        Self { recipient: Some(Trigger { error_code, probability: 100 }), ..Self::default() }
    }

    /// Every `MAIL FROM` answered with `error_code`.
    pub fn every_sender(error_code: u16) -> Self {
        Self { sender: Some(Trigger { error_code, probability: 100 }), ..Self::default() }
    }
}

impl Mailpit {
    /// A Mailpit taking every recipient, without chaos.
    pub async fn start_default() -> Self {
        Self::start(MailpitOptions::default()).await
    }

    /// Starts a Mailpit of the test's own and waits until its SMTP port and its API answer.
    pub async fn start(options: MailpitOptions) -> Self {
        let binary = binary();
        let dir = std::env::temp_dir().join(format!("rsvp-mailpit-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cannot create Mailpit's folder");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        // A port picked free can be taken before Mailpit binds it: then try others.
        for _ in 0..5 {
            let (smtp_port, http_port) = (free_port(), free_port());
            if smtp_port == http_port {
                continue;
            }
            let log = std::fs::File::create(dir.join("mailpit.log")).expect("cannot create Mailpit's log");
            let mut command = Command::new(&binary);
            command
                .arg("--smtp")
                .arg(format!("127.0.0.1:{smtp_port}"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{http_port}"))
                .arg("--database")
                .arg(dir.join("mailpit.db"))
                // No message is pruned (its default keeps the latest 500).
                .args(["--max", "0"])
                .arg("--disable-version-check")
                // No reverse DNS lookup of 127.0.0.1 for its Received header.
                .arg("--smtp-disable-rdns");
            if let Some(allowed) = &options.allowed_recipients {
                command.arg("--smtp-allowed-recipients").arg(allowed);
            }
            if options.chaos {
                command.arg("--enable-chaos");
            }
            let mut child = command
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely a port was taken; try others
                }
                let info = http.get(format!("http://127.0.0.1:{http_port}/api/v1/info")).send().await;
                if matches!(&info, Ok(r) if r.status().is_success())
                    && tokio::net::TcpStream::connect(("127.0.0.1", smtp_port)).await.is_ok()
                {
                    return Self { smtp_port, http_port, dir, http, child };
                }
                assert!(Instant::now() < deadline, "Mailpit did not start: {}", read_log(&dir));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("Mailpit did not start: {}", read_log(&dir));
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP, no TLS, no login (lettre's
    /// `AsyncSmtpTransport::from_url` reads it so; it is what `RSVP_SMTP_URL` holds locally).
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    /// `http://127.0.0.1:PORT`: its web UI, and its API under `/api/v1/`.
    pub fn ui_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1/{path}", self.ui_url())
    }

    /// Every message in the mailbox, newest first (Mailpit's order), read page by page.
    pub async fn messages(&self) -> Vec<Summary> {
        const PAGE: usize = 100;
        let mut all: Vec<Summary> = Vec::new();
        loop {
            let page: Page = self.get_json(&format!("messages?start={}&limit={PAGE}", all.len())).await;
            let done = page.messages.len() < PAGE || all.len() + page.messages.len() >= page.total;
            all.extend(page.messages);
            if done {
                return all;
            }
        }
    }

    /// How many messages the mailbox holds.
    pub async fn count(&self) -> usize {
        self.get_json::<Page>("messages?limit=1").await.total
    }

    /// One message in full, with every header. Panics when there is no message `id`.
    pub async fn message(&self, id: &str) -> Message {
        let mut message: Message = self.get_json(&format!("message/{id}")).await;
        message.headers = self.get_json(&format!("message/{id}/headers")).await;
        message
    }

    /// Waits until the mailbox holds at least `n` messages, at most `timeout` (else panics with
    /// the count it saw); then every message, newest first.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<Summary> {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.count().await;
            if count >= n {
                return self.messages().await;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {n} messages in Mailpit, it holds {count}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Empties the mailbox (`DELETE /api/v1/messages` without a body).
    pub async fn delete_all(&self) {
        let response = self.http.delete(self.api("messages")).send().await.expect("Mailpit's API does not answer");
        assert!(response.status().is_success(), "DELETE /api/v1/messages: {}", response.status());
    }

    /// Sets the SMTP chaos triggers, replacing all three (`PUT /api/v1/chaos`); `Chaos::off()`
    /// clears them. Needs `MailpitOptions::chaos` (else Mailpit answers 400 `Chaos is not enabled`).
    pub async fn set_chaos(&self, chaos: &Chaos) {
        let response =
            self.http.put(self.api("chaos")).json(chaos).send().await.expect("Mailpit's API does not answer");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "PUT /api/v1/chaos {}: {status} {body}", serde_json::to_string(chaos).unwrap());
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self.http.get(self.api(path)).send().await.expect("Mailpit's API does not answer");
        let status = response.status();
        let body = response.text().await.expect("cannot read Mailpit's answer");
        assert!(status.is_success(), "GET /api/v1/{path}: {status} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /api/v1/{path}: {e}: {body}"))
    }
}

impl Drop for Mailpit {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Deserialize)]
struct Page {
    total: usize,
    #[serde(default, deserialize_with = "null_as_empty")]
    messages: Vec<Summary>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("no free port").port()
}

/// `RSVP_TEST_MAILPIT`, else where `deploy/local/mailpit.sh install` puts it, else on PATH.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RSVP_TEST_MAILPIT") {
        return path.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    std::iter::once(home.join(".cache/rsvp/bin"))
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join("mailpit"))
        .find(|p| p.exists())
        .expect("Mailpit is missing: run `deploy/local/mailpit.sh install` (the README's test command does) or set RSVP_TEST_MAILPIT")
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("mailpit.log")).unwrap_or_default()
}
