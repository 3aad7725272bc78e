//! The gateway (nginx) in front of a test's own services: the same `deploy/gateway/nginx.conf`
//! that `make run` uses, rendered for the test's command and query APIs on a free loopback port,
//! in a folder of its own; stopped (and its folder removed) when dropped. Every dialect's
//! end-to-end test goes through it, as a vendor's client would.

use crate::services::Services;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The command API's default body limit (`RSVP_MAX_BODY_BYTES`), which the test services keep.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub struct Gateway {
    /// The public base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The gateway's folder: the rendered config, its logs (`access.log`, `error.log`).
    pub dir: PathBuf,
    child: Child,
}

impl Gateway {
    /// The gateway in front of `services`' command and query APIs.
    pub async fn for_services(services: &Services) -> Self {
        Self::start(&services.command.url, &services.query.url).await
    }

    /// Starts nginx in front of the command API at `command_url` and the query API at
    /// `query_url` (`http://host:port`) and waits until it accepts connections.
    pub async fn start(command_url: &str, query_url: &str) -> Self {
        let nginx = nginx_path();
        let dir = std::env::temp_dir().join(format!("rsvp-gateway-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cannot create the gateway's folder");
        // A port picked free can be taken before nginx binds it: then try another.
        for _ in 0..5 {
            let port = free_port();
            let conf = render(&dir, port, host_port(command_url), host_port(query_url));
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("cannot write the gateway's config");
            let stderr = std::fs::File::create(dir.join("stderr.log")).expect("cannot create the gateway's log");
            let mut child = Command::new(&nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .arg("-g")
                .arg(format!("daemon off; pid {};", dir.join("nginx.pid").display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", nginx.display()));
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken; try another
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    return Self { url: format!("http://127.0.0.1:{port}"), dir, child };
                }
                assert!(std::time::Instant::now() < deadline, "the gateway did not start: {}", logs(&dir));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("the gateway did not start: {}", logs(&dir));
    }

    /// The gateway's access log as written so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    /// TERM to the master, which stops its worker and exits (a SIGKILL would leave the worker
    /// holding the port); SIGKILL only if it is still there after a few seconds.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            for _ in 0..250 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `deploy/gateway/nginx.conf` with its placeholders filled, exactly as `gateway.sh` does.
pub fn render(dir: &Path, port: u16, command: &str, query: &str) -> String {
    let template = std::fs::read_to_string(repo_root().join("deploy/gateway/nginx.conf"))
        .expect("cannot read deploy/gateway/nginx.conf");
    template
        .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
        .replace("@COMMAND_API@", command)
        .replace("@QUERY_API@", query)
        .replace("@STATE_DIR@", &dir.display().to_string())
        .replace("@MAX_BODY_BYTES@", &MAX_BODY_BYTES.to_string())
}

fn repo_root() -> PathBuf {
    crate::manifest_dir().parent().expect("tests/ sits in the repository").to_owned()
}

fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("no free port").port()
}

/// nginx on PATH, or where Debian puts it (`/usr/sbin`, which a non-root PATH may lack).
fn nginx_path() -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.exists())
        .expect("nginx is missing: run `deploy/local/gateway.sh install` (the README's test command does)")
}

fn logs(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("stderr:\n{}\nerror.log:\n{}", read("stderr.log"), read("error.log"))
}
