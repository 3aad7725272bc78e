//! Ownership by shard (`RSVP_WRITER_OWNERSHIP=shards`, issue 16): command-api instances divide
//! the shards through a Kafka consumer group, each shard with its own fenced producer, and any
//! instance hands a request to its shard's owner. Real Kafka and PostgreSQL.

use reqwest::StatusCode;
use rsvp_tests::{eventually, Service, TestEnv};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;

fn shards_mode() -> Vec<(&'static str, String)> {
    vec![("RSVP_WRITER_OWNERSHIP", "shards".into())]
}

/// The shards an instance owns, once it is ready and serves every one of them.
async fn owned(http: &reqwest::Client, service: &Service) -> Option<BTreeSet<i32>> {
    service.shards_served(http).await
}

/// Waits until the two instances are ready and own every shard between them, each some.
async fn divided(http: &reqwest::Client, a: &Service, b: &Service) -> (BTreeSet<i32>, BTreeSet<i32>) {
    rsvp_tests::shards_divided(http, a, b, PARTITIONS as usize, Duration::from_secs(60)).await
}

/// Tenants with keys, at least one in every shard.
async fn tenants_in_every_shard(env: &TestEnv) -> Vec<(events::TenantId, String)> {
    let mut tenants = vec![(env.tenant, env.key.clone())];
    let mut i = 0;
    while (0..PARTITIONS).any(|p| !tenants.iter().any(|(t, _)| events::shard_of(*t, PARTITIONS as usize) == p)) {
        tenants.push(env.other_tenant(&format!("tenant-{i}")).await);
        i += 1;
    }
    tenants
}

use rsvp_tests::create_invite as create;

async fn created_id(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_divide_the_shards_either_answers_for_any_tenant_and_conflicting_commands_get_one_success() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let http = reqwest::Client::new();
    // A member that vanished would keep its shards for a minute: only a clean hand-over (the
    // SIGTERM at the end) moves them within the test's bounds.
    let mut settings = shards_mode();
    settings.push(("RSVP_WRITER_LEASE_TIMEOUT_MS", "60000".into()));
    let a = Service::start("command-api", &env, &settings).await;
    a.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(owned(&http, &a).await.unwrap().len(), PARTITIONS as usize, "alone, it owns every shard");
    let b = Service::start("command-api", &env, &settings).await;
    let (on_a, on_b) = divided(&http, &a, &b).await;
    let tenants = tenants_in_every_shard(&env).await;

    // Either instance takes any tenant's command: one it does not own goes to the owner.
    let mut invites = Vec::new();
    let mut links = Vec::new();
    for (i, (tenant, key)) in tenants.iter().enumerate() {
        for (name, service) in [("a", &a), ("b", &b)] {
            let response = create(&http, &service.url, key, &format!("t{i}-{name}@example.com")).await;
            assert_eq!(response.status(), StatusCode::CREATED);
            let body: Value = response.json().await.unwrap();
            let link = body["link_url"].as_str().unwrap();
            links.push(link[link.find("/i/").unwrap()..].to_owned());
            invites.push((*tenant, key.clone(), body["id"].as_str().unwrap().to_owned()));
        }
    }

    // A public link names no tenant: whichever instance it reaches finds the owner that knows it
    // (a click is recorded, and the link leads on); an unknown token is not found by any.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (i, path) in links.iter().enumerate() {
        let service = if i % 2 == 0 { &a } else { &b };
        let followed = no_redirects.get(format!("{}{path}", service.url)).send().await.unwrap();
        assert!(matches!(followed.status(), StatusCode::FOUND | StatusCode::OK), "link {i}: {}", followed.status());
    }
    for service in [&a, &b] {
        let unknown = no_redirects.get(format!("{}/i/not-a-real-token-at-all-0000", service.url)).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "{}", service.url);
    }

    // Conflicting commands on one invite sent to both at once: exactly one succeeds.
    for (tenant, key, id) in &invites {
        let accept = http
            .post(format!("{}/v1/invites/{id}/accept", a.url))
            .bearer_auth(key)
            .json(&json!({ "accepted_by": "someone" }))
            .send();
        let decline = http.post(format!("{}/v1/invites/{id}/decline", b.url)).bearer_auth(key).json(&json!({})).send();
        let (accept, decline) = tokio::join!(accept, decline);
        let statuses = [accept.unwrap().status(), decline.unwrap().status()];
        let successes = statuses.iter().filter(|s| s.is_success()).count();
        assert_eq!(successes, 1, "invite {id} of tenant {tenant}: {statuses:?}");
        assert!(statuses.contains(&StatusCode::CONFLICT), "{statuses:?}");
    }

    // The log: each invite closed once; every event in its tenant's shard; the shards owned by
    // both instances were written.
    let log = env.read_log();
    let mut closing: HashMap<String, usize> = HashMap::new();
    for e in &log {
        if matches!(e.event_type(), "InviteAccepted" | "InviteDeclined") {
            *closing.entry(e.meta.stream.as_uuid().to_string()).or_default() += 1;
        }
    }
    for (_, _, id) in &invites {
        assert_eq!(closing.get(id), Some(&1), "invite {id} closed once: {closing:?}");
    }
    let written: BTreeSet<i32> = log.iter().map(|e| events::shard_of(e.meta.tenant_id, PARTITIONS as usize)).collect();
    assert!(written.iter().any(|p| on_a.contains(p)) && written.iter().any(|p| on_b.contains(p)));
    for (partition, offset, tenant, ..) in rsvp_tests::infra::placed(&env) {
        assert_eq!(partition, events::shard_of(tenant, PARTITIONS as usize), "offset {offset}");
    }

    // A compressed body is handed on as it came (Content-Encoding and all).
    for (tenant, key) in &tenants {
        for service in [&a, &b] {
            use std::io::Write as _;
            let body = json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": "gz@example.com" }] });
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body.to_string().as_bytes()).unwrap();
            let response = http
                .post(format!("{}/v1/invites", service.url))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(gz.finish().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED, "tenant {tenant} through {}", service.url);
        }
    }

    // A clean stop hands b's shards to a at once: every tenant is served through a again.
    let mut b = b;
    b.signal("TERM");
    for (tenant, key) in &tenants {
        eventually(Duration::from_secs(30), "the stopped instance's shards served again", || async {
            let response = create(&http, &a.url, key, "after-stop@example.com").await;
            match response.status() {
                StatusCode::CREATED => Some(()),
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => None,
                other => panic!("tenant {tenant}: {other}"),
            }
        })
        .await;
    }
    eventually(Duration::from_secs(30), "the stopped instance to exit", || {
        let running = b.is_running();
        async move { (!running).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_of_one_instance_moves_its_shards_the_others_never_pause_and_no_acknowledged_write_is_lost() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let a = Service::start("command-api", &env, &shards_mode()).await;
    a.wait_ready(Duration::from_secs(60)).await;
    let mut b = Service::start("command-api", &env, &shards_mode()).await;
    let (on_a, on_b) = divided(&http, &a, &b).await;
    let tenants = tenants_in_every_shard(&env).await;
    let shard = |t: events::TenantId| events::shard_of(t, PARTITIONS as usize);

    // Writes to every tenant through the survivor, before, during and after the kill.
    let mut acknowledged = Vec::new();
    let mut refused_on_a_shards = Vec::new();
    let mut killed_at = None;
    let mut back: HashMap<i32, Duration> = HashMap::new();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(60) && back.len() < on_b.len() {
        if round == 5 {
            b.kill().await;
            killed_at = Some(Instant::now());
        }
        for (i, (tenant, key)) in tenants.iter().enumerate() {
            let response = create(&http, &a.url, key, &format!("r{round}-t{i}@example.com")).await;
            let status = response.status();
            if status == StatusCode::CREATED {
                acknowledged.push(created_id(response).await);
                if let Some(at) = killed_at {
                    if on_b.contains(&shard(*tenant)) {
                        back.entry(shard(*tenant)).or_insert_with(|| at.elapsed());
                    }
                }
            } else {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "round {round}, tenant {i}");
                assert!(response.headers().contains_key("retry-after"));
                if on_a.contains(&shard(*tenant)) {
                    refused_on_a_shards.push((round, i));
                }
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused_on_a_shards.is_empty(), "the survivor's own shards paused: {refused_on_a_shards:?}");
    assert_eq!(back.len(), on_b.len(), "every moved shard answers again: {back:?}");
    eprintln!("moved shards answering again after the kill: {back:?}");
    eventually(Duration::from_secs(10), "the survivor to own every shard", || async {
        (owned(&http, &a).await?.len() == PARTITIONS as usize).then_some(())
    })
    .await;
    let log: BTreeSet<String> = env
        .read_log()
        .iter()
        .filter(|e| e.event_type() == "InviteCreated")
        .map(|e| e.meta.stream.as_uuid().to_string())
        .collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !log.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged and not in the log: {lost:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_owner_wakes_having_lost_its_shards_and_decides_nothing_from_its_stale_state() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    // No pooled connections: the old instance's keep-alive connections die while it is frozen.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let old = Service::start("command-api", &env, &shards_mode()).await;
    old.wait_ready(Duration::from_secs(60)).await;
    let tenants = tenants_in_every_shard(&env).await;
    let mut invites = Vec::new();
    for (i, (_, key)) in tenants.iter().enumerate() {
        invites.push((key.clone(), created_id(create(&http, &old.url, key, &format!("p{i}@example.com")).await).await));
    }

    old.signal("STOP");
    let new = Service::start("command-api", &env, &shards_mode()).await;
    eventually(Duration::from_secs(60), "the new instance to own every shard", || async {
        (owned(&http, &new).await?.len() == PARTITIONS as usize).then_some(())
    })
    .await;
    // The new owner accepts each invite: the frozen one still holds them pending.
    for (key, id) in &invites {
        let accepted =
            http.post(format!("{}/v1/invites/{id}/accept", new.url)).bearer_auth(key).json(&json!({})).send().await;
        assert_eq!(accepted.unwrap().status(), StatusCode::OK);
    }

    // Declines sent to the frozen owner wait in its sockets and are read the moment it wakes. Its
    // stale state (each invite still pending) would allow them; what stops them is that it learns
    // first that its session expired (librdkafka checks it on waking) and hands them to the owner
    // (409), or else its fenced producers (503: the next test).
    let stale: Vec<_> = invites
        .iter()
        .map(|(key, id)| {
            let request = http.post(format!("{}/v1/invites/{id}/decline", old.url)).bearer_auth(key).json(&json!({}));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal("CONT");
    let mut statuses = Vec::new();
    for request in stale {
        statuses.push(request.await.unwrap().unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::CONFLICT),
        "declines through the woken owner: {statuses:?}"
    );
    let declines = env.read_log().iter().filter(|e| e.event_type() == "InviteDeclined").count();
    assert_eq!(declines, 0, "the woken owner wrote a decision");
    // It comes back as an instance without shards (or with some given back by the group), and
    // hands requests on: a create through it lands once.
    // Retried under one idempotency key: a retry never creates it twice.
    eventually(Duration::from_secs(30), "a create through the woken instance", || async {
        let response = http
            .post(format!("{}/v1/invites", old.url))
            .bearer_auth(&tenants[0].1)
            .header("Idempotency-Key", "after-waking")
            .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": "after@example.com" }] }))
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::CREATED).then_some(())
    })
    .await;
    let after = env.created_targets().await.iter().filter(|t| t.as_str() == "after@example.com").count();
    assert_eq!(after, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_that_missed_the_rebalance_is_fenced_on_the_moved_shards_only() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let http = reqwest::Client::new();
    // This owner keeps deciding for the shards the group takes from it, as one cut off from the
    // group's coordinator but not from the brokers would: the test build's fault switch.
    let mut stale = shards_mode();
    stale.push(("RSVP_FAULT_SHARDS_IGNORE_REVOKE", "1".into()));
    let mut zombie = Service::start("command-api", &env, &stale).await;
    zombie.wait_ready(Duration::from_secs(60)).await;
    let tenants = tenants_in_every_shard(&env).await;
    let mut invites = Vec::new();
    for (i, (tenant, key)) in tenants.iter().enumerate() {
        let id = created_id(create(&http, &zombie.url, key, &format!("z{i}@example.com")).await).await;
        invites.push((*tenant, key.clone(), id));
    }
    let successor = Service::start("command-api", &env, &shards_mode()).await;
    let moved = eventually(Duration::from_secs(60), "the successor to own some shards", || async {
        owned(&http, &successor).await.filter(|s| !s.is_empty())
    })
    .await;
    let shard = |t: events::TenantId| events::shard_of(t, PARTITIONS as usize);
    // The successor decides on the moved shards: it accepts their invites.
    for (tenant, key, id) in invites.iter().filter(|(t, ..)| moved.contains(&shard(*t))) {
        let accepted = http
            .post(format!("{}/v1/invites/{id}/accept", successor.url))
            .bearer_auth(key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), StatusCode::OK, "tenant {tenant}");
    }
    // The stale owner still holds those invites pending and decides to decline them; each shard's
    // producer was fenced by its new owner, so nothing it decided is committed: 503. Once fenced,
    // its writer of that shard stands by, and the next decline goes to the owner: 409.
    for (tenant, key, id) in invites.iter().filter(|(t, ..)| moved.contains(&shard(*t))) {
        let declined =
            http.post(format!("{}/v1/invites/{id}/decline", zombie.url)).bearer_auth(key).json(&json!({})).send().await;
        let status = declined.unwrap().status();
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::CONFLICT,
            "tenant {tenant}: {status}"
        );
    }
    eventually(Duration::from_secs(10), "the stale owner to say it was fenced", || async {
        zombie.log_text().contains("fenced by another writer").then_some(())
    })
    .await;
    // Its shards that did not move are not fenced: they keep deciding.
    for (tenant, key, _) in tenants.iter().map(|(t, k)| (t, k, ())).filter(|(t, ..)| !moved.contains(&shard(**t))) {
        let response = create(&http, &zombie.url, key, "kept@example.com").await;
        assert_eq!(response.status(), StatusCode::CREATED, "tenant {tenant} on a shard that did not move");
    }
    zombie.kill().await;
    let log = env.read_log();
    assert_eq!(log.iter().filter(|e| e.event_type() == "InviteDeclined").count(), 0, "a fenced decision landed");
    let accepted = log.iter().filter(|e| e.event_type() == "InviteAccepted").count();
    assert_eq!(accepted, invites.iter().filter(|(t, ..)| moved.contains(&shard(*t))).count());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_writer_never_decides_beside_the_owners_of_shards() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let http = reqwest::Client::new();
    let lease = Service::start("command-api", &env, &[]).await;
    lease.wait_ready(Duration::from_secs(60)).await;
    let id = created_id(create(&http, &lease.url, &env.key, "x@example.com").await).await;
    // An instance by shard takes the topic over: it records that, then fences the lease's writer.
    let sharded = Service::start("command-api", &env, &shards_mode()).await;
    sharded.wait_ready(Duration::from_secs(60)).await;
    let accepted = http
        .post(format!("{}/v1/invites/{id}/accept", sharded.url))
        .bearer_auth(&env.key)
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(accepted.unwrap().status(), StatusCode::OK);
    // The lease's writer still holds its lease and decides this on its stale state; its
    // producer was fenced, so nothing lands (503). It waits a session, opens again, and then
    // refuses the topic.
    let stale = create(&http, &lease.url, &env.key, "stale@example.com").await;
    assert_eq!(stale.status(), StatusCode::SERVICE_UNAVAILABLE);
    eventually(Duration::from_secs(30), "the lease writer to refuse the topic", || async {
        lease.log_text().contains("is owned by shard").then_some(())
    })
    .await;
    for _ in 0..5 {
        let declined = http
            .post(format!("{}/v1/invites/{id}/decline", lease.url))
            .bearer_auth(&env.key)
            .json(&json!({}))
            .send()
            .await;
        assert_eq!(declined.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(env.read_log().iter().filter(|e| e.event_type() == "InviteDeclined").count(), 0);
    assert!(!env.created_targets().await.iter().any(|t| t == "stale@example.com"));
    // A lease instance that takes the lease over refuses it too.
    let late = Service::start("command-api", &env, &[]).await;
    lease.signal("TERM");
    eventually(Duration::from_secs(30), "a new lease instance to refuse the topic", || async {
        late.log_text().contains("is owned by shard").then_some(())
    })
    .await;
    let refused = create(&http, &late.url, &env.key, "late@example.com").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A service's log without its terminal colours.
fn without_colours(log: &str) -> String {
    let mut plain = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(at) = rest.find('\x1b') {
        plain.push_str(&rest[..at]);
        rest = rest[at..].find('m').map_or("", |end| &rest[at + end + 1..]);
    }
    plain.push_str(rest);
    plain
}

/// The shards an instance keeps warm standbys of (`GET /readyz`, `warm`).
async fn warm(http: &reqwest::Client, service: &Service) -> BTreeSet<i32> {
    let Ok(response) = http.get(format!("{}/readyz", service.url)).send().await else { return BTreeSet::new() };
    let body: Value = response.json().await.unwrap_or_default();
    body["warm"].as_array().into_iter().flatten().filter_map(|p| Some(p.as_i64()? as i32)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_standby_follows_the_shards_it_does_not_own_and_takes_them_over_knowing_every_acknowledged_write() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut settings = shards_mode();
    settings.push(("RSVP_WRITER_WARM_STANDBYS", "true".into()));
    // Only the clean hand-over below moves shards within the test's bounds.
    settings.push(("RSVP_WRITER_LEASE_TIMEOUT_MS", "60000".into()));
    let a = Service::start("command-api", &env, &settings).await;
    a.wait_ready(Duration::from_secs(60)).await;
    let b = Service::start("command-api", &env, &settings).await;
    let (on_a, on_b) = divided(&http, &a, &b).await;
    let tenants = tenants_in_every_shard(&env).await;
    let moving: Vec<&(events::TenantId, String)> =
        tenants.iter().filter(|(t, _)| on_b.contains(&events::shard_of(*t, PARTITIONS as usize))).collect();
    assert!(!moving.is_empty());

    // Each keeps the other's shards warm.
    eventually(Duration::from_secs(60), "each instance warm on the other's shards", || async {
        (warm(&http, &a).await == on_b && warm(&http, &b).await == on_a).then_some(())
    })
    .await;

    // Written through b, the owner, while a follows: an invite under an idempotency key, and an
    // invite accepted.
    // The i-th tenant's create under its idempotency key, through `url`.
    let keyed_create = |url: &str, key: &str, i: usize| {
        let body =
            json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": format!("w{i}@example.com") }] });
        http.post(format!("{url}/v1/invites"))
            .bearer_auth(key)
            .header("idempotency-key", format!("warm-{i}"))
            .json(&body)
            .send()
    };
    let mut written = Vec::new();
    for (i, (_, key)) in moving.iter().enumerate() {
        let keyed = created_id(keyed_create(&b.url, key, i).await.unwrap()).await;
        let accepted = created_id(create(&http, &b.url, key, &format!("acc{i}@example.com")).await).await;
        let response =
            http.post(format!("{}/v1/invites/{accepted}/accept", b.url)).bearer_auth(key).json(&json!({})).send().await;
        let response = response.unwrap();
        let status = response.status();
        assert_eq!(status, StatusCode::OK, "{}", response.text().await.unwrap());
        written.push((keyed, accepted));
    }
    // Followed by a (its standby reads committed records as they come), then handed over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.signal("TERM");
    eventually(Duration::from_secs(30), "a to own and serve every shard", || async {
        owned(&http, &a).await.filter(|o| o.len() == PARTITIONS as usize)
    })
    .await;
    for (i, (tenant, key)) in moving.iter().enumerate() {
        let (keyed, accepted) = &written[i];
        // The idempotency record was followed: the same answer, nothing new.
        let again = keyed_create(&a.url, key, i).await.unwrap();
        assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
        assert_eq!(created_id(again).await, *keyed, "tenant {tenant}: the keyed create replayed");
        // The acceptance was followed: a decline of that invite conflicts; the keyed one is open.
        let declined =
            http.post(format!("{}/v1/invites/{accepted}/decline", a.url)).bearer_auth(key).json(&json!({})).send();
        assert_eq!(declined.await.unwrap().status(), StatusCode::CONFLICT, "tenant {tenant}");
        let declined =
            http.post(format!("{}/v1/invites/{keyed}/decline", a.url)).bearer_auth(key).json(&json!({})).send();
        assert_eq!(declined.await.unwrap().status(), StatusCode::OK, "tenant {tenant}");
    }
    // Each moved shard was taken over from its warm state, not from its snapshot or whole log,
    // and the standby had followed every record b wrote: nothing was left to read.
    let log = without_colours(&a.log_text());
    assert!(!log.contains("standby state dropped") && !log.contains("standby state not used"), "{log}");
    for p in &on_b {
        let shard = format!("shard=Some({p})");
        let warm_line = log.lines().position(|l| l.contains("taking over from a warm standby") && l.contains(&shard));
        let warm_line = warm_line.unwrap_or_else(|| panic!("shard {p} not taken over from a warm standby: {log}"));
        let rebuilt = log
            .lines()
            .skip(warm_line)
            .find(|l| l.contains("state rebuilt") && l.contains(&shard))
            .unwrap_or_else(|| panic!("shard {p} taken over: {log}"));
        assert!(rebuilt.contains("events_read=0"), "shard {p} read records the standby had not followed: {rebuilt}");
    }
    // Every keyed create once in the log; each accepted invite closed once.
    let events = env.read_log();
    for (keyed, accepted) in &written {
        let of = |id: &str, kind: &str| {
            events.iter().filter(|e| e.meta.stream.as_uuid().to_string() == id && e.event_type() == kind).count()
        };
        assert_eq!(of(keyed, "InviteCreated"), 1);
        assert_eq!((of(accepted, "InviteAccepted"), of(accepted, "InviteDeclined")), (1, 0));
        assert_eq!(of(keyed, "InviteDeclined"), 1);
    }
}
