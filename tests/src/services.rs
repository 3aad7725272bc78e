//! The three services as real processes, built by `cargo build --bins` (the README's test
//! command does it first). Each listens on a free port, announced on its stdout.

use crate::infra::TestEnv;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One running service process; killed when dropped.
pub struct Service {
    pub name: &'static str,
    pub url: String,
    pub log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `binary` with the test's settings plus `extra` variables and waits until it listens.
    pub async fn start(binary: &'static str, env: &TestEnv, extra: &[(&str, String)]) -> Self {
        let path = bin_path(binary);
        let log = log_dir().join(format!("{}-{binary}-{}.log", env.topic, uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&log).expect("cannot create a service log file");
        let mut command = Command::new(&path);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", std::env::var("RSVP_TEST_SERVICE_LOG").unwrap_or_else(|_| "info".into()))
            .env("RSVP_KAFKA_BROKERS", &env.brokers)
            .env("RSVP_KAFKA_TOPIC", &env.topic)
            .env("DATABASE_URL", &env.database_url)
            .env("RSVP_PROJECTOR_NAME", format!("projector-{}", env.topic))
            .env("RSVP_WRITER_ID", format!("writer-{}", env.topic))
            .env("COMMAND_API_PORT", "0")
            .env("QUERY_API_PORT", "0")
            .env("PROJECTOR_PORT", "0")
            .env("DISPATCHER_PORT", "0")
            .env("RSVP_DISPATCHER_NAME", format!("dispatcher-{}", env.topic))
            .env("RSVP_DISPATCHER_TOKEN", crate::DISPATCHER_TOKEN)
            .env("RSVP_METRICS_TOKEN", crate::METRICS_TOKEN)
            .env("RSVP_MASTER_KEY", crate::MASTER_KEY)
            .env("RSVP_AUDIT_SIGNING_KEY", crate::AUDIT_SIGNING_KEY);
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let announced = tokio::time::timeout(Duration::from_secs(90), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, url)) = line.split_once(" listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await;
        let url = match announced {
            Ok(Some(url)) => url,
            _ => panic!("{binary} did not start; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default()),
        };
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { name: binary, url, log, child }
    }

    /// Polls `GET /readyz` until it answers 200.
    pub async fn wait_ready(&self, timeout: Duration) {
        let url = format!("{}/readyz", self.url);
        crate::eventually(timeout, &format!("{} to be ready", self.name), || async {
            let response = reqwest::get(&url).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    /// Kills the process at once (SIGKILL) and waits for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process: a leader that stops heartbeating.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the process is running").to_string();
        let status = std::process::Command::new("kill").args([format!("-{signal}"), pid]).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The service's `/metrics` text, read with the operator token every test service gets.
    pub async fn metrics(&self) -> String {
        let response = reqwest::Client::new()
            .get(format!("{}/metrics", self.url))
            .bearer_auth(crate::METRICS_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} /metrics: {e}", self.name));
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{} /metrics", self.name);
        response.text().await.unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Service {
    /// With ownership by shard: the shards this command-api owns, once it is ready and serves
    /// every one of them (`GET /readyz`).
    pub async fn shards_served(&self, http: &reqwest::Client) -> Option<std::collections::BTreeSet<i32>> {
        let response = http.get(format!("{}/readyz", self.url)).send().await.ok()?;
        if response.status() != reqwest::StatusCode::OK {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        let set = |field: &str| -> Option<std::collections::BTreeSet<i32>> {
            Some(body[field].as_array()?.iter().filter_map(|p| p.as_i64().map(|p| p as i32)).collect())
        };
        let (owned, serving) = (set("shards")?, set("serving")?);
        (owned == serving).then_some(owned)
    }
}

/// Waits until two command-api instances by shard own and serve the `partitions` shards between
/// them, each some; their shards.
pub async fn shards_divided(
    http: &reqwest::Client,
    a: &Service,
    b: &Service,
    partitions: usize,
    timeout: Duration,
) -> (std::collections::BTreeSet<i32>, std::collections::BTreeSet<i32>) {
    crate::eventually(timeout, "the shards divided between the two instances", || async {
        let (mine, theirs) = (a.shards_served(http).await?, b.shards_served(http).await?);
        (mine.is_disjoint(&theirs) && !mine.is_empty() && !theirs.is_empty() && mine.len() + theirs.len() == partitions)
            .then_some((mine, theirs))
    })
    .await
}

/// `POST /v1/invites` of one email target, inviter `u`, as the key `key`.
pub async fn create_invite(http: &reqwest::Client, url: &str, key: &str, target: &str) -> reqwest::Response {
    http.post(format!("{url}/v1/invites"))
        .bearer_auth(key)
        .json(&serde_json::json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": target }] }))
        .send()
        .await
        .unwrap()
}

/// The whole system for one test.
pub struct Services {
    pub projector: Service,
    pub command: Service,
    pub query: Service,
}

impl Services {
    pub async fn start(env: &TestEnv) -> Self {
        let projector = Service::start("projector", env, &[]).await;
        let query = Service::start("query-api", env, &[]).await;
        let command = Service::start("command-api", env, &[("RSVP_QUERY_API_URL", query.url.clone())]).await;
        command.wait_ready(Duration::from_secs(60)).await;
        Self { projector, command, query }
    }
}

/// The dispatcher, recording deliveries through `command` and linking to it; `extra` adds or
/// overrides settings (later ones win). By default it may reach loopback webhook receivers and
/// its SMTP server is a closed port (a test that sends email gives its own).
pub async fn dispatcher(env: &TestEnv, command: &Service, extra: &[(&str, String)]) -> Service {
    let mut settings: Vec<(&str, String)> = vec![
        ("RSVP_COMMAND_API_URL", command.url.clone()),
        ("RSVP_PUBLIC_URL", command.url.clone()),
        ("RSVP_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("RSVP_SMTP_URL", "smtp://127.0.0.1:9".into()),
    ];
    settings.extend(extra.iter().cloned());
    let dispatcher = Service::start("dispatcher", env, &settings).await;
    dispatcher.wait_ready(Duration::from_secs(60)).await;
    dispatcher
}

/// Runs a one-off command of a service binary (e.g. `projector verify`) with the test's settings
/// and returns its exit code and its output (stdout, then stderr).
pub async fn run_command(binary: &str, env: &TestEnv, args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = run_command_split(binary, env, args).await;
    (code, format!("{stdout}{stderr}"))
}

/// [`run_command`] with stdout and stderr apart.
pub async fn run_command_split(binary: &str, env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(bin_path(binary))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("RSVP_KAFKA_BROKERS", &env.brokers)
        .env("RSVP_KAFKA_TOPIC", &env.topic)
        .env("DATABASE_URL", &env.database_url)
        .env("RSVP_PROJECTOR_NAME", format!("projector-{}", env.topic))
        .env("RSVP_MASTER_KEY", crate::MASTER_KEY)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// The binaries sit next to the test executable's `deps/` folder, or next to a binary of this
/// crate (`rsvp-chaos`).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe.parent().expect("an executable lives in a folder");
    let dir = if dir.ends_with("deps") { dir.parent().expect("deps/ has a parent") } else { dir };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the services first with `cargo build --bins` (the README's test command does)",
        path.display()
    );
    path
}

fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("rsvp-test-logs");
    std::fs::create_dir_all(&dir).expect("cannot create the log folder");
    dir
}

/// A command API of the test's own, ready, and a client for it with the test's key.
pub async fn command_api(env: &TestEnv) -> (Service, crate::Api) {
    let command = Service::start("command-api", env, &[]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = crate::Api::new(&command.url, &env.key);
    (command, api)
}
