//! Schemathesis (property-based tests from the OpenAPI documents) against both APIs over the real
//! system: every operation gets examples, generated valid and invalid requests, requests with
//! methods and without the key it does not document, and stateful sequences following the
//! documents' links. Every check that means something for these APIs runs: no 5xx, every status,
//! content type, header and body as documented, schema-valid requests accepted (never a 400) and
//! schema-invalid ones refused, 405 with `Allow` for undocumented methods, 401 without the key.
//! Seeded and deterministic, with a bounded number of examples per operation, so a run is the
//! same every time; any failure fails the test with Schemathesis' own report.
//!
//! The CLI comes from `RSVP_SCHEMATHESIS` (the README's test command installs the pinned version
//! into `~/.cache/rsvp/venv` and sets it), else from that venv. Missing, the test fails: it says
//! how to install it.

use rsvp_tests::{Service, TestEnv};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// Examples per operation and phase: enough to reach every documented status, bounded so both
/// APIs take about a minute each on a busy two-core machine.
const EXAMPLES: &str = "25";
const SEED: &str = "20261125";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("RSVP_SCHEMATHESIS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/rsvp/venv/bin/schemathesis")
    });
    assert!(
        path.is_file(),
        "the Schemathesis CLI is missing at {} (set RSVP_SCHEMATHESIS to it). `make test` installs it; by hand: \
         python3 -m venv ~/.cache/rsvp/venv && ~/.cache/rsvp/venv/bin/pip install schemathesis==$(cat \
         deploy/local/schemathesis-version)",
        path.display()
    );
    path
}

/// Runs Schemathesis against one API's served document; panics with its report on any failure.
async fn run(cli: &PathBuf, name: &str, base_url: &str, key: &str, key_to_manage: &str) {
    let workdir = std::env::temp_dir().join(format!("rsvp-schemathesis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&workdir).unwrap();
    let config = rsvp_tests::manifest_dir().join("schemathesis/schemathesis.toml");
    let output = tokio::process::Command::new(cli)
        .current_dir(&workdir)
        // The key the API key routes revoke and rotate (schemathesis.toml): not the one it runs with.
        .env("RSVP_SCHEMATHESIS_API_KEY_ID", key_to_manage)
        .arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run"])
        .arg(format!("{base_url}/openapi.json"))
        .args(["--url", base_url])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all"])
        // Deterministic: no example database either, so a run never depends on an earlier one.
        .args(["--max-examples", EXAMPLES, "--seed", SEED, "--generation-deterministic"])
        .args(["--workers", "1", "--request-timeout", "30"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli.display()));
    let _ = std::fs::remove_dir_all(&workdir);
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "Schemathesis found failures in the {name}:\n{report}");
    // Clean means it ran: a run that tested nothing also exits 0.
    assert!(report.contains("Tested:"), "Schemathesis did not test the {name}:\n{report}");
    let summary = report.lines().rev().find(|l| l.starts_with("====")).unwrap_or_default();
    eprintln!("Schemathesis, {name}: {summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_either_api() {
    let cli = schemathesis();
    let env = TestEnv::new().await;
    let projector = Service::start("projector", &env, &[]).await;
    // Schemathesis asks for versions no invite reaches: answer those 503s after 200 ms, not 2 s.
    let query = Service::start("query-api", &env, &[("RSVP_READ_YOUR_WRITES_TIMEOUT_MS", "200".into())]).await;
    let command = Service::start("command-api", &env, &[("RSVP_QUERY_API_URL", query.url.clone())]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let managed = env.key_with(&service_kit::Scope::ALL, None).await;
    let managed = managed.split('_').nth(1).unwrap();
    run(&cli, "command API", &command.url, &env.key, managed).await;
    run(&cli, "query API", &query.url, &env.key, managed).await;
    drop(projector);
}
