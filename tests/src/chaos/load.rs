//! The steady mixed load: clients that create, send, engage, accept and revoke invites and create
//! and change definitions, each request with its own `X-Request-Id`, and record every outcome in
//! the [`Ledger`]. A client never retries a request: a retry is a new command with a new id.
//! Like a load balancer that follows readiness, a client that gets a 503 or cannot connect turns
//! to the next command-api instance for its next command.

use super::ledger::{Command, CommandKind, Ledger, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// How long a client waits for an answer before it counts the command as unanswered. Above the
/// writer's Kafka transaction timeout (30 s), so that a slow commit is still answered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(35);

/// The command-api instances a client may send to, the leader (as last known) first.
#[derive(Default)]
pub struct Router {
    urls: RwLock<Vec<String>>,
}

impl Router {
    pub fn set(&self, urls: Vec<String>) {
        *self.urls.write().unwrap() = urls;
    }

    pub fn urls(&self) -> Vec<String> {
        self.urls.read().unwrap().clone()
    }

    fn pick(&self, preference: usize) -> String {
        let urls = self.urls.read().unwrap();
        urls[preference % urls.len()].clone()
    }
}

/// One request as the ledger will record it.
pub struct Request {
    pub kind: CommandKind,
    pub subject: Option<Uuid>,
    pub method: reqwest::Method,
    pub path: String,
    pub body: Value,
}

/// Sends one request to `base` and records it. Returns the outcome and the body of a 2xx.
pub async fn send(http: &reqwest::Client, base: &str, key: &str, ledger: &Ledger, r: Request) -> (Outcome, Value) {
    let request_id = Uuid::new_v4();
    let sent = ledger.since_start();
    let result = http
        .request(r.method, format!("{base}{}", r.path))
        .bearer_auth(key)
        .header("x-request-id", request_id.to_string())
        .json(&r.body)
        .timeout(ANSWER_TIMEOUT)
        .send()
        .await;
    let (outcome, body) = match result {
        Err(e) if e.is_connect() => (Outcome::NotSent, Value::Null),
        Err(_) => (Outcome::NoAnswer, Value::Null),
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                // The status is the acknowledgement; a body cut short still leaves it acknowledged.
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let stream = body["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
                let version = body["version"].as_u64();
                let events = match r.kind {
                    CommandKind::DefinitionCreate | CommandKind::DefinitionUpdate => version.map(|_| 1),
                    _ => body["events"].as_array().map(Vec::len),
                };
                (Outcome::Acked { status: status.as_u16(), stream, version, events }, body)
            } else {
                (Outcome::Refused { status: status.as_u16() }, Value::Null)
            }
        }
    };
    ledger.record(Command {
        request_id,
        kind: r.kind,
        subject: r.subject,
        sent,
        answered: ledger.since_start(),
        outcome: outcome.clone(),
    });
    (outcome, body)
}

#[derive(Clone)]
struct Definition {
    id: Uuid,
    handle: String,
    /// Bumped by every update, so that an update always changes the rules (one event).
    quota: u32,
}

/// One client's view of what it made: open invites it may act on, and its definitions.
struct Client {
    number: usize,
    http: reqwest::Client,
    key: String,
    router: Arc<Router>,
    ledger: Arc<Ledger>,
    rng: StdRng,
    preference: usize,
    open: Vec<Uuid>,
    definitions: Vec<Definition>,
    created: usize,
}

impl Client {
    fn next_request(&mut self) -> Request {
        let roll = self.rng.random_range(0..100);
        let invite = (!self.open.is_empty()).then(|| self.open[self.rng.random_range(0..self.open.len())]);
        let post = |kind, subject: Option<Uuid>, path: String, body: Value| Request {
            kind,
            subject,
            method: reqwest::Method::POST,
            path,
            body,
        };
        match (roll, invite) {
            (0..=4, _) if self.definitions.len() < 3 => {
                let handle = format!("chaos-{}-{}", self.number, Uuid::new_v4().simple());
                let body = json!({ "handle": handle, "max_invites_per_inviter": 1_000_000, "max_send_count": 1000 });
                post(CommandKind::DefinitionCreate, None, "/v1/definitions".into(), body)
            }
            (5..=7, _) if !self.definitions.is_empty() => {
                let i = self.rng.random_range(0..self.definitions.len());
                let d = &mut self.definitions[i];
                d.quota += 1;
                let body = json!({ "handle": d.handle, "max_invites_per_inviter": d.quota, "max_send_count": 1000 });
                Request {
                    kind: CommandKind::DefinitionUpdate,
                    subject: Some(d.id),
                    method: reqwest::Method::PUT,
                    path: format!("/v1/definitions/{}", d.id),
                    body,
                }
            }
            (30..=49, Some(id)) => post(CommandKind::Send, Some(id), format!("/v1/invites/{id}/send"), json!({})),
            (50..=74, Some(id)) => {
                let kind = ["view", "click", "share", "unfurl"][self.rng.random_range(0..4)];
                let body = json!({ "kind": kind, "source": "chaos" });
                post(CommandKind::Engage, Some(id), format!("/v1/invites/{id}/engagements"), body)
            }
            (75..=86, Some(id)) => post(CommandKind::Accept, Some(id), format!("/v1/invites/{id}/accept"), json!({})),
            (87..=94, Some(id)) => {
                post(CommandKind::Revoke, Some(id), format!("/v1/invites/{id}/revoke"), json!({ "reason": "chaos" }))
            }
            _ => {
                self.created += 1;
                let mut body = json!({
                    "inviter": { "id": format!("chaos-{}", self.number % 3) },
                    "targets": [{ "type": "email", "value": format!("c{}-{}-{}@example.com", self.number, self.created, self.rng.random::<u32>()) }],
                });
                if !self.definitions.is_empty() && self.rng.random_bool(0.3) {
                    body["definition_id"] =
                        json!(self.definitions[self.rng.random_range(0..self.definitions.len())].id);
                }
                post(CommandKind::Create, None, "/v1/invites".into(), body)
            }
        }
    }

    async fn run(mut self, stop: Arc<AtomicBool>, think: Duration) {
        while !stop.load(Ordering::Acquire) {
            let request = self.next_request();
            let (kind, subject, body) = (request.kind, request.subject, request.body.clone());
            let base = self.router.pick(self.preference);
            let (outcome, _) = send(&self.http, &base, &self.key, &self.ledger, request).await;
            match (&outcome, kind) {
                (Outcome::Refused { status: 503 } | Outcome::NotSent, _) => {
                    self.preference += 1;
                    // Nobody can write right now: do not spin on 503s.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (Outcome::Acked { stream: Some(id), .. }, CommandKind::Create) => self.open.push(*id),
                (Outcome::Acked { stream: Some(id), .. }, CommandKind::DefinitionCreate) => {
                    let handle = body["handle"].as_str().unwrap_or_default().to_owned();
                    self.definitions.push(Definition { id: *id, handle, quota: 1_000_000 });
                }
                (
                    Outcome::Acked { .. } | Outcome::Refused { status: 409 },
                    CommandKind::Accept | CommandKind::Revoke,
                ) => {
                    self.open.retain(|i| Some(*i) != subject);
                }
                _ => {}
            }
            // Keep the pool small: the end checks read every touched invite back.
            if self.open.len() > 200 {
                self.open.remove(0);
            }
            tokio::time::sleep(think).await;
        }
    }
}

/// Starts `clients` clients; they run until `stop` is set. Await the handles to let each finish
/// (and record) its last request.
pub fn start(
    clients: usize,
    think: Duration,
    key: &str,
    router: Arc<Router>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|number| {
            let client = Client {
                number,
                http: reqwest::Client::new(),
                key: key.to_owned(),
                router: router.clone(),
                ledger: ledger.clone(),
                rng: StdRng::seed_from_u64(seed.wrapping_add(number as u64)),
                preference: number,
                open: Vec::new(),
                definitions: Vec::new(),
                created: 0,
            };
            tokio::spawn(client.run(stop.clone(), think))
        })
        .collect()
}
