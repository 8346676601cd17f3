//! Sentry's `EventManager.save` behaviours (spec §10) through the handler, with the stream records read
//! back (from ministack with `GetRecords` on the aws variant).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use shared::grouping::config::GroupingConfig;
use shared::save::aggregate::counter;
use shared::storage::keys;

async fn send_event(env: &Env, ev: &Value) -> shared::http::Reply {
    let r = env.send(&envelope(42, KEY, "event", ev)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r
}

fn tags(m: &Value) -> Vec<(String, String)> {
    m[2]["data"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap().to_owned(), t[1].as_str().unwrap().to_owned()))
        .collect()
}

fn tag(m: &Value, k: &str) -> Option<String> {
    tags(m).into_iter().find(|(kk, _)| kk == k).map(|(_, v)| v)
}

/// test_dupe_message_id (DECISIONS 10): the same event id twice → 200 with the same id both times,
/// saved and streamed once.
async fn dupe_message_id(env: Env) {
    let ev = make_event(json!({"message": "first"}));
    let a = send_event(&env, &ev).await;
    let mut again = ev.clone();
    again["message"] = json!("second");
    let b = send_event(&env, &again).await;
    assert_eq!(a.json_body(), b.json_body());
    let msgs = env.messages().await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0][2]["data"]["logentry"]["formatted"], "first");
    let gid = msgs[0][2]["group_id"].as_u64().unwrap();
    assert_eq!(env.group(gid).await.times_seen, 1);
}
both_backends!(dupe_message_id_is_saved_once, dupe_message_id);

/// test_group_environment + eventstream `test`: message "foo" → primary hash md5("foo"); flags on the
/// first event of a group/environment, all false on the second; records keyed by event id (not by
/// project id as on Sentry's Kafka: a project's storm must not share one shard).
async fn group_environment(env: Env) {
    let ev = |id: &str| {
        make_event(json!({"event_id": id, "message": "foo", "environment": "beta", "release": "1.0"}))
    };
    send_event(&env, &ev(&uuid_hex())).await;
    send_event(&env, &ev(&uuid_hex())).await;
    let records = env.records().await;
    let msgs = env.messages().await;
    assert_eq!(msgs.len(), 2);
    for (r, m) in records.iter().zip(&msgs) {
        assert_eq!(r.partition_key, m[2]["event_id"].as_str().unwrap());
        assert_eq!(m[0], 2);
        assert_eq!(m[1], "insert");
        assert_eq!(m[2]["primary_hash"], "acbd18db4cc2f85cedef654fccc4a4d8");
        assert_eq!(m[3]["queue"], "post_process_errors");
        assert_eq!(m[3]["skip_consume"], false);
        assert_eq!(tag(m, "environment").as_deref(), Some("beta"));
        assert_eq!(tag(m, "sentry:release").as_deref(), Some("1.0"));
        assert_eq!(tag(m, "level").as_deref(), Some("error"));
    }
    let (first, second) = (&msgs[0][3], &msgs[1][3]);
    assert_eq!(
        (first["is_new"].clone(), first["is_regression"].clone(), first["is_new_group_environment"].clone()),
        (json!(true), json!(false), json!(true))
    );
    assert_eq!(first["group_states"][0]["is_new"], true);
    assert_eq!(first["group_states"][0]["id"], msgs[0][2]["group_id"]);
    assert_eq!(
        (
            second["is_new"].clone(),
            second["is_regression"].clone(),
            second["is_new_group_environment"].clone()
        ),
        (json!(false), json!(false), json!(false))
    );
    assert_eq!(msgs[0][2]["group_id"], msgs[1][2]["group_id"]);
    // test_updates_group_metadata: times_seen 2.
    let gid = msgs[0][2]["group_id"].as_u64().unwrap();
    let g = env.group(gid).await;
    assert_eq!(g.times_seen, 2);
    assert_eq!(g.title, "foo");
    // GroupEnvironment, GroupRelease, ReleaseProjectEnvironment rows.
    assert!(env.table.get(&keys::group_env(gid, "beta")).await.unwrap().is_some());
    assert!(env.table.get(&keys::group_release(gid, "1.0", "beta")).await.unwrap().is_some());
    let rpe = keys::release_project_environment(42, "1.0", "beta");
    assert_eq!(counter(env.table.as_ref(), &rpe, "new_issues_count").await.unwrap(), 1);
}
both_backends!(group_environment_flags_and_hash, group_environment);

/// test_release_with_empty_version, test_invalid_environment, test_environment.
async fn releases_and_environments(env: Env) {
    for r in ["", " ", "\t", "\n"] {
        send_event(&env, &make_event(json!({"message": "rel", "release": r}))).await;
    }
    assert!(env.table.query("ORG#1", Some("RELEASE#")).await.unwrap().is_empty(), "no Release rows");
    send_event(&env, &make_event(json!({"message": "env", "environment": "bad/name"}))).await;
    let msgs = env.messages().await;
    assert_eq!(tag(msgs.last().unwrap(), "environment"), None, "Relay strips the invalid environment");
    assert!(
        env.table.get(&keys::environment(1, "")).await.unwrap().is_some(),
        "no environment = the \"\" row"
    );
    // Same messages group together (no release involved).
    let groups: std::collections::BTreeSet<u64> =
        msgs.iter().take(4).map(|m| m[2]["group_id"].as_u64().unwrap()).collect();
    assert_eq!(groups.len(), 1);
}
both_backends!(releases_and_environments, releases_and_environments);

/// test_transaction_event_type, test_ignores_fingerprint_on_transaction_event, span grouping.
async fn transactions(env: Env) {
    let id = uuid_hex();
    let tx = json!({
        "event_id": id, "type": "transaction", "transaction": "/api/checkout", "platform": "python",
        "start_timestamp": NOW as f64 - 1.5, "timestamp": NOW as f64, "release": "2.0", "environment": "prod",
        "fingerprint": ["should-be-ignored"],
        "contexts": {"trace": {"trace_id": "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5", "span_id": "a0b1c2d3e4f5a6b7", "op": "http.server"}},
        "spans": [{"span_id": "b0b1c2d3e4f5a6b7", "parent_span_id": "a0b1c2d3e4f5a6b7", "trace_id": "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5",
                   "op": "db", "description": "SELECT 1", "start_timestamp": NOW as f64 - 1.0, "timestamp": NOW as f64 - 0.5}]
    });
    let r = env.send(&envelope(42, KEY, "transaction", &tx)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let records = env.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].partition_key, id, "transactions are keyed by event id");
    let m: Value = serde_json::from_slice(&records[0].data).unwrap();
    assert_eq!(m[2]["data"]["type"], "transaction");
    assert_eq!(m[2]["group_id"], Value::Null);
    assert_eq!(m[2]["primary_hash"], Value::Null);
    assert_eq!(m[3]["queue"], "post_process_transactions");
    assert_eq!(m[3]["group_states"], Value::Null);
    assert_eq!(m[2]["data"]["span_grouping_config"]["id"], "default:2022-10-27");
    assert_eq!(m[2]["data"]["spans"][0]["hash"].as_str().unwrap().len(), 16);
    assert!(m[2]["data"].get("hashes").is_none_or(|h| h.as_array().is_none_or(Vec::is_empty)));
    // Releases and environments are still associated.
    assert!(env.table.get(&keys::release_project_environment(42, "2.0", "prod")).await.unwrap().is_some());
    assert!(env.table.query("PROJECT#42", Some("HASH#")).await.unwrap().is_empty(), "no group hash");
}
both_backends!(transactions_are_not_grouped, transactions);

/// Custom fingerprints: same → one group; different → two (test_puts_events_with_matching_fingerprints…).
async fn fingerprints(env: Env) {
    for (msg, fp) in [("a", "fp-1"), ("b", "fp-1"), ("c", "fp-2")] {
        send_event(&env, &make_event(json!({"message": msg, "fingerprint": [fp]}))).await;
    }
    let msgs = env.messages().await;
    assert_eq!(msgs[0][2]["group_id"], msgs[1][2]["group_id"]);
    assert_ne!(msgs[0][2]["group_id"], msgs[2][2]["group_id"]);
    // Partial message match → different groups.
    send_event(&env, &make_event(json!({"message": "Dogs are great!"}))).await;
    send_event(&env, &make_event(json!({"message": "Dogs are really great!"}))).await;
    let msgs = env.messages().await;
    assert_ne!(msgs[3][2]["group_id"], msgs[4][2]["group_id"]);
}
both_backends!(fingerprints_decide_groups, fingerprints);

/// A resolved group receiving an event is a regression (the record says so once).
async fn regression(env: Env) {
    send_event(&env, &make_event(json!({"message": "regress me"}))).await;
    let gid = env.messages().await[0][2]["group_id"].as_u64().unwrap();
    assert!(env.handler.pipeline.saver.resolve_group(gid).await.unwrap());
    env.clock.advance_secs(60);
    send_event(&env, &make_event(json!({"message": "regress me", "timestamp": (NOW + 60) as f64}))).await;
    send_event(&env, &make_event(json!({"message": "regress me", "timestamp": (NOW + 61) as f64}))).await;
    let msgs = env.messages().await;
    assert_eq!(
        msgs.iter().map(|m| m[3]["is_regression"].as_bool().unwrap()).collect::<Vec<_>>(),
        [false, true, false]
    );
}
both_backends!(resolved_group_regresses, regression);

/// One snapshot for the record, whichever stream it was read back from (ids and times redacted).
fn assert_python_exception_snapshot(msg: &Value) {
    insta::assert_json_snapshot!("python_exception_record", msg, {
        "[2].group_id" => "[group_id]",
        "[2].group_ids[]" => "[group_id]",
        "[2].datetime" => "[datetime]",
        "[2].data.received" => "[received]",
        "[2].data.group_id" => "[group_id]",
        "[3].group_states[].id" => "[group_id]",
    });
}

/// The record of a real SDK exception, read back from the stream, as a snapshot (ids and times
/// redacted).
#[tokio::test]
async fn python_exception_record_snapshot() {
    let env = memory_env().await;
    assert_eq!(env.send(&fixture("python", "exception")).await.status, 200);
    let msg = &env.messages().await[0];
    assert_python_exception_snapshot(msg);
}

/// The same record read back from ministack's Kinesis with GetRecords matches the snapshot.
#[tokio::test]
async fn python_exception_record_snapshot_from_kinesis() {
    let Some(env) = aws_env("python_exception_record_snapshot_from_kinesis").await else { return };
    assert_eq!(env.send(&fixture("python", "exception")).await.status, 200);
    let msg = &env.messages().await[0];
    assert_python_exception_snapshot(msg);
}

/// The generic (issue-platform) path: the occurrence fingerprints, md5-ed per element, are the hashes;
/// the record is keyed by event id and queued for the issue platform. (SDKs never send this type —
/// Relay's normalization rewrites it — so the path is driven through `prepare` and the saver.)
#[tokio::test]
async fn generic_events_group_by_occurrence_fingerprints() {
    let env = memory_env().await;
    let id = uuid_hex();
    let ev = json!({
        "event_id": id, "type": "generic", "platform": "python", "level": "info", "timestamp": NOW as f64,
        "fingerprint": ["perf-n-plus-one", "checkout"], "message": "N+1 query", "received": NOW as f64,
    });
    let (mut job, event) =
        shared::save::prepare(ev, shared::ingest::EventKind::Event, 42, GroupingConfig::builtin());
    assert_eq!(job.kind, shared::save::SaveKind::Generic);
    assert_eq!(
        job.hashes,
        [
            shared::grouping::hashing::hash_from_values(["perf-n-plus-one"]),
            shared::grouping::hashing::hash_from_values(["checkout"])
        ]
    );
    job.project = shared::domain::project::Project {
        id: 42,
        organization_id: 1,
        slug: "backend".into(),
        ..Default::default()
    };
    let r = match env.handler.pipeline.saver.begin(&job, NOW).await.unwrap() {
        shared::save::Begin::Saved(r) => r,
        other => panic!("{other:?}"),
    };
    assert!(r.group.unwrap().is_new);
    let rec = save_event::stream_record(&job, event, &r);
    assert_eq!(rec.partition_key, id, "generic events are keyed by event id");
    let m: Value = serde_json::from_slice(&rec.data).unwrap();
    assert_eq!(m[3]["queue"], "post_process_issue_platform");
    assert_eq!(m[2]["primary_hash"], job.hashes[0].as_str());
    // A second occurrence with the same fingerprint joins the group.
    let (mut job2, _) = shared::save::prepare(
        json!({"event_id": uuid_hex(), "type": "generic", "timestamp": NOW as f64, "fingerprint": ["perf-n-plus-one", "checkout"], "message": "N+1 query"}),
        shared::ingest::EventKind::Event,
        42,
        GroupingConfig::builtin(),
    );
    job2.project = job.project.clone();
    match env.handler.pipeline.saver.begin(&job2, NOW).await.unwrap() {
        shared::save::Begin::Saved(r2) => {
            assert_eq!((r2.group.unwrap().id, r2.group.unwrap().is_new), (r.group.unwrap().id, false))
        }
        other => panic!("{other:?}"),
    }
}

/// Per-project grouping settings (Sentry's project options `sentry:grouping_enhancements` and
/// `sentry:fingerprinting_rules`), stored with the project and applied by save-event before hashing:
/// project 44 ignores its `helper_*` frames and fingerprints database outages as one issue with a
/// custom title; project 42, without rules, groups the same events apart.
async fn project_grouping_rules(env: Env) {
    let frames = |helper: &str| {
        json!({"frames": [
            {"function": "main", "module": "app.main", "filename": "app/main.py", "in_app": true},
            {"function": helper, "module": "app.util", "filename": "app/util.py", "in_app": true},
        ]})
    };
    let error = |helper: &str| {
        make_event(
            json!({"exception": {"values": [{"type": "ValueError", "value": "bad", "stacktrace": frames(helper)}]}}),
        )
    };
    for (project, key) in [(44, RULES_KEY), (42, KEY)] {
        for helper in ["helper_a", "helper_b"] {
            let r = env.send(&envelope(project, key, "event", &error(helper))).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    }
    let msgs = env.messages().await;
    let group = |i: usize| msgs[i][2]["group_id"].as_u64().unwrap();
    assert_eq!(group(0), group(1), "project 44's rule ignores the helper frames");
    assert_ne!(group(2), group(3), "project 42 has no rules: the helpers decide");
    assert_eq!(
        msgs[0][2]["data"]["exception"]["values"][0]["stacktrace"]["frames"][1]["function"],
        "helper_a"
    );

    // A vendored module is out of app by the project rule (and Sentry records the original).
    let mut vendored = error("helper_a");
    vendored["exception"]["values"][0]["stacktrace"]["frames"][0]["module"] = json!("vendored.lib");
    assert_eq!(env.send(&envelope(44, RULES_KEY, "event", &vendored)).await.status, 200);
    let msgs = env.messages().await;
    let frame = &msgs[4][2]["data"]["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!((frame["in_app"].clone(), frame["data"]["orig_in_app"].clone()), (json!(false), json!(1)));

    // The fingerprinting rule: one issue for every outage, titled by the rule.
    for transaction in ["/checkout", "/cart"] {
        let ev = make_event(json!({
            "transaction": transaction,
            "exception": {"values": [{"type": "DatabaseUnavailable", "value": format!("db down in {transaction}")}]},
        }));
        assert_eq!(env.send(&envelope(44, RULES_KEY, "event", &ev)).await.status, 200);
    }
    let msgs = env.messages().await;
    let (a, b) = (&msgs[5][2], &msgs[6][2]);
    assert_eq!(a["group_id"], b["group_id"]);
    assert_eq!(a["primary_hash"], shared::grouping::hashing::hash_from_values(["system-down"]));
    assert_eq!(a["data"]["fingerprint"], json!(["system-down"]));
    assert_eq!(a["data"]["title"], "Database down: /checkout");
    assert_eq!(b["data"]["title"], "Database down: /cart");
    assert_eq!(a["data"]["_fingerprint_info"]["matched_rule"]["fingerprint"], json!(["system-down"]));
    // As in Sentry, the group takes the title of its latest event.
    assert_eq!(env.group(a["group_id"].as_u64().unwrap()).await.title, "Database down: /cart");
}
both_backends!(project_grouping_rules_apply_before_hashing, project_grouping_rules);

/// The de-duplication window is configurable (`EVENT_DEDUPE_SECS`, default Sentry's hour): within it a
/// repeated event id is answered and not saved again; the marker's TTL is the window, so once the TTL
/// sweeper (DynamoDB's, or the embedded store's in `postflow serve`, every 5 s) has dropped it, the id
/// is new — which is what bounds `postflow serve`'s memory under a long load.
#[tokio::test]
async fn the_dedupe_window_is_configurable() {
    let mut config = shared::config::Config::for_local("t", "s");
    config.event_dedupe_secs = 60;
    let table = std::sync::Arc::new(shared::adapters::memory::MemoryTable::default());
    let env = common::memory_env_on_with(table.clone(), config).await;
    let ev = make_event(json!({"message": "windowed"}));
    send_event(&env, &ev).await;
    env.clock.advance_secs(59);
    send_event(&env, &ev).await;
    assert_eq!(env.messages().await.len(), 1, "a repeat inside the window is not saved again");
    env.clock.advance_secs(2);
    assert!(table.sweep_expired(NOW + 61) >= 1, "the marker's TTL is the window");
    let mut later = ev.clone();
    later["timestamp"] = json!((NOW + 61) as f64);
    send_event(&env, &later).await;
    assert_eq!(env.messages().await.len(), 2, "after the window the event id is new again");
    let default = shared::config::Config::for_local("t", "s");
    assert_eq!(default.event_dedupe_secs, 3600);
}
