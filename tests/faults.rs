//! Injected faults, for every function and every AWS call a request makes (DynamoDB Local + ministack,
//! mandatory in CI). For each call `k` of the request and each fault — throttling, HTTP 500 before the
//! server acts, the answer lost **after** the server acted — the call fails once (the SDK retries it
//! transparently) or on every attempt (the function must answer 503 + `Retry-After`). The request is also
//! abandoned as soon as call `k` has started (it may be in flight or already answered), as a Lambda
//! timeout would cut it. Then the client retries the
//! same request without faults, and the invariants of that flow are checked: exactly-once results, no
//! half-written state.
//!
//! Flows: accept-invite POST, enroll-authenticator POST (TOTP, with recovery codes and the activity),
//! save-event POST (a new group: release, environment, group, marker, stream record).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{claims, request};
use postflow::backend::{App, Backend};
use serde_json::{Value, json};
use shared::adapters::aws::{DynamoRateLimiter, kinesis_stream, read_all_records};
use shared::adapters::dynamo_table::DynamoTable;
use shared::config::Config;
use shared::domain::otp::Totp;
use shared::domain::user::InterfaceType;
use shared::faults::{Fault, FaultInjector, FaultRule};
use shared::http::{ApiRequest, Reply};
use shared::secret::Secret;
use shared::storage::item::ItemExt;
use shared::storage::keys;
use shared::storage::seed::{Seed, load_seed};
use shared::storage::table::Table;
use shared::storage::users::load_user;

const DSN_KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";
const TOKEN: &str = "8d3f7a1c2b9e4f6051a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

struct Env {
    backend: Backend,
    faults: FaultInjector,
    table: Arc<dyn Table>,
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    config: Config,
    /// Without faults, for the invariant checker's scan.
    dynamodb: aws_sdk_dynamodb::Client,
    table_name: String,
}

async fn env(test: &str) -> Option<Env> {
    let aws = shared::testing::aws_env(test).await?;
    let faults = FaultInjector::default();
    // The SDK's standard retries (3 attempts), with short back-offs so the suite stays quick.
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(2))
        .with_max_backoff(Duration::from_millis(20));
    let sdk = shared::adapters::aws::config_loader().retry_config(retry).load().await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(faults.clone()).build(),
    );
    let kin = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&sdk).interceptor(faults.clone()).build(),
    );
    let table: Arc<dyn Table> = Arc::new(DynamoTable::new(ddb.clone(), &aws.table));
    let backend = Backend::with(
        table.clone(),
        Arc::new(DynamoRateLimiter::new(ddb, &aws.table)),
        Arc::new(kinesis_stream(kin.clone(), &aws.stream, 3)),
        Arc::new(shared::adapters::aws::KinesisFeed::new(kin, &aws.stream)),
        "DynamoDB Local + ministack with injected faults",
    );
    let mut config = Config::for_local(&aws.table, &aws.stream);
    config.enroll_rate_limit = 10_000;
    // An abandoned save holds the event's publishing lease; a short one lets the retries below get past it.
    config.event_lease_secs = 1;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed: Seed =
        serde_json::from_str(&std::fs::read_to_string(root.join("events/seed.json")).unwrap()).unwrap();
    load_seed(table.as_ref(), &seed, postflow::scenario::now_secs() * 1000).await.unwrap();
    Some(Env {
        backend,
        faults,
        table,
        kinesis: aws.clients.kinesis.clone(),
        stream: aws.stream,
        config,
        dynamodb: aws.clients.dynamodb.clone(),
        table_name: aws.table,
    })
}

/// How a case fails the request.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Call `k` fails once; the SDK retries it.
    Once(Fault),
    /// Call `k` fails on every attempt.
    Always(Fault),
    /// The request is abandoned once call `k` has started (a Lambda timeout): the call may be in flight
    /// or answered, so both "cut before" and "cut during/after" happen across runs.
    Abandon,
}

fn modes() -> Vec<Mode> {
    let mut m: Vec<Mode> = Fault::ALL.iter().map(|f| Mode::Once(*f)).collect();
    m.extend(Fault::ALL.iter().map(|f| Mode::Always(*f)));
    m.push(Mode::Abandon);
    m
}

/// The case of round `round` (≥ 1) over `n` calls: which call `k` (1-based) fails, and how; `None`
/// once every call has had every mode.
fn case_at(round: u64, n: usize) -> Option<(usize, Mode)> {
    let all = modes();
    let idx = (round - 1) as usize;
    (idx < n * all.len()).then(|| (idx / all.len() + 1, all[idx % all.len()]))
}

impl Mode {
    /// The fault rule for call `k` (none for `Abandon`).
    fn rule(self, k: usize) -> Option<FaultRule> {
        match self {
            Mode::Once(fault) => Some(FaultRule { call: Some(k), operation: None, fault, attempts: 1 }),
            Mode::Always(fault) => Some(FaultRule { call: Some(k), operation: None, fault, attempts: 3 }),
            Mode::Abandon => None,
        }
    }
}

/// Awaits `fut`; with `abandon_at`, drops it as soon as that call has started (`None`), as a Lambda
/// timeout cuts a request around an await point.
async fn abandonable<T>(
    fut: impl std::future::Future<Output = T>,
    faults: &FaultInjector,
    abandon_at: Option<usize>,
) -> Option<T> {
    let Some(k) = abandon_at else { return Some(fut.await) };
    let watch = async {
        while faults.calls().len() < k {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    };
    tokio::select! {
        r = fut => Some(r),
        () = watch => None,
    }
}

/// One flow: `prepare` (no faults) returns the request; `run` sends it; `check` verifies the invariants
/// after the retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Accept,
    Enroll,
    Save,
}

impl Flow {
    fn ok_status(self) -> u16 {
        match self {
            Flow::Accept | Flow::Enroll => 204,
            Flow::Save => 200,
        }
    }
}

/// Runs `req` on the flow's handler; with `abandon_at`, drops the future when that call starts.
async fn run(
    app: &App,
    flow: Flow,
    req: &ApiRequest,
    faults: &FaultInjector,
    abandon_at: Option<usize>,
) -> Option<Reply> {
    let fut = async {
        match flow {
            Flow::Accept => app.accept.handle_api(req).await,
            Flow::Enroll => app.enroll.handle_api(req).await,
            Flow::Save => app.save.handle_api(req).await,
        }
    };
    abandonable(fut, faults, abandon_at).await
}

/// Per case: the identifiers the case owns (so cases share one table without seeing each other).
struct Case {
    user: String,
    member: u64,
    event_id: String,
}

async fn prepare(e: &Env, app: &App, flow: Flow, case: &Case) -> ApiRequest {
    match flow {
        Flow::Accept => {
            // A fresh pending invite to acme (no 2FA) for this case's user.
            let seed = json!({"members": [{"id": case.member, "organization_id": 1, "email": format!("{}@example.com", case.user), "role": "member", "token": TOKEN}]});
            let seed: Seed = serde_json::from_value(seed).unwrap();
            load_seed(e.table.as_ref(), &seed, postflow::scenario::now_secs() * 1000).await.unwrap();
            let member = case.member.to_string();
            request(
                "POST",
                &format!("/api/0/accept-invite/acme/{member}/{TOKEN}/"),
                &[("organization_id_or_slug", "acme"), ("member_id", &member), ("token", TOKEN)],
                Some(claims(&case.user)),
                &Value::Null,
            )
        }
        Flow::Enroll => {
            let path = "/api/0/users/me/authenticators/totp/enroll/";
            let params = [("user_id", "me"), ("interface_id", "totp")];
            let r = app
                .enroll
                .handle_api(&request("GET", path, &params, Some(claims(&case.user)), &Value::Null))
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let secret = r.json_body()["secret"].as_str().unwrap().to_owned();
            let totp = Totp::authenticator_app(&Secret::new(secret.clone())).unwrap();
            let code = totp.code_at_counter(totp.counter_at(postflow::scenario::now_secs()) as u64);
            request("POST", path, &params, Some(claims(&case.user)), &json!({"secret": secret, "otp": code}))
        }
        Flow::Save => {
            let body = json!({
                "event_id": case.event_id,
                "message": format!("fault case {}", case.event_id),
                "level": "error",
                "platform": "python",
                "release": "faults@1.0.0",
                "environment": "faults",
            });
            let mut req = request("POST", "/api/42/store/", &[("project_id", "42")], None, &body);
            req.headers.push((
                "x-sentry-auth".into(),
                format!("Sentry sentry_key={DSN_KEY}, sentry_version=7, sentry_client=faults/1.0"),
            ));
            req
        }
    }
}

/// The flow's invariants for this case, after the client's retry. Returns the stream copies of the
/// case's event (save-event; 1 otherwise). `lost_put_records`: a PutRecords answer was lost.
async fn check(e: &Env, flow: Flow, case: &Case, label: &str, lost_put_records: bool) -> usize {
    match flow {
        Flow::Accept => {
            let m = e.table.get(&keys::member(case.member)).await.unwrap().expect("member row");
            let m = shared::storage::orgs::parse_member(&m).unwrap();
            assert_eq!(m.user_id.as_deref(), Some(case.user.as_str()), "{label}: bound to the user");
            assert!(m.email.is_none() && !m.is_pending(), "{label}: not pending");
            let audit = e.table.query(&keys::org_pk(1), Some("AUDIT#")).await.unwrap();
            let mine = audit.iter().filter(|a| a.n("target_object").ok() == Some(case.member as i64)).count();
            assert_eq!(mine, 1, "{label}: one MEMBER_ACCEPT audit entry");
            assert!(
                e.table.get(&keys::member_joined(1, case.member)).await.unwrap().is_some(),
                "{label}: member_joined"
            );
            let u = load_user(e.table.as_ref(), &case.user).await.unwrap();
            assert_eq!(u.memberships.len(), 1, "{label}: one membership");
            1
        }
        Flow::Enroll => {
            let u = load_user(e.table.as_ref(), &case.user).await.unwrap();
            let count = |k| u.authenticators.iter().filter(|a| a.kind == k).count();
            assert_eq!(count(InterfaceType::Totp), 1, "{label}: one TOTP authenticator");
            assert_eq!(count(InterfaceType::Recovery), 1, "{label}: one recovery set");
            let acts = e.table.query(&format!("USERSEC#{}", case.user), None).await.unwrap();
            assert_eq!(acts.len(), 1, "{label}: one mfa-added activity");
            assert!(
                u.pending_secret(InterfaceType::Totp, postflow::scenario::now_secs()).is_none(),
                "{label}: secret consumed"
            );
            1
        }
        Flow::Save => {
            let records: Vec<Value> = read_all_records(&e.kinesis, &e.stream)
                .await
                .unwrap()
                .iter()
                .map(|r| serde_json::from_slice::<Value>(&r.data).unwrap())
                .collect();
            let mine: Vec<&Value> =
                records.iter().filter(|v| v[2]["event_id"] == case.event_id.as_str()).collect();
            assert!(!mine.is_empty(), "{label}: streamed");
            // Kinesis has no idempotent put: when a PutRecords answer is lost after the records were
            // written, a retry writes the event again. Copies agree on everything but the receive time
            // of the request that published them (a retried send is a new receipt, as in Sentry, whose
            // storage keeps one row per event id); consumers dedupe on event_id.
            let strip = |v: &Value| {
                let mut v = v.clone();
                v[2].as_object_mut().unwrap().remove("datetime");
                let data = v[2]["data"].as_object_mut().unwrap();
                data.remove("received");
                data.remove("timestamp");
                v
            };
            assert!(mine.iter().all(|v| strip(v) == strip(mine[0])), "{label}: copies agree");
            if lost_put_records {
                assert!(mine.len() <= 5, "{label}: {} copies", mine.len());
            } else {
                let times: Vec<&Value> = mine.iter().map(|v| &v[2]["datetime"]).collect();
                assert_eq!(mine.len(), 1, "{label}: streamed exactly once: {times:?}");
            }
            let group = mine[0][2]["group_id"].as_u64().expect("group id");
            // What aggregate-events does on AWS: count the stream (idempotently: every round re-reads it).
            let pump = shared::save::aggregate::Pump::new(e.backend.table.clone(), e.backend.feed.clone());
            pump.drain(postflow::scenario::now_secs()).await.expect("aggregation");
            let g =
                shared::save::aggregate::group_view(e.table.as_ref(), group).await.unwrap().expect("group");
            let events_in_group: std::collections::BTreeSet<&str> = records
                .iter()
                .filter(|v| v[2]["group_id"] == group)
                .filter_map(|v| v[2]["event_id"].as_str())
                .collect();
            assert_eq!(g.times_seen, events_in_group.len() as i64, "{label}: counted once");
            mine.len()
        }
    }
}

async fn suite(flow: Flow, test: &str) {
    use std::io::Write;
    let Some(e) = env(test).await else { return };
    // A dry run counts the calls of one request.
    let mut n = 0;
    let mut calls_seen: Vec<String> = Vec::new();
    let mut figures: BTreeMap<&'static str, usize> = BTreeMap::new();
    for round in 0.. {
        let case = Case {
            user: format!("fu{round}"),
            member: 5000 + round,
            event_id: format!("{:032x}", 0xfa17_0000_u64 + round),
        };
        let app = App::new(&e.backend, e.config.clone());
        let req = prepare(&e, &app, flow, &case).await;
        if round == 0 {
            e.faults.reset();
            let r = run(&app, flow, &req, &e.faults, None).await.unwrap();
            assert_eq!(r.status, flow.ok_status(), "dry run: {:?}", r.body);
            calls_seen = e.faults.calls();
            n = calls_seen.len();
            let _ = writeln!(std::io::stderr(), "FAULTS {flow:?} calls: {:?}", e.faults.calls());
            assert!(n >= 2, "{flow:?} makes {n} calls");
            check(&e, flow, &case, "dry run", false).await;
            continue;
        }
        let Some((k, mode)) = case_at(round, n) else { break };
        let label = format!("{flow:?} call {k}/{n} {mode:?}");
        let first = match mode.rule(k) {
            Some(rule) => {
                e.faults.set(vec![rule]);
                let r = run(&app, flow, &req, &e.faults, None).await.unwrap();
                assert!(!e.faults.injected().is_empty(), "{label}: a fault was injected");
                *figures.entry("faults injected").or_default() += e.faults.injected().len();
                Some(r)
            }
            None => {
                e.faults.reset();
                let r = run(&app, flow, &req, &e.faults, Some(k)).await;
                *figures.entry("requests abandoned").or_default() += usize::from(r.is_none());
                r
            }
        };
        e.faults.reset();
        if let Some(r) = &first {
            // Success, or a retryable 503 with Retry-After; never a 500 or a misleading 4xx.
            let ok = r.status == flow.ok_status() || (r.status == 503 && r.header("retry-after").is_some());
            assert!(ok, "{label}: answered {} {:?}", r.status, r.body);
            if matches!(mode, Mode::Once(_)) {
                assert_eq!(
                    r.status,
                    flow.ok_status(),
                    "{label}: one failed attempt is retried transparently"
                );
            }
            *figures.entry(if r.status == 503 { "answered 503" } else { "answered ok" }).or_default() += 1;
        }
        // The client retries the same request (after Retry-After, as SDKs do): the result converges.
        // Meanwhile the aggregation runs, as the event-source mapping does in the background.
        let app = App::new(&e.backend, e.config.clone());
        if flow == Flow::Save {
            app.aggregate().await;
        }
        let mut again = run(&app, flow, &req, &e.faults, None).await.unwrap();
        let mut statuses = vec![again.status];
        for _ in 0..5 {
            if again.status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(600)).await;
            if flow == Flow::Save {
                app.aggregate().await;
            }
            again = run(&app, flow, &req, &e.faults, None).await.unwrap();
            statuses.push(again.status);
        }
        // The retry succeeds — also after a first success: the same answer again (a TOTP enrollment or
        // an acceptance whose answer was lost is idempotent; a duplicate event id is 200).
        assert_eq!(again.status, flow.ok_status(), "{label}: the retry succeeds: {:?}", again.body);
        // The request may have lost track of whether its record reached the stream — the PutRecords
        // answer was lost, the request was cut during or right after PutRecords, or the "streamed" mark
        // failed: the retry may publish the event again (at-least-once on the stream, counted once).
        let put = calls_seen.iter().position(|op| op == "PutRecords").map_or(usize::MAX, |i| i + 1);
        let clean_before_put = k == put && matches!(mode, Mode::Always(Fault::Throttle | Fault::ServerError));
        // A client that saw a failure (a 503, or no answer) cannot know either; a request answered with
        // success at once must have streamed its event exactly once.
        let lost = (k >= put
            && !matches!(mode, Mode::Once(Fault::Throttle | Fault::ServerError))
            && !clean_before_put)
            || first.as_ref().is_none_or(|r| r.status != flow.ok_status())
            || statuses.len() > 1;
        let copies = check(&e, flow, &case, &label, lost).await;
        *figures.entry("duplicate stream records (lost PutRecords answers)").or_default() += copies - 1;
        *figures.entry("cases").or_default() += 1;
    }
    // The figures go to RELIABILITY.md.
    let _ = writeln!(std::io::stderr(), "FAULTS {flow:?}: {n} calls per request; {figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_invite_under_faults() {
    suite(Flow::Accept, "accept_invite_under_faults").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_under_faults() {
    suite(Flow::Enroll, "enroll_under_faults").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_event_under_faults() {
    suite(Flow::Save, "save_event_under_faults").await;
}

/// The aggregation (what `aggregate-events` does per shard batch) under the same faults: for each call
/// `k` of one batch — the stream reads, the claims on the markers, the aggregate-item reads and
/// conditional writes, the short-id block and the group's short id — the call fails once (retried by
/// the SDK), on every attempt (the batch fails and is delivered again), or the batch is abandoned when
/// call `k` starts (a killed invocation). Then the batch is delivered again without faults, and the
/// invariant checker runs over the whole table and stream: every group's aggregated `times_seen`,
/// `first_seen`/`last_seen`, `new_groups` and `new_issues_count` equal what the stream carries —
/// nothing counted twice, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_under_faults() {
    use std::io::Write;
    let Some(e) = env("aggregation_under_faults").await else { return };
    let app = App::new(&e.backend, e.config.clone());
    let pump = shared::save::aggregate::Pump::new(e.backend.table.clone(), e.backend.feed.clone());
    let now = postflow::scenario::now_secs();
    let (mut n, mut figures) = (0usize, BTreeMap::<&'static str, usize>::new());
    for round in 0u64.. {
        // One new event (a new group of release faults@1.0.0) per case, saved without faults.
        let case =
            Case { user: String::new(), member: 0, event_id: format!("{:032x}", 0xa9_0000_u64 + round) };
        let req = prepare(&e, &app, Flow::Save, &case).await;
        e.faults.reset();
        assert_eq!(app.save.handle_api(&req).await.status, 200);
        if round == 0 {
            e.faults.reset();
            pump.drain(now).await.expect("dry run");
            n = e.faults.calls().len();
            let _ = writeln!(std::io::stderr(), "FAULTS Aggregate calls: {:?}", e.faults.calls());
            assert!(n >= 5, "a batch makes {n} calls");
            continue;
        }
        let Some((k, mode)) = case_at(round, n) else { break };
        let label = format!("aggregation call {k}/{n} {mode:?}");
        e.faults.reset();
        let abandon_at = match mode.rule(k) {
            Some(rule) => {
                e.faults.set(vec![rule]);
                None
            }
            None => Some(k),
        };
        let outcome = match abandonable(pump.drain(now), &e.faults, abandon_at).await {
            Some(Ok(_)) => "batches ok",
            Some(Err(_)) => "batches failed",
            None => "batches abandoned",
        };
        *figures.entry(outcome).or_default() += 1;
        *figures.entry("faults injected").or_default() += e.faults.injected().len();
        e.faults.reset();
        // The mapping delivers the batch again (from the last committed position) until it succeeds. An
        // abandoned call's write may still land after the abandonment (the request was already sent),
        // so the first re-delivery can find an aggregate item changed under it and fail the batch, as
        // on AWS; the mapping then delivers it again. Five deliveries are far more than that needs.
        let mut delivery = 1;
        while let Err(err) = pump.drain(now).await {
            assert!(delivery < 5, "{label}: re-delivery {delivery} failed: {err}");
            *figures.entry("re-deliveries after a late write").or_default() += 1;
            delivery += 1;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let items = postflow::invariants::scan_table(&e.dynamodb, &e.table_name).await.unwrap();
        let records = read_all_records(&e.kinesis, &e.stream).await.unwrap();
        let report = postflow::invariants::check(&items, &records);
        assert!(report.violations.is_empty(), "{label}: {:#?}", report.violations);
        *figures.entry("cases").or_default() += 1;
    }
    let _ = writeln!(std::io::stderr(), "FAULTS Aggregate: {n} calls per batch; {figures:?}");
}
