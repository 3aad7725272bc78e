//! Writes `BENCHMARKS.md`, `benchmarks/results.json` and the plots (a gnuplot script,
//! `benchmarks/plots.gp`, with its data inline, run into SVG files).

use crate::{median, Bench};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The median of one field over a list of per-round objects.
fn med(list: &Value, field: &str) -> f64 {
    median(&list.as_array().into_iter().flatten().map(|v| f(&v[field])).collect::<Vec<_>>())
}

fn nums(list: &Value) -> Vec<f64> {
    list.as_array().into_iter().flatten().map(f).collect()
}

fn fmt0(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        let s = format!("{v:.0}");
        // Thousands separated by commas, as in the issue.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    }
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

async fn command_line(program: &str, args: &[&str]) -> String {
    tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

pub async fn write(bench: &Bench, out: &Path) -> anyhow::Result<()> {
    let r = Value::Object(bench.results.clone());
    let dir = out.join("benchmarks");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&r)?)?;

    let mut md = String::new();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let commit = std::env::var("BENCH_COMMIT").unwrap_or_else(|_| "unknown".into());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']))
        .unwrap_or("unknown cpu");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0);
    let kernel = command_line("uname", &["-r"]).await;
    let rustc = command_line("rustc", &["--version"]).await;
    let oha = command_line(&bench.oha, &["--version"]).await;
    let pg = {
        let mut c = tokio::process::Command::new("psql");
        bench.psql_env(&mut c);
        c.args(["-d", "postgres", "-X", "-tAc", "SHOW server_version"]);
        c.output().await.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    };
    let kafka = std::env::var("KAFKA_LIB_DIR")
        .ok()
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some(name.strip_prefix("kafka-clients-")?.strip_suffix(".jar")?.to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();

    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `make bench` (`deploy/local/bench.sh`, `bench/`) on {date}, measuring commit {commit}. \
         Each figure is the median of {} rounds of {} s unless said otherwise; within a round the system runs first, \
         then its raw baseline, so whatever else the machine does weighs on both alike. The raw figures are in \
         `benchmarks/results.json`, the plots in `benchmarks/`.\n",
        bench.rounds, bench.seconds
    );
    let _ = writeln!(md, "## Machine, versions, settings\n");
    let _ = writeln!(md, "- machine: {model}, {cores} cores, {mem_gib:.0} GiB, Linux {kernel}; Kafka, PostgreSQL, the three services and the load generators all on it");
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min) before: {}; after: {}; the run took {:.1} min; CPU taken by other work on \
         the machine meanwhile: {:.0} s of {:.0} s",
        r["load_before"].as_str().unwrap_or("?").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        r["load_after"].as_str().unwrap_or("?").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        f(&r["elapsed_s"]) / 60.0,
        f(&r["cpu"]["others_s"]),
        f(&r["cpu"]["available_s"])
    );
    let _ = writeln!(md, "- {rustc}; release builds; librdkafka {librdkafka} (rdkafka 0.39); Apache Kafka {kafka} (KRaft, one node); PostgreSQL {pg}; {oha}; pgbench from PostgreSQL's client");
    let _ = writeln!(
        md,
        "- Kafka and PostgreSQL as `make run` starts them (`deploy/local/`), fresh for the run: topic of 12 partitions, \
         acks=all, `shared_buffers` 512 MB; services with their default settings"
    );
    let _ = writeln!(
        md,
        "- writes: `POST /v1/invites` with `{}`, {} connections; reads: {} connections",
        crate::CREATE_BODY,
        crate::WRITE_CONNECTIONS,
        crate::READ_CONNECTIONS
    );
    let _ = writeln!(
        md,
        "- raw write baseline (`bench/src/raw.rs`): the same rdkafka crate and producer settings as the writer \
         (transactional, idempotent, acks=all, linger.ms=1, murmur2), the same `InviteCreated` records with their \
         CloudEvents headers, callers waiting for their commit and one thread committing whatever waits in one \
         transaction (group commit, at most 1024), with nothing of rsvp around it\n"
    );

    // The issue's table.
    let sat = &r["saturation"];
    let sys_sat = med(&sat["system"], "rps");
    let raw_sat = median(&nums(&sat["raw"]));
    let fixed = r["fixed_rate"].as_array().cloned().unwrap_or_default();
    let at = |load: f64| fixed.iter().find(|x| (f(&x["load"]) - load).abs() < 1e-6).cloned();
    let reads = &r["reads"];
    let pg_tps = med(&reads["pgbench"], "tps");
    let detail_rps = med(&reads["detail"], "rps");
    let list_rps = med(&reads["list"], "rps");
    let _ = writeln!(md, "## Summary: the goals of issue 11\n");
    let _ = writeln!(md, "| what | goal | measured |\n| --- | --- | --- |");
    let idle = &r["freshness_idle"];
    let _ = writeln!(
        md,
        "| one create, 1 connection (the freshness probe, system idle) | p50 ≤ 3 ms | p50 {} |",
        ms(f(&idle["write_p50_ms"]))
    );
    let _ = writeln!(
        md,
        "| creates/s at {} connections | ≥ 10,000/s | {} /s (raw rdkafka: {} /s) |",
        crate::WRITE_CONNECTIONS,
        fmt0(sys_sat),
        fmt0(raw_sat)
    );
    if let Some(x) = at(0.8) {
        let _ = writeln!(
            md,
            "| write p99 at 80% of the maximum ({} /s) | ≤ 50 ms | {} |",
            fmt0(f(&x["rate"])),
            ms(med(&x["system"], "p99_ms"))
        );
    }
    let _ = writeln!(
        md,
        "| command 2xx → visible, idle | | p50 {}, p99 {} |",
        ms(f(&idle["p50_ms"])),
        ms(f(&idle["p99_ms"]))
    );
    if let Some(x) = at(0.5) {
        let _ = writeln!(
            md,
            "| command 2xx → visible at 50% of the maximum | p50 ≤ 10 ms, p99 ≤ 50 ms | p50 {}, p99 {} |",
            ms(med(&x["freshness"], "p50_ms")),
            ms(med(&x["freshness"], "p99_ms"))
        );
    }
    let _ = writeln!(
        md,
        "| `GET /v1/invites/{{id}}`, 32 connections | ≥ 0.5 of pgbench | {} req/s = {:.2} of pgbench's {} tps |",
        fmt0(detail_rps),
        detail_rps / pg_tps,
        fmt0(pg_tps)
    );
    let _ = writeln!(
        md,
        "| `GET /v1/invites?limit=50`, 32 connections | ≥ 0.3 of pgbench | {} req/s = {:.2} of pgbench |\n",
        fmt0(list_rps),
        list_rps / pg_tps
    );

    // 1.
    let _ = writeln!(md, "## 1. Write throughput at saturation\n");
    let _ = writeln!(
        md,
        "rsvp: `oha -c {c} -z {s}s` creating invites (2xx per second). Raw: {c} callers appending to the raw \
         baseline for {s} s. Kafka's `ProducerPerformance` (kafka-tools {kafka}): {} records of 600 bytes, acks=all, \
         one transaction every 50 ms, as fast as it goes.\n",
        fmt0(f(&sat["kafka_producer_performance"][0]["records"])),
        c = crate::WRITE_CONNECTIONS,
        s = bench.seconds
    );
    let _ = writeln!(md, "| | rsvp creates/s | raw rdkafka appends/s | rsvp / raw | Kafka ProducerPerformance records/s |\n| --- | --- | --- | --- | --- |");
    let sys: Vec<f64> = sat["system"].as_array().into_iter().flatten().map(|o| f(&o["rps"])).collect();
    let raw = nums(&sat["raw"]);
    let perf: Vec<f64> =
        sat["kafka_producer_performance"].as_array().into_iter().flatten().map(|o| f(&o["rate"])).collect();
    for i in 0..sys.len() {
        let _ = writeln!(
            md,
            "| round {} | {} | {} | {:.3} | {} |",
            i + 1,
            fmt0(sys[i]),
            fmt0(*raw.get(i).unwrap_or(&f64::NAN)),
            sys[i] / raw.get(i).unwrap_or(&f64::NAN),
            perf.get(i).map_or("n/a".into(), |p| fmt0(*p))
        );
    }
    let _ = writeln!(
        md,
        "| **median** | **{}** | **{}** | **{:.3}** | **{}** |\n",
        fmt0(sys_sat),
        fmt0(raw_sat),
        sys_sat / raw_sat,
        fmt0(median(&perf))
    );
    let sat_p: Vec<String> = sat["system"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| format!("p50 {} p99 {}", ms(f(&o["p50_ms"])), ms(f(&o["p99_ms"]))))
        .collect();
    let _ = writeln!(md, "rsvp's latency at saturation (closed loop, so not corrected): {}.\n", sat_p.join("; "));

    // 2.
    let _ = writeln!(md, "## 2. Write latency at fixed rates\n");
    let _ = writeln!(
        md,
        "rsvp: `oha -c {} -q <rate> --latency-correction -z {}s` (latency from when each request was due, so a stall \
         counts for every request it delays: no coordinated omission). Raw: appends started open-loop at the same \
         rate, latency from each one's due time to its commit. The freshness probe (3.) adds 20 creates/s to rsvp's load.\n",
        crate::WRITE_CONNECTIONS,
        bench.seconds
    );
    let _ = writeln!(md, "| load | rate /s | rsvp 2xx/s | rsvp p50 | p99 | p99.9 | raw p50 | p99 | p99.9 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for x in &fixed {
        let _ = writeln!(
            md,
            "| {:.0}% | {} | {} | {} | {} | {} | {} | {} | {} |",
            f(&x["load"]) * 100.0,
            fmt0(f(&x["rate"])),
            fmt0(med(&x["system"], "rps")),
            ms(med(&x["system"], "p50_ms")),
            ms(med(&x["system"], "p99_ms")),
            ms(med(&x["system"], "p999_ms")),
            ms(med(&x["raw"], "p50_ms")),
            ms(med(&x["raw"], "p99_ms")),
            ms(med(&x["raw"], "p999_ms")),
        );
    }
    let _ = writeln!(md, "\nPer round (p50 / p99 / p99.9):\n");
    for x in &fixed {
        let per = |list: &Value| -> String {
            list.as_array()
                .into_iter()
                .flatten()
                .map(|o| format!("{} / {} / {}", ms(f(&o["p50_ms"])), ms(f(&o["p99_ms"])), ms(f(&o["p999_ms"]))))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(md, "- {:.0}%: rsvp {}; raw {}", f(&x["load"]) * 100.0, per(&x["system"]), per(&x["raw"]));
    }
    let _ = writeln!(md, "\n![write latency against offered load](benchmarks/writes-latency.svg)\n");

    // 3.
    let _ = writeln!(md, "## 3. Freshness: command 2xx to visible in the query API\n");
    let _ = writeln!(
        md,
        "A probe creates an invite every 50 ms beside the load of 2., then reads `GET /v1/invites/{{id}}` until it \
         answers 200 (every 1 ms at first, then every 5% of the wait); freshness runs from the create's 2xx to that 200. \
         Idle: the same probe, 5 s, nothing else running.\n"
    );
    let _ = writeln!(md, "| load | p50 | p99 | max | samples (per round) |\n| --- | --- | --- | --- | --- |");
    let _ = writeln!(md, "| idle | {} | {} | | {} |", ms(f(&idle["p50_ms"])), ms(f(&idle["p99_ms"])), idle["samples"]);
    for x in &fixed {
        let samples: Vec<String> =
            x["freshness"].as_array().into_iter().flatten().map(|s| s["samples"].to_string()).collect();
        let _ = writeln!(
            md,
            "| {:.0}% ({} /s) | {} | {} | {} | {} |",
            f(&x["load"]) * 100.0,
            fmt0(f(&x["rate"])),
            ms(med(&x["freshness"], "p50_ms")),
            ms(med(&x["freshness"], "p99_ms")),
            ms(med(&x["freshness"], "max_ms")),
            samples.join(", ")
        );
    }
    let _ = writeln!(md, "\n![freshness over time under load](benchmarks/freshness.svg)\n");

    // 4.
    let c = &r["catchup"];
    let _ = writeln!(md, "## 4. Projector catch-up over a realistic mix\n");
    let _ = writeln!(
        md,
        "`cargo bench -p projector --bench catchup -- {} --rounds {}`: {} events of {}, loaded once; each round the \
         projector catches up into a fresh database, then the same final rows ({} rows in {} tables) are COPYed into \
         empty twins of the tables (same indexes).\n",
        c["events"],
        bench.rounds,
        fmt0(f(&c["events"])),
        c["mix"].as_str().unwrap_or("?"),
        fmt0(f(&c["rows"])),
        c["tables"]
    );
    let _ = writeln!(md, "| | projector events/s | raw COPY events/s | projector / COPY |\n| --- | --- | --- | --- |");
    let (rate, copy, ratio) = (nums(&c["rate"]), nums(&c["copy_rate"]), nums(&c["ratio"]));
    for i in 0..rate.len() {
        let _ = writeln!(md, "| round {} | {} | {} | {:.2} |", i + 1, fmt0(rate[i]), fmt0(copy[i]), ratio[i]);
    }
    let _ = writeln!(
        md,
        "| **median** | **{}** | **{}** | **{:.2}** |\n",
        fmt0(median(&rate)),
        fmt0(median(&copy)),
        median(&ratio)
    );
    let _ = writeln!(md, "![catch-up rate](benchmarks/catchup.svg)\n");

    // 5.
    let w = &r["restart"];
    let _ = writeln!(md, "## 5. Writer ready over a long log\n");
    let _ = writeln!(
        md,
        "`cargo bench -p command-api --bench restart -- {} --tenants={}` (one run: the load dominates its time): first \
         start over the whole log {:.2} s ({} events/s); a take-over from the shards' snapshots and the log after them \
         {:.2} s from when the lease was held ({:.2} s in all); the same start with the snapshots deleted, reading the \
         whole log, {:.2} s ({:.2} s in all). Memory grew {:.0} MB over the first start; the snapshots took {:.1} MB.\n",
        w["events"],
        w["tenants"],
        f(&w["first_start_s"]),
        fmt0(f(&w["events"]) / f(&w["first_start_s"])),
        f(&w["takeover_from_snapshots_after_lease_s"]),
        f(&w["takeover_from_snapshots_s"]),
        f(&w["restart_whole_log_after_lease_s"]),
        f(&w["restart_whole_log_s"]),
        f(&w["rss_growth_mb"]),
        f(&w["snapshot_mb"]),
    );

    // 6.
    let l = &r["list"];
    let _ = writeln!(md, "## 6. Reads beside `pgbench -S`\n");
    let _ = writeln!(
        md,
        "`oha -c {n} -z {s}s` on one invite's detail (created and sent, so it has a delivery) and on the first page of \
         the list (`limit=50`, over every invite the run created), beside `pgbench -S -c {n} -j 2 -T {s}` (scale {}) on \
         the same PostgreSQL, alternating.\n",
        reads["pgbench_scale"],
        n = crate::READ_CONNECTIONS,
        s = bench.seconds
    );
    let _ = writeln!(md, "| | detail req/s | list req/s | pgbench -S tps | detail / pgbench | list / pgbench |\n| --- | --- | --- | --- | --- | --- |");
    let (d, li, p) = (
        reads["detail"].as_array().cloned().unwrap_or_default(),
        reads["list"].as_array().cloned().unwrap_or_default(),
        reads["pgbench"].as_array().cloned().unwrap_or_default(),
    );
    for i in 0..d.len() {
        let (dr, lr, pt) = (f(&d[i]["rps"]), f(&li[i]["rps"]), f(&p[i]["tps"]));
        let _ = writeln!(
            md,
            "| round {} | {} | {} | {} | {:.2} | {:.2} |",
            i + 1,
            fmt0(dr),
            fmt0(lr),
            fmt0(pt),
            dr / pt,
            lr / pt
        );
    }
    let _ = writeln!(
        md,
        "| **median** | **{}** | **{}** | **{}** | **{:.2}** | **{:.2}** |\n",
        fmt0(detail_rps),
        fmt0(list_rps),
        fmt0(pg_tps),
        detail_rps / pg_tps,
        list_rps / pg_tps
    );
    let _ = writeln!(md, "Latency at fixed rates (`-q <rate> --latency-correction`, one run each):\n");
    let _ = writeln!(md, "| endpoint | load | rate /s | p50 | p99 | p99.9 |\n| --- | --- | --- | --- | --- | --- |");
    for x in reads["fixed_rate"].as_array().into_iter().flatten() {
        let o = &x["result"];
        let _ = writeln!(
            md,
            "| {} | {:.0}% | {} | {} | {} | {} |",
            x["endpoint"].as_str().unwrap_or("?"),
            f(&x["load"]) * 100.0,
            fmt0(f(&x["rate"])),
            ms(f(&o["p50_ms"])),
            ms(f(&o["p99_ms"])),
            ms(f(&o["p999_ms"]))
        );
    }
    let _ = writeln!(md, "\n![read latency against offered load](benchmarks/reads-latency.svg)\n");
    let _ = writeln!(
        md,
        "Deep page against first page (`cargo bench -p query-api --bench list -- {}`, {} invites of one tenant, {} \
         sequential requests each, `{}`): first page p50 {}, p99 {}; {} rows deep p50 {}, p99 {}; deep / first {:.2} \
         (p50), {:.2} (p99).\n",
        l["invites"],
        fmt0(f(&l["invites"])),
        l["samples"],
        l["query"].as_str().unwrap_or("?"),
        ms(f(&l["first_p50_ms"])),
        ms(f(&l["first_p99_ms"])),
        fmt0(f(&l["deep_rows"])),
        ms(f(&l["deep_p50_ms"])),
        ms(f(&l["deep_p99_ms"])),
        f(&l["deep_p50_ms"]) / f(&l["first_p50_ms"]),
        f(&l["deep_p99_ms"]) / f(&l["first_p99_ms"])
    );

    // 7.
    md.push_str(&emails(&r["emails"]));

    // 8.
    let _ = writeln!(md, "## 8. Peak RSS and CPU seconds in each run\n");
    let _ = writeln!(
        md,
        "Peak resident memory (`VmHWM`, reset at the start of each run) in MiB / CPU seconds (`utime + stime`) spent \
         during the run. PostgreSQL: CPU of all its processes, no peak (its memory is mostly shared buffers). The \
         in-process benches run projector, writer or query API inside the bench process; the emails bench starts a \
         command API, a dispatcher and a Mailpit as its children, in its figures as far as it reaped them.\n"
    );
    let mut names: Vec<String> = Vec::new();
    for run in &bench.runs {
        for name in run.usage.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let _ = writeln!(md, "| run | side | round | {} |", names.join(" | "));
    let _ = writeln!(md, "| --- | --- | --- |{}", " --- |".repeat(names.len()));
    for run in &bench.runs {
        let cells: Vec<String> = names
            .iter()
            .map(|n| match run.usage.get(n) {
                Some(u) => match u.peak_rss_mib {
                    Some(rss) => format!("{rss:.0} / {:.1}", u.cpu_s),
                    None => format!("– / {:.1}", u.cpu_s),
                },
                None => String::new(),
            })
            .collect();
        let _ = writeln!(md, "| {} | {} | {} | {} |", run.figure, run.side, run.round, cells.join(" | "));
    }
    let mut notes = bench.notes.clone();
    let cpu = &r["cpu"];
    let (others, available) = (f(&cpu["others_s"]), f(&cpu["available_s"]));
    if others / available > 0.05 {
        notes.push(format!(
            "Other work on the machine took {others:.0} CPU seconds of the {available:.0} the run had ({:.0}%; the \
             benchmark and the system {:.0} s): these figures are that much noisier and lower than on a quiet machine.",
            100.0 * others / available,
            f(&cpu["ours_s"])
        ));
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\n## Notes from the run\n");
        for n in &notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    if let Ok(extra) = std::env::var("BENCH_NOTES") {
        if !extra.trim().is_empty() {
            let _ = writeln!(md, "\n{extra}");
        }
    }
    std::fs::write(out.join("BENCHMARKS.md"), md)?;
    plots(&r, &dir).await
}

/// Section 7, from the `emails` bench's result (nothing when the run has none).
fn emails(e: &Value) -> String {
    let mut md = String::new();
    if !e.is_object() {
        return md;
    }
    let n = f(&e["emails"]);
    let _ = writeln!(md, "## 7. Invitation emails through Mailpit\n");
    let _ = writeln!(
        md,
        "`cargo bench -p dispatcher --bench emails -- {n} --rounds {rounds}`: each round, a fresh topic and database, \
         a Mailpit of its own and the command API as a process (no projector or query API: the dispatcher needs \
         neither); {n_} invites created with `\"send\": \"email\"` through the command API ({c} in flight) while no \
         dispatcher runs; then the dispatcher starts (a process, release build) and the clock runs until Mailpit \
         holds {n_} messages and every delivery stands `sent` and reported through the command API \
         (`dispatch.deliveries`). Per email it records `sending` through the writer, renders, sends over SMTP, \
         commits, records `sent`. Its per-tenant limit `RSVP_SEND_RATE_PER_TENANT` is set to {limit}/s (default 50/s) \
         so that the dispatcher, not the limit, sets the pace. Beside it, the floor: lettre alone (the dispatcher's \
         own lettre dependency and transport settings, a pooled `AsyncSmtpTransport`) sending {n_} emails of the same \
         size one after another to a fresh Mailpit, until Mailpit holds them.\n",
        n = e["emails"],
        rounds = e["rounds"],
        n_ = fmt0(n),
        c = e["preload_concurrency"],
        limit = fmt0(f(&e["rate_per_tenant"])),
    );
    let _ = writeln!(
        md,
        "| | dispatcher emails/s | raw lettre emails/s | dispatcher / lettre | dispatcher: total (ready after) | Mailpit got (dispatcher, lettre) | bare SMTP, TCP_NODELAY, emails/s |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    let (rate, raw, ratio) = (nums(&e["rate"]), nums(&e["raw_rate"]), nums(&e["ratio"]));
    let (total, ready) = (nums(&e["total_s"]), nums(&e["ready_s"]));
    let (got, raw_got) = (nums(&e["received"]), nums(&e["raw_received"]));
    let bare = nums(&e["bare_smtp_rate"]);
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    for i in 0..rate.len() {
        let _ = writeln!(
            md,
            "| round {} | {} | {} | {:.2} | {:.2} s ({:.2} s) | {}, {} | {} |",
            i + 1,
            fmt0(rate[i]),
            fmt0(at(&raw, i)),
            at(&ratio, i),
            at(&total, i),
            at(&ready, i),
            fmt0(at(&got, i)),
            fmt0(at(&raw_got, i)),
            fmt0(at(&bare, i))
        );
    }
    let _ = writeln!(
        md,
        "| **median** | **{}** | **{}** | **{:.2}** | | | **{}** |\n",
        fmt0(median(&rate)),
        fmt0(median(&raw)),
        median(&ratio),
        fmt0(median(&bare))
    );
    let all_once = got.iter().chain(&raw_got).all(|g| *g == n);
    let _ = writeln!(
        md,
        "Mailpit {} (the dispatcher sends each email once when nothing crashes). After ready, the dispatcher's median \
         is {} emails/s. Messages: {} bytes each from the dispatcher, {} from lettre (Mailpit's sizes). The preload \
         took {} s (median).\n",
        if all_once {
            format!("got exactly {} messages in every run", fmt0(n))
        } else {
            "did NOT get exactly N messages in every run: see the table".into()
        },
        fmt0(median(&nums(&e["rate_after_ready"]))),
        fmt0(median(&nums(&e["message_bytes"]))),
        fmt0(median(&nums(&e["raw_message_bytes"]))),
        format!("{:.1}", median(&nums(&e["preload_s"]))),
    );
    let _ = writeln!(
        md,
        "The last column is not a baseline of the dispatcher but what Mailpit takes: the same messages over one \
         connection of a bare SMTP client with `TCP_NODELAY` that writes each body and its final `.` at once. \
         lettre 0.11 writes the body and the final `.` apart without `TCP_NODELAY`, so Nagle holds the `.` until \
         the server's delayed ACK (40 ms on Linux): about 22 emails/s per connection, whoever sends. The \
         dispatcher sends one email at a time over it, so that bounds it, below its default per-tenant limit.\n"
    );
    if e["default_limit"].is_object() {
        let d = &e["default_limit"];
        let _ = writeln!(
            md,
            "With the default limit ({}/s per tenant, all emails one tenant's): {} emails/s ({:.1} s).\n",
            d["rate_per_tenant"],
            fmt0(f(&d["rate"])),
            f(&d["total_s"])
        );
    }
    md
}

async fn plots(r: &Value, dir: &Path) -> anyhow::Result<()> {
    let mut gp = String::new();
    let _ = writeln!(gp, "# Written by `make bench`: the plots of BENCHMARKS.md, data inline. Run: gnuplot plots.gp\n");
    // Writes: latency against offered load.
    let _ = writeln!(gp, "$writes << EOD\n# rate rsvp_p50 rsvp_p99 rsvp_p999 raw_p50 raw_p99 raw_p999");
    for x in r["fixed_rate"].as_array().into_iter().flatten() {
        let _ = writeln!(
            gp,
            "{} {} {} {} {} {} {}",
            f(&x["rate"]),
            med(&x["system"], "p50_ms"),
            med(&x["system"], "p99_ms"),
            med(&x["system"], "p999_ms"),
            med(&x["raw"], "p50_ms"),
            med(&x["raw"], "p99_ms"),
            med(&x["raw"], "p999_ms")
        );
    }
    let _ = writeln!(gp, "EOD\n");
    let _ = writeln!(gp, "$reads << EOD\n# endpoint rate p50 p99 p999");
    for endpoint in ["detail", "list"] {
        let _ = writeln!(gp, "# {endpoint}");
        for x in r["reads"]["fixed_rate"].as_array().into_iter().flatten().filter(|x| x["endpoint"] == endpoint) {
            let o = &x["result"];
            let _ = writeln!(gp, "{} {} {} {}", f(&x["rate"]), f(&o["p50_ms"]), f(&o["p99_ms"]), f(&o["p999_ms"]));
        }
        let _ = writeln!(gp, "\n");
    }
    let _ = writeln!(gp, "EOD\n");
    // Freshness: every sample of the last round at each load, plus idle... the idle probe keeps no trace.
    let fixed = r["fixed_rate"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(gp, "$fresh << EOD");
    for x in &fixed {
        let _ = writeln!(gp, "# {:.0}%", f(&x["load"]) * 100.0);
        if let Some(last) = x["freshness"].as_array().and_then(|a| a.last()) {
            for s in last["trace"].as_array().into_iter().flatten() {
                let _ = writeln!(gp, "{} {}", f(&s[0]), f(&s[1]));
            }
        }
        let _ = writeln!(gp, "\n");
    }
    let _ = writeln!(gp, "EOD\n");
    let c = &r["catchup"];
    let _ = writeln!(gp, "$catchup << EOD");
    for trace in c["trace"].as_array().into_iter().flatten() {
        for s in trace.as_array().into_iter().flatten() {
            let _ = writeln!(gp, "{} {}", f(&s[0]), f(&s[1]));
        }
        let _ = writeln!(gp, "\n");
    }
    let _ = writeln!(gp, "EOD\n");
    let _ = writeln!(gp, "$copy << EOD");
    for s in nums(&c["copy_s"]) {
        let _ = writeln!(gp, "0 0\n{s} {}\n\n", f(&c["events"]));
    }
    let _ = writeln!(gp, "EOD\n");

    let _ = writeln!(
        gp,
        r#"set terminal svg size 820,480 dynamic enhanced font 'sans,12' background '#ffffff'
set grid
set key top left

set output 'writes-latency.svg'
set title 'Writes: latency against offered load (corrected for coordinated omission; medians)'
set xlabel 'offered load (creates/s)'
set ylabel 'latency (ms)'
set logscale y
plot $writes using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'rsvp p50', \
     '' using 1:3 with linespoints lw 2 pt 5 lc rgb '#ff7f0e' title 'rsvp p99', \
     '' using 1:4 with linespoints lw 2 pt 9 lc rgb '#d62728' title 'rsvp p99.9', \
     '' using 1:5 with linespoints dt 2 pt 6 lc rgb '#1f77b4' title 'raw rdkafka p50', \
     '' using 1:6 with linespoints dt 2 pt 4 lc rgb '#ff7f0e' title 'raw rdkafka p99', \
     '' using 1:7 with linespoints dt 2 pt 8 lc rgb '#d62728' title 'raw rdkafka p99.9'

set output 'reads-latency.svg'
set title 'Reads: latency against offered load (32 connections, corrected)'
set xlabel 'offered load (requests/s)'
plot $reads index 0 using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'detail p50', \
     '' index 0 using 1:3 with linespoints lw 2 pt 5 lc rgb '#ff7f0e' title 'detail p99', \
     '' index 0 using 1:4 with linespoints lw 2 pt 9 lc rgb '#d62728' title 'detail p99.9', \
     '' index 1 using 1:2 with linespoints dt 2 pt 6 lc rgb '#1f77b4' title 'list p50', \
     '' index 1 using 1:3 with linespoints dt 2 pt 4 lc rgb '#ff7f0e' title 'list p99', \
     '' index 1 using 1:4 with linespoints dt 2 pt 8 lc rgb '#d62728' title 'list p99.9'

set output 'freshness.svg'
set title 'Freshness under load: command 2xx to visible in the query API (last round)'
set xlabel 'time into the run (s)'
set ylabel 'freshness (ms)'
plot {fresh_plot}

unset logscale y
set output 'catchup.svg'
set title 'Projector catch-up: events applied over time, beside a raw COPY of the same rows'
set xlabel 'time (s)'
set ylabel 'events applied'
set key bottom right
plot {catchup_plot}
"#,
        fresh_plot = fixed
            .iter()
            .enumerate()
            .map(|(i, x)| format!(
                "$fresh index {i} using 1:2 with points pt 7 ps 0.4 title '{:.0}% of saturation ({:.0} /s)'",
                f(&x["load"]) * 100.0,
                f(&x["rate"])
            ))
            .collect::<Vec<_>>()
            .join(", \\\n     "),
        catchup_plot = (0..nums(&c["copy_s"]).len())
            .map(|i| format!(
                "$catchup index {i} using 1:2 with lines lw 2 title 'projector, round {}', $copy index {i} using 1:2 with lines dt 2 title 'COPY, round {}'",
                i + 1,
                i + 1
            ))
            .collect::<Vec<_>>()
            .join(", \\\n     ")
    );
    std::fs::write(dir.join("plots.gp"), &gp)?;
    let status = tokio::process::Command::new("gnuplot").arg("plots.gp").current_dir(dir).status().await;
    match status {
        Ok(s) if s.success() => Ok(()),
        other => {
            eprintln!("gnuplot did not draw the plots ({other:?}); the data is in {}", dir.join("plots.gp").display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emails_section_shows_each_round_the_medians_and_the_counts() {
        let e = serde_json::json!({
            "emails": 2000, "rounds": 3, "rate_per_tenant": 100000, "preload_concurrency": 32,
            "preload_s": [1.5, 1.4, 1.6], "ready_s": [0.3, 0.2, 0.25], "total_s": [5.0, 4.0, 4.5],
            "rate": [400.0, 500.0, 444.4], "rate_after_ready": [425.5, 526.3, 470.6],
            "received": [2000, 2000, 2000], "deliveries": [2000, 2000, 2000], "sent": [2000, 2000, 2000],
            "message_bytes": [2500.0, 2500.0, 2500.0], "raw_sends_s": [1.0, 1.0, 1.0], "raw_total_s": [1.0, 1.25, 1.1],
            "raw_rate": [2000.0, 1600.0, 1818.2], "raw_received": [2000, 2000, 2000],
            "raw_message_bytes": [2490.0, 2490.0, 2490.0], "ratio": [0.2, 0.3125, 0.244], "default_limit": null,
            "bare_smtp_rate": [700.0, 650.0, 690.0],
        });
        let md = emails(&e);
        assert!(md.starts_with("## 7. Invitation emails through Mailpit\n"), "{md}");
        assert!(md.contains("`cargo bench -p dispatcher --bench emails -- 2000 --rounds 3`"), "{md}");
        assert!(md.contains("| round 2 | 500 | 1,600 | 0.31 | 4.00 s (0.20 s) | 2,000, 2,000 | 650 |"), "{md}");
        assert!(md.contains("| **median** | **444** | **1,818** | **0.24** | | | **690** |"), "{md}");
        assert!(md.contains("got exactly 2,000 messages in every run"), "{md}");
        assert!(md.contains("100,000/s"), "{md}");
        assert!(!md.contains("default limit ("), "{md}");

        let mut short = e.clone();
        short["received"] = serde_json::json!([2000, 1999, 2000]);
        short["default_limit"] =
            serde_json::json!({ "rate_per_tenant": 50, "total_s": 20.5, "rate": 97.6, "received": 2000 });
        let md = emails(&short);
        assert!(md.contains("did NOT get exactly N messages"), "{md}");
        assert!(
            md.contains("With the default limit (50/s per tenant, all emails one tenant's): 98 emails/s (20.5 s)."),
            "{md}"
        );

        assert_eq!(emails(&serde_json::Value::Null), "");
    }
}
