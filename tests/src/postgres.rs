//! A PostgreSQL server of one run's own, for runs that stop and restart the database: a throwaway
//! cluster (`initdb` into a temporary folder, `pg_ctl` to start and stop it) on a free loopback
//! port, never the shared one. It needs PostgreSQL's server binaries: `RSVP_PG_BIN`, else
//! Debian's `/usr/lib/postgresql/15/bin` (the README's test command installs it), else `PATH`.
//! As root, the server runs as the `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct PrivatePostgres {
    /// `postgres://rsvp:rsvp@127.0.0.1:<port>/postgres`: a role that may create databases.
    pub admin_url: String,
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> anyhow::Result<Self> {
        let bin = server_binaries()?;
        let dir = std::env::temp_dir().join(format!("rsvp-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let port = crate::broker::free_port();
        let pg = Self { admin_url: format!("postgres://rsvp:rsvp@127.0.0.1:{port}/postgres"), port, dir, bin };
        if as_root() {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.dir), "chown")?;
        }
        pg.run_tool(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-U",
                "rsvp",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        // Loopback only, its own socket folder, and room for the services' pools.
        std::fs::write(
            pg.data().join("postgresql.auto.conf"),
            format!(
                "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nmax_connections = 200\n",
                pg.dir.display()
            ),
        )?;
        if as_root() {
            run(
                Command::new("chown").args(["postgres:postgres"]).arg(pg.data().join("postgresql.auto.conf")),
                "chown",
            )?;
        }
        pg.resume()?;
        Ok(pg)
    }

    /// Stops the server the way a crash would (`pg_ctl stop -m immediate`: no shutdown
    /// checkpoint, every connection cut); the next start recovers from the write-ahead log.
    pub fn crash(&self) -> anyhow::Result<()> {
        self.run_tool("pg_ctl", &["stop", "-D", &self.data().display().to_string(), "-m", "immediate", "-w"])
    }

    /// Starts the stopped server on the same port and data, and waits until it takes connections.
    pub fn resume(&self) -> anyhow::Result<()> {
        let log = self.dir.join("server.log").display().to_string();
        self.run_tool("pg_ctl", &["start", "-D", &self.data().display().to_string(), "-l", &log, "-w", "-t", "60"])
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(tool);
        let mut command = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(&self.dir);
        run(&mut command, tool)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run_tool("pg_ctl", &["stop", "-D", &self.data().display().to_string(), "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| anyhow::anyhow!("cannot run {what}: {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn server_binaries() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("RSVP_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let debian = Path::new("/usr/lib/postgresql/15/bin");
    if debian.join("initdb").exists() {
        return Ok(debian.to_owned());
    }
    let on_path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists());
    on_path.ok_or_else(|| {
        anyhow::anyhow!(
            "PostgreSQL's server binaries (initdb, pg_ctl) are missing: install postgresql-15 or set RSVP_PG_BIN"
        )
    })
}
