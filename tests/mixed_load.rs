//! Mixed load on DynamoDB Local + ministack (mandatory in CI), then the invariant checker
//! (`postflow::invariants`) over a full scan of the table and the whole stream.
//!
//! Concurrently, for overlapping users, organizations and projects: every user accepts their own invite
//! (twice at once), races three other users for a contested invite, and accepts an invite to a 2FA
//! organization by enrolling in TOTP (two POSTs at once, with the invite cookie); meanwhile events are
//! saved to two projects with repeated event ids and shared fingerprints. Afterwards: the checker finds
//! no violation, and the expected totals hold (each contested invite accepted once, every user enrolled
//! once, every distinct event streamed once and counted once).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::{claims, request as api};
use postflow::backend::{App, Backend};
use serde_json::{Value, json};
use shared::adapters::aws::{DynamoRateLimiter, kinesis_stream, read_all_records};
use shared::adapters::dynamo_table::DynamoTable;
use shared::config::Config;
use shared::domain::otp::Totp;
use shared::http::{ApiRequest, Reply};
use shared::secret::Secret;
use shared::storage::seed::{Seed, load_seed};

const TOKEN: &str = "8d3f7a1c2b9e4f6051a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
const USERS: u64 = 12;
const CONTESTED: u64 = 3;
const EVENTS: u64 = 40;

fn accept_req(method: &str, org: &str, member: u64, user: &str) -> ApiRequest {
    let member = member.to_string();
    api(
        method,
        &format!("/api/0/accept-invite/{org}/{member}/{TOKEN}/"),
        &[("organization_id_or_slug", org), ("member_id", &member), ("token", TOKEN)],
        Some(claims(user)),
        &Value::Null,
    )
}

fn cookie_of(r: &Reply) -> Option<String> {
    let h = r.header("set-cookie")?;
    Some(h.strip_prefix("postflow-invite=")?.split(';').next()?.to_owned())
}

/// The 2FA path of one user: accept GET (cookie) → enroll GET → two enroll POSTs at once.
async fn enroll_user(app: Arc<App>, user: String, member: u64) -> Vec<u16> {
    let r = app.accept.handle_api(&accept_req("GET", "secure", member, &user)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cookie = cookie_of(&r).expect("invite cookie");
    let path = "/api/0/users/me/authenticators/totp/enroll/";
    let params = [("user_id", "me"), ("interface_id", "totp")];
    let r = app.enroll.handle_api(&api("GET", path, &params, Some(claims(&user)), &Value::Null)).await;
    let secret = r.json_body()["secret"].as_str().unwrap().to_owned();
    let totp = Totp::authenticator_app(&Secret::new(secret.clone())).unwrap();
    let code = totp.code_at_counter(totp.counter_at(postflow::scenario::now_secs()) as u64);
    let mut post = api("POST", path, &params, Some(claims(&user)), &json!({"secret": secret, "otp": code}));
    post.cookies.insert("postflow-invite".into(), cookie);
    let (a, b) = tokio::join!(app.enroll.handle_api(&post), app.enroll.handle_api(&post));
    vec![a.status, b.status]
}

fn event_req(project: u64, key: &str, id: u64) -> ApiRequest {
    let body = json!({
        "event_id": format!("{:032x}", 0x5eed_0000_u64 + id),
        "message": format!("mixed load message {}", id % 5),
        "level": "error",
        "platform": "python",
        "release": format!("mixed@{}.0", id % 3),
        "environment": if id.is_multiple_of(2) { "production" } else { "staging" },
    });
    let mut req =
        api("POST", &format!("/api/{project}/store/"), &[("project_id", &project.to_string())], None, &body);
    req.headers.push(("x-sentry-auth".into(), format!("Sentry sentry_key={key}, sentry_version=7")));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_load_keeps_every_invariant() {
    let Some(aws) = shared::testing::aws_env("mixed_load_keeps_every_invariant").await else { return };
    let table = Arc::new(DynamoTable::new(aws.clients.dynamodb.clone(), &aws.table));
    let backend = Backend::with(
        table.clone(),
        Arc::new(DynamoRateLimiter::new(aws.clients.dynamodb.clone(), &aws.table)),
        Arc::new(kinesis_stream(aws.clients.kinesis.clone(), &aws.stream, 5)),
        Arc::new(shared::adapters::aws::KinesisFeed::new(aws.clients.kinesis.clone(), &aws.stream)),
        "mixed load",
    );
    let mut config = Config::for_local(&aws.table, &aws.stream);
    config.enroll_rate_limit = 1_000;
    let app = Arc::new(App::new(&backend, config));

    // Seed: the sample organizations and projects, plus per user an invite to acme (org 1) and one to
    // secure (org 2, requires 2FA), and a few invites to org 9 that several users race for.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed: Seed =
        serde_json::from_str(&std::fs::read_to_string(root.join("events/seed.json")).unwrap()).unwrap();
    let now_ms = postflow::scenario::now_secs() * 1000;
    load_seed(table.as_ref(), &seed, now_ms).await.unwrap();
    let mut members = Vec::new();
    for i in 0..USERS {
        for (id, org) in [(7000 + i, 1), (7100 + i, 2)] {
            members.push(json!({"id": id, "organization_id": org, "email": format!("ml{i}-{org}@example.com"), "role": "member", "token": TOKEN}));
        }
    }
    for j in 0..CONTESTED {
        members.push(json!({"id": 7200 + j, "organization_id": 9, "email": format!("contested{j}@example.com"), "role": "member", "token": TOKEN}));
    }
    let extra: Seed = serde_json::from_value(json!({
        "organizations": [{"id": 9, "slug": "mixed", "name": "Mixed Load"}],
        "members": members,
    }))
    .unwrap();
    load_seed(table.as_ref(), &extra, now_ms).await.unwrap();

    // The load, all at once.
    let mut tasks: Vec<tokio::task::JoinHandle<(String, Vec<u16>)>> = Vec::new();
    // The aggregation runs beside the load, as the event-source mapping does (a batch per shard every
    // 200 ms here): it counts the events and marks them streamed, which turns an in-flight duplicate's
    // 503 into a duplicate's 200.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let aggregation = {
        let (a, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                a.aggregate().await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    for i in 0..USERS {
        let user = format!("ml{i}");
        let a = app.clone();
        let u = user.clone();
        tasks.push(tokio::spawn(async move {
            let req = accept_req("POST", "acme", 7000 + i, &u);
            let (x, y) = tokio::join!(a.accept.handle_api(&req), a.accept.handle_api(&req));
            ("own invite".into(), vec![x.status, y.status])
        }));
        let a = app.clone();
        let u = user.clone();
        tasks.push(tokio::spawn(async move {
            let r = a.accept.handle_api(&accept_req("POST", "mixed", 7200 + i % CONTESTED, &u)).await;
            (format!("contested {}", i % CONTESTED), vec![r.status])
        }));
        let a = app.clone();
        tasks.push(tokio::spawn(async move { (format!("2fa {i}"), enroll_user(a, user, 7100 + i).await) }));
    }
    for n in 0..(EVENTS + EVENTS / 2) {
        let a = app.clone();
        // Ids repeat (the last third re-sends earlier ids); projects alternate.
        let id = n % EVENTS;
        let (project, key) = if id.is_multiple_of(2) {
            (42, "c0ffee0c0ffee0c0ffee0c0ffee0c0ff")
        } else {
            (43, "0123456789abcdef0123456789abcdef")
        };
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            // An SDK retries on 503 (a duplicate in flight holds the event's lease).
            for _ in 0..40 {
                let r = a.save.handle_api(&event_req(project, key, id)).await;
                statuses.push(r.status);
                if r.status != 503 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            (format!("event {n}"), statuses)
        }));
    }
    let mut outcomes: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for t in tasks {
        let (what, statuses) = t.await.unwrap();
        outcomes.entry(what).or_default().extend(statuses);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    aggregation.await.unwrap();
    app.aggregate().await;

    // Every request ended well: own invites 204 (the second of two concurrent POSTs may get "member
    // already exists" if it lost the race in flight, or 204 as an idempotent retry); contested: one 204
    // per invite, the rest 400; 2FA: at least one 204 per user; events: 200 in the end.
    let own = &outcomes["own invite"];
    assert!(own.iter().all(|s| *s == 204 || *s == 400), "{own:?}");
    assert!(own.iter().filter(|s| **s == 204).count() >= USERS as usize);
    for j in 0..CONTESTED {
        let c = &outcomes[&format!("contested {j}")];
        assert_eq!(c.iter().filter(|s| **s == 204).count(), 1, "contested invite {j}: {c:?}");
        assert!(c.iter().all(|s| *s == 204 || *s == 400), "{c:?}");
    }
    for i in 0..USERS {
        let twofa = &outcomes[&format!("2fa {i}")];
        assert!(twofa.iter().all(|s| *s == 204 || *s == 400), "{twofa:?}");
        assert!(twofa.contains(&204), "user {i}: the 2FA enrollment happened: {twofa:?}");
    }
    for n in 0..(EVENTS + EVENTS / 2) {
        let event = &outcomes[&format!("event {n}")];
        assert!(event.iter().all(|s| *s == 200 || *s == 503), "{event:?}");
        assert_eq!(event.last(), Some(&200), "event request {n}: 200 in the end: {event:?}");
    }

    // The invariant checker over everything.
    let items = postflow::invariants::scan_table(&aws.clients.dynamodb, &aws.table).await.unwrap();
    let records = read_all_records(&aws.clients.kinesis, &aws.stream).await.unwrap();
    let report = postflow::invariants::check(&items, &records);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "MIXED LOAD: {} requests; {:?}",
        outcomes.values().map(Vec::len).sum::<usize>(),
        report.counts
    );

    // Exactly-once totals.
    assert_eq!(records.len(), EVENTS as usize, "every distinct event streamed once");
    // Acceptances: each user's own acme invite, their secure invite (through enrollment), and one
    // winner per contested invite.
    assert_eq!(report.counts["audit entries"], (2 * USERS + CONTESTED) as usize);
    // Every user: a TOTP authenticator and one recovery set (2 each).
    assert_eq!(report.counts["authenticators"], 2 * USERS as usize);
}
