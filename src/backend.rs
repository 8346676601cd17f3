//! Adapters and handlers for the CLI, and routing of events to functions by the routes of
//! `template.yaml` (HTTP API path templates).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use accept_invite::AcceptInvite;
use enroll_authenticator::EnrollAuthenticator;
use lambda_http::{Body, Request, Response};
use save_event::SaveEvent;
use shared::adapters::aws::{AwsClients, DynamoRateLimiter, KinesisFeed, kinesis_stream, read_all_records};
use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::{
    MemoryRateLimiter, MemorySmsOutbox, MemoryStream, MemoryTable, memory_stream_with_retention,
};
use shared::backends::Backends;
use shared::config::Config;
use shared::domain::webauthn::Registrar;
use shared::http::ApiHandler;
use shared::ports::{EventStream, StoredRecord};
use shared::ports::{RateLimiter, SystemClock};
use shared::save::aggregate::{MemoryFeed, Pump, StreamFeed};
use shared::storage::table::Table;

/// The functions of the bundle (crate = binary = SAM `BuildProperties.Binary` = `events/` prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Function {
    AcceptInvite,
    EnrollAuthenticator,
    SaveEvent,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::AcceptInvite => "accept-invite",
            Self::EnrollAuthenticator => "enroll-authenticator",
            Self::SaveEvent => "save-event",
        }
    }

    /// The route templates of `template.yaml`, with their methods.
    pub fn routes(self) -> &'static [(&'static [&'static str], &'static str)] {
        match self {
            Self::AcceptInvite => {
                &[(&["GET", "POST"], "/api/0/accept-invite/{organization_id_or_slug}/{member_id}/{token}/")]
            }
            Self::EnrollAuthenticator => {
                &[(&["GET", "POST"], "/api/0/users/{user_id}/authenticators/{interface_id}/enroll/")]
            }
            Self::SaveEvent => &[
                (&["POST", "OPTIONS"], "/api/{project_id}/envelope/"),
                (&["POST", "OPTIONS"], "/api/{project_id}/store/"),
            ],
        }
    }

    /// Whether API Gateway's JWT authorizer guards `method` on this function's routes (the template's
    /// `DefaultAuthorizer`), i.e. the route names no authorizer of its own (`NONE`, or accept-invite
    /// GET's `OptionalJwtAuthorizer`, which lets anonymous requests through and passes a valid token's
    /// claims, as this emulation does with the local claims).
    pub fn requires_jwt(self, method: &str) -> bool {
        match self {
            Self::AcceptInvite => method != "GET",
            Self::EnrollAuthenticator => true,
            Self::SaveEvent => false,
        }
    }

    pub const ALL: [Function; 3] =
        [Function::AcceptInvite, Function::EnrollAuthenticator, Function::SaveEvent];
}

/// Matches a path against a route template; returns the path parameters.
pub fn match_route(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (ts, ps) in t.iter().zip(&p) {
        if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if ps.is_empty() {
                return None;
            }
            params.push((name.to_owned(), (*ps).to_owned()));
        } else if ts != ps {
            return None;
        }
    }
    Some(params)
}

/// Which function serves `method path`, with the path parameters.
pub fn route(method: &str, path: &str) -> Option<(Function, Vec<(String, String)>)> {
    Function::ALL.iter().find_map(|f| {
        f.routes().iter().find_map(|(methods, template)| {
            if !methods.contains(&method) {
                return None;
            }
            match_route(template, path).map(|params| (*f, params))
        })
    })
}

/// The storage behind the handlers.
pub struct Backend {
    pub table: Arc<dyn Table>,
    pub limiter: Arc<dyn RateLimiter>,
    pub stream: Arc<dyn EventStream>,
    /// Set for the embedded store (state can be saved and loaded).
    pub memory: Option<Arc<MemoryTable>>,
    pub memory_stream: Option<Arc<MemoryStream>>,
    /// Set with `--aws`: to read the stream back (`postflow tail`).
    pub kinesis: Option<(aws_sdk_kinesis::Client, String)>,
    /// The stream as the aggregation reads it (in-process here; `aggregate-events` on AWS).
    pub feed: Arc<dyn StreamFeed>,
    pub description: String,
}

/// Records the embedded stream keeps (`POSTFLOW_STREAM_RETENTION` overrides): enough for `tail` and
/// for the in-process aggregation, which reads the stream after every request. A record of a real SDK
/// event takes ~10 KiB, so 10,000 hold ~100 MiB (100,000 held 1.2 GiB under load, and the process
/// spent its first 12 s at full speed faulting in fresh pages for them: BENCHMARKS §9).
pub const DEFAULT_STREAM_RETENTION: usize = 10_000;

/// The in-memory stream as one shard for the aggregation.
pub fn memory_feed(stream: &Arc<MemoryStream>) -> Arc<dyn StreamFeed> {
    let s = stream.clone();
    Arc::new(MemoryFeed::new(move |i| s.sink().records_since(i), |_| 0))
}

impl Backend {
    pub fn embedded() -> Self {
        let memory = Arc::new(MemoryTable::default());
        // Bounded like a Kinesis stream's retention: POSTFLOW_STREAM_RETENTION records (default 10,000).
        let retention = std::env::var("POSTFLOW_STREAM_RETENTION")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(DEFAULT_STREAM_RETENTION);
        let stream = Arc::new(memory_stream_with_retention(5, retention));
        Self {
            table: memory.clone(),
            limiter: Arc::new(MemoryRateLimiter::default()),
            stream: stream.clone(),
            memory: Some(memory),
            feed: memory_feed(&stream),
            memory_stream: Some(stream),
            kinesis: None,
            description: "embedded in-memory store".into(),
        }
    }

    /// Any table and limiter (tests use this with DynamoDB Local).
    pub fn with(
        table: Arc<dyn Table>,
        limiter: Arc<dyn RateLimiter>,
        stream: Arc<dyn EventStream>,
        feed: Arc<dyn StreamFeed>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            table,
            limiter,
            stream,
            memory: None,
            memory_stream: None,
            kinesis: None,
            feed,
            description: description.into(),
        }
    }

    /// Every record on the event stream, from the beginning.
    pub async fn records(&self) -> Result<Vec<StoredRecord>, String> {
        if let Some(s) = &self.memory_stream {
            return Ok(s.sink().records());
        }
        match &self.kinesis {
            Some((client, name)) => read_all_records(client, name).await.map_err(|e| e.to_string()),
            None => Err("this backend has no readable stream".into()),
        }
    }

    /// DynamoDB and Kinesis through the SDK's configuration chain; creates the table and stream with
    /// `create`.
    pub async fn aws(config: &Config, create: bool) -> Result<Self, String> {
        let clients = AwsClients::load(None).await;
        if create {
            shared::storage::provision::create_table(&clients.dynamodb, &config.table_name)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(stream) = &config.stream_name {
                shared::storage::provision::create_stream(&clients.kinesis, stream)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| "AWS".into());
        let stream_name = config.stream_name.clone().unwrap_or_else(|| "postflow-events".into());
        Ok(Self {
            table: Arc::new(DynamoTable::new(clients.dynamodb.clone(), &config.table_name)),
            limiter: Arc::new(DynamoRateLimiter::new(clients.dynamodb, &config.table_name)),
            stream: Arc::new(kinesis_stream(
                clients.kinesis.clone(),
                &stream_name,
                config.stream_max_attempts,
            )),
            memory: None,
            memory_stream: None,
            feed: Arc::new(KinesisFeed::new(clients.kinesis.clone(), &stream_name)),
            kinesis: Some((clients.kinesis, stream_name.clone())),
            description: format!(
                "DynamoDB table {} and Kinesis stream {stream_name} at {endpoint}",
                config.table_name
            ),
        })
    }
}

/// The real handlers over one backend.
pub struct App {
    pub accept: AcceptInvite,
    pub enroll: EnrollAuthenticator,
    pub save: SaveEvent,
    /// The aggregation, run after each save-event request (what `aggregate-events` does on AWS).
    pub pump: Pump,
    /// Drains one at a time ([`App::aggregate`]).
    draining: OneAtATime,
    pub config: Arc<Config>,
    /// Where the local CLI delivers enrollment texts (printed by `replay`, read by `{{sms}}`).
    pub outbox: Arc<MemorySmsOutbox>,
    /// The embedded stream, when there is one (`postflow serve`'s `/_postflow/stats`).
    pub memory_stream: Option<Arc<MemoryStream>>,
    /// The embedded table, when there is one (`/_postflow/stats` counts its items).
    pub memory_table: Option<Arc<MemoryTable>>,
}

impl App {
    pub fn new(backend: &Backend, config: Config) -> Self {
        let config = Arc::new(config);
        let outbox = Arc::new(MemorySmsOutbox::default());
        let backends = Backends::new(backend.table.clone(), backend.limiter.clone());
        // The configuration was validated with the same rules; a WebAuthn relying party that still
        // fails only disables u2f (its requests then answer 500 and the log says why).
        let webauthn = config.webauthn.as_ref().and_then(|rp| match Registrar::new(rp) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                tracing::error!(error = %e, "WebAuthn relying party");
                None
            }
        });
        Self {
            accept: AcceptInvite::build(config.clone(), &backends),
            enroll: EnrollAuthenticator::with_relying_party(
                config.clone(),
                &backends,
                outbox.clone(),
                webauthn,
            ),
            save: SaveEvent::build(config.clone(), &backends, backend.stream.clone()),
            pump: Pump::new(backend.table.clone(), backend.feed.clone()),
            draining: OneAtATime::default(),
            config,
            outbox,
            memory_stream: backend.memory_stream.clone(),
            memory_table: backend.memory.clone(),
        }
    }

    /// Counts what is on the stream and not counted yet (the aggregation's job on AWS).
    ///
    /// One drain at a time for this `App`, as one `aggregate-events` invocation at a time reads a
    /// shard on AWS: a call that finds a drain running leaves the records to it ([`OneAtATime`]). When
    /// this returns, everything streamed before the call is counted, or a drain running now will count
    /// it, or — after a failed or dropped drain, or a drainer at its last run — the next call will
    /// (`postflow serve` calls it after every save-event request and once a second).
    pub async fn aggregate(&self) {
        self.draining
            .run(|| async {
                match self.pump.drain(shared::ports::Clock::now_secs(&SystemClock)).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "aggregation failed; retried after the next request");
                        false
                    }
                }
            })
            .await;
    }

    /// The handler's answer to a request already in the form handlers see (what `postflow serve` uses:
    /// no API Gateway event is built and parsed back); after save-event, the aggregation runs.
    pub async fn invoke_api(
        &self,
        function: Function,
        req: &shared::http::ApiRequest,
    ) -> shared::http::Reply {
        match function {
            Function::AcceptInvite => self.accept.answer(req).await,
            Function::EnrollAuthenticator => self.enroll.answer(req).await,
            Function::SaveEvent => {
                let res = self.save.answer(req).await;
                self.aggregate().await;
                res
            }
        }
    }

    /// The same for an API Gateway event (replay, invoke): the request as the Lambda would read it.
    pub async fn invoke(&self, function: Function, req: Request) -> Response<Body> {
        let api = shared::http::ApiRequest::from_lambda(&req, &self.config.superuser_claim);
        self.invoke_api(function, &api).await.into_response()
    }
}

/// A job many callers ask for and one runs at a time, none of them waiting for another: a caller that
/// finds the job running marks it pending and returns; the runner runs it again for what became
/// pending meanwhile (it looks after letting go of the lock too, so a call made just before it let go
/// is not missed), at most [`OneAtATime::MAX_RUNS`] times per call, so no caller is held running it for
/// the others under a steady stream of calls. What is pending when a run fails, when the runner's
/// future is dropped mid-run or when it reached its runs, stays pending: the next call runs it.
#[derive(Default)]
pub struct OneAtATime {
    running: tokio::sync::Mutex<()>,
    pending: AtomicBool,
}

impl OneAtATime {
    /// Runs a caller makes at most (its own and what came in while it ran).
    pub const MAX_RUNS: usize = 4;

    /// Runs `job` now and again for calls that come in meanwhile, or leaves it to the caller running
    /// it. A run that returns `false` (a failure) ends the call.
    pub async fn run<F: std::future::Future<Output = bool>>(&self, mut job: impl FnMut() -> F) {
        self.pending.store(true, Ordering::SeqCst);
        // The store before the look at the lock, and (below) the release of the lock before the look at
        // `pending`: with the runner doing the opposite, one of the two sees the other (a store-buffer
        // pattern, which needs sequentially consistent fences on both sides).
        fence(Ordering::SeqCst);
        for _ in 0..Self::MAX_RUNS {
            let Ok(guard) = self.running.try_lock() else { return };
            if !self.pending.swap(false, Ordering::SeqCst) {
                return; // a run that started after this call's store took it
            }
            let ok = job().await;
            drop(guard);
            fence(Ordering::SeqCst);
            if !ok || !self.pending.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

/// Configuration for the CLI: `TABLE_NAME`/`STREAM_NAME` and the rest from the environment when set,
/// otherwise local defaults (table `postflow`, stream `postflow-events`, a development cookie key).
pub fn cli_config() -> Config {
    let local = Config::for_local("postflow", "postflow-events");
    // The environment configures the CLI as it configures the Lambdas (e.g. `EVENT_DEDUPE_SECS` for
    // `postflow serve`); the table name defaults to the local one.
    let lookup = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| (name == "TABLE_NAME").then(|| local.table_name.clone()))
    };
    match Config::from_lookup(shared::config::Requirements::default(), lookup) {
        Ok(mut c) => {
            if c.invite_cookie_key.is_none() {
                c.invite_cookie_key = local.invite_cookie_key;
            }
            if c.stream_name.is_none() {
                c.stream_name = local.stream_name;
            }
            // The CLI texts into its outbox and is a WebAuthn relying party for https://localhost
            // unless configured otherwise.
            if c.sms_sender.is_none() {
                c.sms_sender = local.sms_sender;
            }
            if c.webauthn.is_none() {
                c.webauthn = local.webauthn;
            }
            c
        }
        Err(_) => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_template() {
        let (f, p) = route("POST", "/api/0/accept-invite/acme/10/abc/").unwrap();
        assert_eq!(f, Function::AcceptInvite);
        assert_eq!(
            p,
            [
                ("organization_id_or_slug".to_owned(), "acme".to_owned()),
                ("member_id".to_owned(), "10".to_owned()),
                ("token".to_owned(), "abc".to_owned())
            ]
        );
        assert_eq!(
            route("GET", "/api/0/users/me/authenticators/totp/enroll/").unwrap().0,
            Function::EnrollAuthenticator
        );
        assert!(route("DELETE", "/api/0/users/me/authenticators/totp/enroll/").is_none());
        assert!(route("GET", "/api/0/users/me/authenticators/totp/").is_none());
        assert!(route("GET", "/api/0/accept-invite/acme//abc/").is_none());
    }

    /// A call while the job runs returns at once without running it, and the runner runs the job again
    /// for it; a runner makes at most `MAX_RUNS` runs; a failed run ends the call and leaves what is
    /// pending to the next.
    #[tokio::test(flavor = "current_thread")]
    async fn one_at_a_time_runs_again_for_a_call_made_during_a_run() {
        use std::sync::atomic::AtomicUsize;
        let one = Arc::new(OneAtATime::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let runner = {
            let (one, runs, gate) = (one.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                one.run(|| {
                    let (runs, gate) = (runs.clone(), gate.clone());
                    async move {
                        // The first run waits at the gate: another call comes in meanwhile.
                        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                            gate.acquire().await.unwrap().forget();
                        }
                        true
                    }
                })
                .await
            })
        };
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The job is running: this call returns at once and leaves its run to the runner.
        one.run(|| async { panic!("a second caller must not run the job beside the first") }).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        gate.add_permits(1);
        runner.await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the runner ran the job again for the call made during its run"
        );

        // A steady stream of calls (each run sees a new one pending): the runner stops after its
        // runs, and what is pending is left to the next call.
        let steady = AtomicUsize::new(0);
        one.run(|| async {
            steady.fetch_add(1, Ordering::SeqCst);
            one.pending.store(true, Ordering::SeqCst);
            true
        })
        .await;
        assert_eq!(steady.load(Ordering::SeqCst), OneAtATime::MAX_RUNS, "runs per call are bounded");
        assert!(one.pending.load(Ordering::SeqCst));

        // A failed run ends the call, also with a call pending; the next call runs the job.
        let failed = AtomicUsize::new(0);
        one.run(|| async {
            failed.fetch_add(1, Ordering::SeqCst);
            one.pending.store(true, Ordering::SeqCst);
            false
        })
        .await;
        assert_eq!(failed.load(Ordering::SeqCst), 1, "a failed run is not retried by the same call");
        let next = AtomicUsize::new(0);
        one.run(|| async {
            next.fetch_add(1, Ordering::SeqCst);
            true
        })
        .await;
        assert_eq!(next.load(Ordering::SeqCst), 1);
        assert!(!one.pending.load(Ordering::SeqCst));
    }

    /// The CLI's routes are the routes of `template.yaml`.
    #[test]
    fn routes_are_those_of_template_yaml() {
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
        for f in Function::ALL {
            for (methods, path) in f.routes() {
                assert!(template.contains(&format!("Binary: {}", f.name())), "{}", f.name());
                for m in *methods {
                    let needle = format!("Method: {m}\n            Path: {path}\n");
                    assert!(template.contains(&needle), "template.yaml lacks {m} {path}");
                    // The route's event block names an authorizer (NONE, or the optional Lambda
                    // authorizer that lets anonymous requests through) iff requires_jwt says it is
                    // not the API's default JWT authorizer.
                    let at = template.find(&needle).unwrap() + needle.len();
                    let authorizer = template[at..]
                        .lines()
                        .take_while(|l| l.starts_with("            "))
                        .find_map(|l| l.trim().strip_prefix("Authorizer: "));
                    assert_eq!(
                        authorizer.is_none(),
                        f.requires_jwt(m),
                        "{m} {path}: requires_jwt disagrees with template.yaml"
                    );
                    assert!(
                        matches!(authorizer, None | Some("NONE" | "OptionalJwtAuthorizer")),
                        "{m} {path}: {authorizer:?}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod openapi_tests {
    use super::Function;

    /// `openapi.yaml` documents exactly the routes and methods of `template.yaml`.
    #[test]
    fn openapi_matches_template_routes() {
        let root = env!("CARGO_MANIFEST_DIR");
        let openapi = std::fs::read_to_string(format!("{root}/openapi.yaml")).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        let mut current: Option<String> = None;
        for line in openapi.lines() {
            if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
                current = Some(format!("/{p}"));
            } else if let (Some(path), Some(m)) =
                (&current, line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')))
            {
                if ["get", "post", "put", "delete", "patch", "options"].contains(&m) {
                    documented.insert((m.to_ascii_uppercase(), path.clone()));
                }
            } else if !line.starts_with("   ")
                && !line.starts_with("  /")
                && !line.is_empty()
                && !line.starts_with("    ")
            {
                current = None;
            }
        }
        let mut routed = std::collections::BTreeSet::new();
        for f in Function::ALL {
            for (methods, path) in f.routes() {
                for m in *methods {
                    routed.insert(((*m).to_owned(), (*path).to_owned()));
                }
            }
        }
        assert_eq!(documented, routed);
    }
}
