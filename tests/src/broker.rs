//! A Kafka broker of one test's own, for tests that take the broker away and bring it back. It is
//! run by the project's own script (`deploy/local/kafka.sh`) on free ports with its own state
//! folder, so it needs what the README's test command needs: Java and Kafka's jars.

use std::path::PathBuf;
use std::process::Stdio;

pub struct PrivateKafka {
    pub brokers: String,
    port: u16,
    controller_port: u16,
    state_dir: PathBuf,
}

impl PrivateKafka {
    pub async fn start() -> Self {
        let state_dir = std::env::temp_dir().join(format!("rsvp-test-kafka-{}", uuid::Uuid::new_v4().simple()));
        let (port, controller_port) = (free_port(), free_port());
        let kafka = Self { brokers: format!("127.0.0.1:{port}"), port, controller_port, state_dir };
        kafka.script("start").await;
        kafka
    }

    /// Stops the broker cleanly (SIGTERM, then waits); its data stays for [`PrivateKafka::resume`].
    pub async fn stop(&self) {
        self.script("stop").await;
    }

    /// Starts the stopped broker again on the same ports and data.
    pub async fn resume(&self) {
        self.script("start").await;
    }

    async fn script(&self, action: &str) {
        let status = tokio::process::Command::new("bash")
            .arg(script_path())
            .arg(action)
            .envs(self.settings())
            .stdout(Stdio::null())
            .status()
            .await
            .expect("cannot run deploy/local/kafka.sh");
        assert!(status.success(), "deploy/local/kafka.sh {action} failed for the test's broker");
    }

    fn settings(&self) -> [(&'static str, String); 6] {
        [
            ("RSVP_STATE_DIR", self.state_dir.display().to_string()),
            // Lets a writer lease go down to 1 s, for failover runs.
            ("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "1000".to_owned()),
            ("KAFKA_PORT", self.port.to_string()),
            ("KAFKA_CONTROLLER_PORT", self.controller_port.to_string()),
            ("RSVP_KAFKA_BROKERS", self.brokers.clone()),
            ("KAFKA_HEAP", "512m".to_owned()),
        ]
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script_path())
            .arg("stop")
            .envs(self.settings())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // For a post-mortem: the broker's own logs, next to the services' (`RSVP_KEEP_KAFKA_LOGS`).
        if std::env::var_os("RSVP_KEEP_KAFKA_LOGS").is_some() {
            let kept = std::env::temp_dir().join("rsvp-test-logs").join(format!("kafka-{}", self.port));
            let _ = std::fs::create_dir_all(&kept);
            let _ =
                std::process::Command::new("cp").arg("-a").arg(self.state_dir.join("kafka/logs")).arg(&kept).status();
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn script_path() -> PathBuf {
    crate::manifest_dir().join("../deploy/local/kafka.sh")
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("no free port").port()
}
