//! The system under test, all of it the run's own: a Kafka broker and a PostgreSQL server on free
//! loopback ports (never the shared ones), a topic, database and tenant on them, the projector,
//! the query API and two command-api instances (a leader and a standby). And the faults.

use super::load::Router;
use crate::broker::PrivateKafka;
use crate::postgres::PrivatePostgres;
use crate::{Service, TestEnv};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL of the projector, then a new one.
    ProjectorKill,
    /// SIGKILL of the command-api that holds the writer lease while a standby runs, then a new
    /// standby.
    LeaderKill,
    /// The broker stopped and started again.
    KafkaRestart,
    /// PostgreSQL stopped as a crash would (immediate shutdown) and started again.
    PostgresRestart,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [Self::ProjectorKill, Self::LeaderKill, Self::KafkaRestart, Self::PostgresRestart];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ProjectorKill => "projector SIGKILL",
            Self::LeaderKill => "leading command-api SIGKILL",
            Self::KafkaRestart => "Kafka restart",
            Self::PostgresRestart => "PostgreSQL crash and restart",
        }
    }
}

// Fields drop in order: the services first, then the test's database, then the servers.
pub struct System {
    pub projector: Service,
    pub query: Service,
    /// Every live command-api instance.
    pub commands: Vec<Service>,
    pub env: TestEnv,
    pub postgres: PrivatePostgres,
    pub kafka: PrivateKafka,
    pub router: Arc<Router>,
    lease_timeout_ms: u64,
}

impl System {
    pub async fn start(partitions: i32, lease_timeout_ms: u64) -> anyhow::Result<Self> {
        let kafka = PrivateKafka::start().await;
        let postgres = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
        let env = TestEnv::on(&kafka.brokers, &postgres.admin_url, partitions).await;
        let projector = Service::start("projector", &env, &[]).await;
        let query = Service::start("query-api", &env, &[]).await;
        let mut system = Self {
            projector,
            query,
            commands: Vec::new(),
            env,
            postgres,
            kafka,
            router: Arc::default(),
            lease_timeout_ms,
        };
        let leader = system.start_command_api().await;
        leader.wait_ready(Duration::from_secs(120)).await;
        system.commands.push(leader);
        let standby = system.start_command_api().await;
        system.commands.push(standby);
        system.route();
        Ok(system)
    }

    pub async fn start_command_api(&self) -> Service {
        let extra = [
            ("RSVP_QUERY_API_URL", self.query.url.clone()),
            ("RSVP_WRITER_LEASE_TIMEOUT_MS", self.lease_timeout_ms.to_string()),
        ];
        Service::start("command-api", &self.env, &extra).await
    }

    fn route(&self) {
        self.router.set(self.commands.iter().map(|c| c.url.clone()).collect());
    }

    /// The instance that is the writer now (its `/readyz` answers 200), waiting up to `timeout`.
    pub async fn leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let http = reqwest::Client::new();
        while Instant::now() < deadline {
            for (i, c) in self.commands.iter().enumerate() {
                let ready = http.get(format!("{}/readyz", c.url)).timeout(Duration::from_secs(2)).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    return Some(i);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Injects one fault and undoes what an operator (or a supervisor) would: a killed process is
    /// started anew, a stopped server started again. Returns when the fault was injected, which
    /// is the instant recovery is measured from.
    pub async fn inject(&mut self, kind: FaultKind, hold: Duration) -> anyhow::Result<Instant> {
        match kind {
            FaultKind::ProjectorKill => {
                let at = Instant::now();
                self.projector.kill().await;
                self.projector = Service::start("projector", &self.env, &[]).await;
                Ok(at)
            }
            FaultKind::LeaderKill => {
                let leader = self
                    .leader(Duration::from_secs(120))
                    .await
                    .ok_or_else(|| anyhow::anyhow!("no command-api became the writer within 120 s"))?;
                let at = Instant::now();
                let mut dead = self.commands.remove(leader);
                dead.kill().await;
                // Clients follow the survivors at once, as a load balancer would.
                self.route();
                let standby = self.start_command_api().await;
                self.commands.push(standby);
                self.route();
                Ok(at)
            }
            FaultKind::KafkaRestart => {
                let at = Instant::now();
                self.kafka.stop().await;
                tokio::time::sleep(hold).await;
                self.kafka.resume().await;
                Ok(at)
            }
            FaultKind::PostgresRestart => {
                let at = Instant::now();
                tokio::task::block_in_place(|| self.postgres.crash())?;
                tokio::time::sleep(hold).await;
                tokio::task::block_in_place(|| self.postgres.resume())?;
                Ok(at)
            }
        }
    }
}
