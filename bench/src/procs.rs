//! Peak resident memory and CPU seconds of the running services over one measured run, from
//! `/proc`: the peak (`VmHWM`) is reset at the start of each run (`clear_refs` 5), CPU is
//! `utime + stime` at the end minus at the start. PostgreSQL is a tree of processes: its CPU is the
//! postmaster's own and reaped children's time plus every live child's; its memory is mostly the
//! shared buffers every backend maps, so no peak is given for it.

use std::collections::BTreeMap;

#[derive(Clone)]
pub struct Service {
    pub name: String,
    pub pid: u32,
    /// PostgreSQL: count the children.
    pub tree: bool,
}

/// One run's figures for one service.
#[derive(Clone, Debug)]
pub struct Usage {
    pub peak_rss_mib: Option<f64>,
    pub cpu_s: f64,
}

pub struct Window {
    services: Vec<Service>,
    start: Vec<u64>,
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime, stime, cutime, cstime and the parent pid of a process.
fn stat(pid: u32) -> Option<([u64; 4], u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(([n(11)?, n(12)?, n(13)?, n(14)?], n(1)? as u32))
}

fn cpu_ticks(service: &Service) -> u64 {
    let Some((own, _)) = stat(service.pid) else { return 0 };
    if !service.tree {
        return own[0] + own[1];
    }
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .filter(|(_, parent)| *parent == service.pid)
        .map(|(t, _)| t[0] + t[1])
        .sum();
    own.iter().sum::<u64>() + children
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl Window {
    pub fn begin(services: &[Service]) -> Self {
        for s in services.iter().filter(|s| !s.tree) {
            // Resets the peak to the current size; fails harmlessly where not permitted.
            let _ = std::fs::write(format!("/proc/{}/clear_refs", s.pid), "5");
        }
        Self { services: services.to_vec(), start: services.iter().map(cpu_ticks).collect() }
    }

    pub fn end(self) -> BTreeMap<String, Usage> {
        let hz = ticks_per_second();
        self.services
            .iter()
            .zip(self.start)
            .map(|(s, start)| {
                let usage = Usage {
                    peak_rss_mib: if s.tree { None } else { peak_rss_mib(s.pid) },
                    cpu_s: cpu_ticks(s).saturating_sub(start) as f64 / hz,
                };
                (s.name.clone(), usage)
            })
            .collect()
    }
}

/// Runs a child under `/usr/bin/time` and returns its output and usage (peak RSS, CPU seconds),
/// or without usage when `/usr/bin/time` is missing.
pub async fn timed(program: &str, args: &[String]) -> anyhow::Result<(String, Option<Usage>)> {
    let usage_file = std::env::temp_dir().join(format!("rsvp-bench-time-{}", uuid::Uuid::new_v4().simple()));
    let gnu_time = std::path::Path::new("/usr/bin/time").exists();
    let mut command = if gnu_time {
        let mut c = tokio::process::Command::new("/usr/bin/time");
        c.arg("-f").arg("%M %U %S").arg("-o").arg(&usage_file).arg(program);
        c
    } else {
        tokio::process::Command::new(program)
    };
    let output = command.args(args).stdin(std::process::Stdio::null()).output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "{program} {}: {}\n{stdout}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let usage = std::fs::read_to_string(&usage_file).ok().and_then(|text| {
        let f: Vec<f64> = text.lines().last()?.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        Some(Usage { peak_rss_mib: Some(f.first()? / 1024.0), cpu_s: f.get(1)? + f.get(2)? })
    });
    let _ = std::fs::remove_file(&usage_file);
    Ok((stdout, usage))
}

/// The figures of this very process (the raw baselines run in it).
pub fn this_process() -> Service {
    Service { name: "baseline harness".into(), pid: std::process::id(), tree: false }
}

/// CPU ticks the whole machine spent busy (every core, everything but idle and I/O wait).
pub fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        text.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already)
    fields.iter().take(8).sum::<u64>() - fields.get(3).copied().unwrap_or(0) - fields.get(4).copied().unwrap_or(0)
}

/// CPU ticks of the benchmark's own work: this process with every child it waited for (load
/// generators, in-process benches) and the services.
pub fn our_ticks(services: &[Service]) -> u64 {
    let own = stat(std::process::id()).map_or(0, |(t, _)| t.iter().sum());
    own + services.iter().map(cpu_ticks).sum::<u64>()
}

pub fn seconds(ticks: u64) -> f64 {
    ticks as f64 / ticks_per_second()
}
