//! The local deployment's scripts (`deploy/local/`) keep the secrets they write to their owner.
//!
//! What this shows: `ensure_demo_key` (which `make run` calls through `run.sh`) and
//! `ensure_metrics_token` (which `services.sh start` calls), run from `env.sh` with the real
//! `rsvp-admin` against the test's database, leave files of mode 0600, also where an older run
//! left them readable to others; the gateway and Mailpit scripts start, keep their files to their
//! owner and stop. It does not run `make run` itself.

use rsvp_tests::TestEnv;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    rsvp_tests::manifest_dir().parent().expect("tests/ sits in the workspace").to_owned()
}

fn rsvp_admin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("rsvp-admin")
}

/// Runs `script` in bash after sourcing `env.sh`, with a umask that would leave files readable.
fn run_bash(env: &TestEnv, state_dir: &Path, script: &str) -> String {
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("umask 022; set -euo pipefail; source deploy/local/env.sh; {script}"))
        .current_dir(repo_root())
        .env("RSVP_STATE_DIR", state_dir)
        .env("DATABASE_URL", &env.database_url)
        .env_remove("RSVP_METRICS_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_key_and_the_metrics_token_are_readable_by_their_owner_only() {
    let env = TestEnv::new().await;
    let state = std::env::temp_dir().join(format!("rsvp-scripts-{}", uuid::Uuid::new_v4().simple()));
    let admin = rsvp_admin();

    let key_file = run_bash(&env, &state, &format!("ensure_demo_key {}", admin.display()));
    let key_file = PathBuf::from(key_file.trim());
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.starts_with("rsvp_"), "{key}");
    assert_eq!(mode(&key_file), 0o600, "a new demo key file");
    // An older run's world-readable file: the same key again, and the file tightened.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_bash(&env, &state, &format!("ensure_demo_key {}", admin.display()));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key, "a second run keeps the key");
    assert_eq!(mode(&key_file), 0o600, "an older demo key file");

    let token = run_bash(&env, &state, "ensure_metrics_token; echo \"$RSVP_METRICS_TOKEN\"");
    let token_file = state.join("metrics-token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token.trim());
    assert!(token.trim().len() >= 32, "{token}");
    assert_eq!(mode(&token_file), 0o600, "the metrics token file");
    let _ = std::fs::remove_dir_all(&state);
}

/// The gateway's logs and pid file, like the services', are their owner's only (README), also
/// when the shell that runs `make run` would leave files readable to others.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateways_logs_and_pid_file_are_readable_by_their_owner_only() {
    let env = TestEnv::new().await;
    let state = std::env::temp_dir().join(format!("rsvp-scripts-{}", uuid::Uuid::new_v4().simple()));
    let port = rsvp_tests::broker::free_port();
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_bash(&env, &state, &format!("RSVP_GATEWAY_PORT={port} deploy/local/gateway.sh start"));
        let dir = state.join("gateway");
        for file in ["error.log", "access.log", "nginx.pid"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
    }));
    run_bash(&env, &state, &format!("RSVP_GATEWAY_PORT={port} deploy/local/gateway.sh stop"));
    let _ = std::fs::remove_dir_all(&state);
    if let Err(panic) = started {
        std::panic::resume_unwind(panic);
    }
}

/// `mailpit.sh start` runs Mailpit on loopback with its mailbox, log and pid file its owner's
/// only; a second `start` keeps it; `status` names its ports; `stop` stops it.
#[tokio::test(flavor = "multi_thread")]
async fn mailpit_starts_once_on_loopback_and_stops() {
    let state = std::env::temp_dir().join(format!("rsvp-scripts-{}", uuid::Uuid::new_v4().simple()));
    let (smtp, http) = (rsvp_tests::broker::free_port(), rsvp_tests::broker::free_port());
    let script = |command: &str| {
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("umask 022; deploy/local/mailpit.sh {command}"))
            .current_dir(repo_root())
            .env("RSVP_STATE_DIR", &state)
            .env("MAILPIT_SMTP_PORT", smtp.to_string())
            .env("MAILPIT_HTTP_PORT", http.to_string())
            // The binary the tests use (already at MAILPIT_VERSION, so `start` builds nothing).
            .env("MAILPIT_BIN", rsvp_tests::mailpit::binary())
            .output()
            .unwrap();
        assert!(output.status.success(), "mailpit.sh {command}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        script("start");
        let pid = std::fs::read_to_string(state.join("mailpit/mailpit.pid")).unwrap();
        script("start");
        assert_eq!(std::fs::read_to_string(state.join("mailpit/mailpit.pid")).unwrap(), pid, "a second start keeps it");
        let status = script("status");
        assert!(status.contains(&format!("SMTP on 127.0.0.1:{smtp}")), "{status}");
        assert!(status.contains(&format!("UI on http://127.0.0.1:{http}")), "{status}");
        assert!(std::net::TcpStream::connect(("127.0.0.1", smtp)).is_ok(), "its SMTP port");
        let dir = state.join("mailpit");
        for file in ["mailpit.db", "mailpit.log", "mailpit.pid"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        assert_eq!(mode(&dir), 0o700, "its folder");
    }));
    script("stop");
    let status = script("status");
    let _ = std::fs::remove_dir_all(&state);
    if let Err(panic) = started {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(status.trim(), "mailpit: stopped");
}
