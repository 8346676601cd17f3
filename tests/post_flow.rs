//! Full flows across functions, through the same code path as `postflow replay`: the sample scenarios
//! in `events/` (the README's main job) on the embedded store and on DynamoDB Local, and the 2FA invite
//! flow with its resulting state checked item by item.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postflow::backend::{App, Backend};
use postflow::scenario::{load_scenario, plan, run_event};
use postflow::session::Session;
use shared::adapters::aws::{DynamoRateLimiter, kinesis_stream, read_all_records};
use shared::adapters::dynamo_table::DynamoTable;
use shared::config::Config;
use shared::domain::user::InterfaceType;
use shared::storage::keys;
use shared::storage::orgs::parse_member;
use shared::storage::seed::{Seed, load_seed};
use shared::storage::users::load_user;

fn events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

fn config() -> Config {
    Config::for_local("postflow", "postflow-events")
}

async fn seed(backend: &Backend, file: &Path) {
    let s: Seed = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    load_seed(backend.table.as_ref(), &s, postflow::scenario::now_secs() * 1000).await.unwrap();
}

/// Every scenario in `events/` passes: what `cargo run -- replay events/` (the README's main job) checks.
async fn replay_all(backend: &Backend) {
    let app = App::new(backend, config());
    let files = plan(&[events()]).unwrap();
    assert!(files.len() >= 3, "{files:?}");
    let mut steps = 0;
    for f in files {
        let (s, dir) = load_scenario(&f).unwrap();
        if let Some(seed_file) = &s.seed {
            seed(backend, &dir.join(seed_file)).await;
        }
        let mut session = Session::default();
        for step in &s.steps {
            let r = run_event(&app, &mut session, &dir.join(&step.event), step.expect.as_ref()).await;
            assert!(r.failure.is_none(), "{}: {} {:?} {}", f.display(), step.event, r.failure, r.response);
            steps += 1;
        }
    }
    assert!(steps >= 30);
}

#[tokio::test]
async fn sample_scenarios_pass_on_the_embedded_store() {
    let backend = Backend::embedded();
    replay_all(&backend).await;
    assert_stream_matches(&backend.records().await.unwrap());
}

/// The scenarios save 7 distinct events (5 errors/messages, 2 transactions, plus the store event) and
/// send one of them twice: every event id appears exactly once on the stream.
fn assert_stream_matches(records: &[shared::ports::StoredRecord]) {
    let mut ids = std::collections::BTreeMap::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
        assert_eq!(v[0], 2);
        assert_eq!(v[1], "insert");
        *ids.entry(v[2]["event_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        let ty = v[2]["data"]["type"].as_str().unwrap();
        // Every record is keyed by its event id (a project's storm spreads over all shards).
        assert_eq!(r.partition_key, v[2]["event_id"].as_str().unwrap());
        if ty == "transaction" {
            assert_eq!(v[3]["queue"], "post_process_transactions");
        } else {
            assert_eq!(v[3]["queue"], "post_process_errors");
        }
    }
    assert!(ids.values().all(|n| *n == 1), "{ids:?}");
    assert_eq!(ids.len(), 7, "{ids:?}");
}

#[tokio::test]
async fn sample_scenarios_pass_on_dynamodb_local() {
    let Some(env) = shared::testing::aws_env("sample_scenarios_pass_on_dynamodb_local").await else { return };
    let table = Arc::new(DynamoTable::new(env.clients.dynamodb.clone(), &env.table));
    let limiter = Arc::new(DynamoRateLimiter::new(env.clients.dynamodb.clone(), &env.table));
    let stream = Arc::new(kinesis_stream(env.clients.kinesis.clone(), &env.stream, 5));
    let feed = Arc::new(shared::adapters::aws::KinesisFeed::new(env.clients.kinesis.clone(), &env.stream));
    let backend = Backend::with(table, limiter, stream, feed, "DynamoDB Local + ministack");
    replay_all(&backend).await;
    // One record per saved event: the duplicate in the scenarios is not streamed twice.
    let records = read_all_records(&env.clients.kinesis, &env.stream).await.unwrap();
    assert_stream_matches(&records);
}

/// Org requires 2FA → accept GET says `needs2fa` and sets the cookie → POST accept is refused → GET +
/// POST enroll TOTP with a real code → the member is bound, recovery codes exist, the cookie is cleared.
#[tokio::test]
async fn two_factor_invite_flow() {
    let backend = Backend::embedded();
    seed(&backend, &events().join("seed.json")).await;
    let app = App::new(&backend, config());
    let mut session = Session::default();
    let run = |name: &str| events().join(name);

    let r = run_event(&app, &mut session, &run("accept-invite.get-2fa-required.json"), None).await;
    assert_eq!(r.status, Some(200));
    assert!(session.cookies.contains_key("postflow-invite"), "the pending invite is remembered");
    let r = run_event(&app, &mut session, &run("accept-invite.post-2fa-required.json"), None).await;
    assert_eq!(r.status, Some(400));
    let member = |b: &Backend| {
        let t = b.table.clone();
        async move { parse_member(&t.get(&keys::member(20)).await.unwrap().unwrap()).unwrap() }
    };
    assert!(member(&backend).await.is_pending());

    assert_eq!(
        run_event(&app, &mut session, &run("enroll-authenticator.get-totp.json"), None).await.status,
        Some(200)
    );
    assert!(session.secret.is_some());
    let r = run_event(&app, &mut session, &run("enroll-authenticator.post-totp.json"), None).await;
    assert_eq!(r.status, Some(204), "{}", r.response);

    let m = member(&backend).await;
    assert_eq!(m.user_id.as_deref(), Some("42"), "the member is bound");
    assert!(m.email.is_none());
    let u = load_user(backend.table.as_ref(), "42").await.unwrap();
    assert!(u.authenticator(InterfaceType::Totp).is_some());
    assert!(u.authenticator(InterfaceType::Recovery).is_some(), "recovery codes exist");
    assert!(!session.cookies.contains_key("postflow-invite"), "the cookie is cleared");
    assert_eq!(backend.table.query(&keys::org_pk(2), Some("AUDIT#")).await.unwrap().len(), 1);
}

/// Concurrent save-event requests each run the in-process aggregation (`App::aggregate`, what
/// `postflow serve` does after every save): one drain runs at a time and a request that finds one
/// running leaves its records to it. When every request has returned, every event is counted exactly
/// once: the invariants (a group's `times_seen` = its distinct streamed events, first/last seen, new
/// flags) hold over the whole table and stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_are_each_aggregated_once() {
    use postflow::backend::Function;
    use shared::http::ApiRequest;
    let backend = Backend::embedded();
    seed(&backend, &events().join("seed.json")).await;
    let app = Arc::new(App::new(&backend, config()));
    const EVENTS: usize = 96;
    let tasks: Vec<_> = (0..EVENTS)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let event = serde_json::json!({
                    // Numbers would be parameterized away by grouping: six words, six groups.
                    "message": format!("concurrent saves, {}", ["ash", "birch", "cedar", "elm", "fir", "oak"][i % 6]),
                    "level": "error",
                    "platform": "python",
                    "release": format!("app@1.{}", i % 3),
                    "environment": if i % 2 == 0 { "production" } else { "staging" },
                });
                let req = ApiRequest {
                    method: "POST".into(),
                    path: "/api/42/store/".into(),
                    path_params: [("project_id".to_owned(), "42".to_owned())].into(),
                    headers: vec![(
                        "x-sentry-auth".into(),
                        "Sentry sentry_key=c0ffee0c0ffee0c0ffee0c0ffee0c0ff, sentry_version=7".into(),
                    )],
                    body: event.to_string().into_bytes(),
                    ..Default::default()
                };
                app.invoke_api(Function::SaveEvent, &req).await.status
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // No further drain: what the requests ran is all the aggregation there is.
    let records = backend.records().await.unwrap();
    assert_eq!(records.len(), EVENTS);
    let items = backend.memory.as_ref().unwrap().dump().unwrap();
    let report = postflow::invariants::check(&items, &records);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let groups: std::collections::BTreeSet<u64> = records
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.data).unwrap()[2]["group_id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(groups.len(), 6);
}
