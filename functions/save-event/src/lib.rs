//! # save-event
//!
//! `POST /api/{project_id}/envelope/` and `/api/{project_id}/store/`: what Relay and Sentry's
//! `EventManager.save` do for an event sent by a real SDK, as one Lambda.
//!
//! 1. **Ingest** ([`shared::ingest`]): DSN authentication, `Content-Encoding`, envelope parsing with
//!    Relay's limits, Relay-compatible normalization. Malformed input → 400/413 in Relay's body shape.
//! 2. **Authorize**: the DSN key must exist, be active and belong to the project in the path (401 when
//!    missing, 403 otherwise), checked before anything is written. Keys are cached per warm Lambda.
//! 3. **Save** each event ([`shared::storage::events`]): grouping, releases, environments, group
//!    counters and the de-duplication marker in one transaction.
//! 4. **Stream**: one eventstream v2 record per saved event (`[2, "insert", event, state]`), partition
//!    key = project id for errors, event id for transactions; then the marker says "streamed".
//!    A stream failure answers 503 + `Retry-After`; the SDK's retry re-publishes without counting again.
//!
//! Answers as Relay does: `200 {"id": …}`, CORS headers for browser SDKs, `X-Sentry-Error` on errors.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared::config::Config;
use shared::domain::project::{KeyCheck, ProjectKey, check_key};
use shared::error::{ApiError, StoreError};
use shared::grouping;
use shared::http::{ApiHandler, ApiRequest, Reply};
use shared::ingest::{self, Endpoint, EventKind, IngestError};
use shared::ports::{Clock, EventStream, Random, RateLimiter, StreamRecord};
use shared::storage::events::{Begin, EventSaver, GroupValues, Prefetch, SaveJob, SaveKind, SaveResult};
use shared::storage::projects::KeyCache;
use shared::storage::table::Table;

const CORS_ALLOW_HEADERS: &str = "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, authentication, authorization, content-encoding, transfer-encoding, content-type, baggage, sentry-trace";
const CORS_EXPOSE_HEADERS: &str = "x-sentry-error, x-sentry-rate-limits, retry-after";
/// Retention reported in eventstream records (Sentry's default plan retention).
pub const RETENTION_DAYS: u32 = 90;

pub struct SaveEvent {
    pub table: Arc<dyn Table>,
    pub saver: EventSaver,
    pub keys: KeyCache,
    pub stream: Arc<dyn EventStream>,
    pub limiter: Arc<dyn RateLimiter>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    pub limits: ingest::envelope::Limits,
}

impl SaveEvent {
    pub fn new(
        table: Arc<dyn Table>,
        stream: Arc<dyn EventStream>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            saver: EventSaver::new(table.clone(), random).with_lease_secs(config.event_lease_secs),
            table,
            keys: KeyCache::new(Duration::from_secs(60), 10_000),
            stream,
            limiter,
            clock,
            config,
            limits: ingest::envelope::Limits::default(),
        }
    }

    #[tracing::instrument(skip_all, fields(method = %req.method, path = %req.path))]
    pub async fn handle_api(&self, req: &ApiRequest) -> Reply {
        let reply = match req.method.as_str() {
            // CORS preflight of browser SDKs.
            "OPTIONS" => Ok(Reply::empty(200)),
            "POST" => self.post(req).await,
            m => Err(ApiError::detail(405, format!("method {m} not allowed"))),
        };
        let reply = reply.unwrap_or_else(|e| {
            let detail = e.body().and_then(|b| b.get("detail").and_then(Value::as_str).map(str::to_owned));
            let mut r = Reply::from(e);
            if let Some(d) = detail {
                r = r.with_header("x-sentry-error", d);
            }
            r
        });
        cors(reply)
    }

    async fn post(&self, req: &ApiRequest) -> Result<Reply, ApiError> {
        let endpoint = if req.path.trim_end_matches('/').ends_with("/store") {
            Endpoint::Store
        } else {
            Endpoint::Envelope
        };
        let project_id = req.path_param("project_id").unwrap_or_default();
        let received_at =
            chrono::DateTime::from_timestamp_millis(self.clock.now_millis()).unwrap_or_default();
        let request = ingest::Request {
            endpoint,
            project_id,
            headers: &req.headers,
            query: &req.raw_query,
            body: &req.body,
            received_at,
            client_ip: req.source_ip.as_deref(),
        };
        let mut ingested = ingest::ingest(&request, &self.limits).map_err(ingest_error)?;
        let response_id = ingested.response_event_id().map(str::to_owned);

        // Everything CPU-bound happens before any I/O: prepare the jobs (grouping, tags, metadata).
        let mut prepared: Vec<(SaveJob, Value)> = Vec::with_capacity(ingested.events.len());
        for ev in std::mem::take(&mut ingested.events) {
            prepared.push(prepare(ev.payload, ev.kind, ingested.project_id));
        }

        // Authorize (key lookup, cached) — concurrently with the group-hash reads. Writes (the rate-limit
        // counter, a speculative short id) run concurrently only when the key is already known valid
        // from the warm cache: nothing is written for a request whose key was not checked.
        let now = self.clock.now_secs();
        let pre_authorized = matches!(
            self.keys
                .cached(&ingested.auth.public_key)
                .flatten()
                .map(|k| check_key(Some(k), ingested.project_id)),
            Some(KeyCheck::Valid(_))
        );
        let key = self.keys.get(self.table.as_ref(), &ingested.auth.public_key);
        let limit_key = format!("ingest:{}", ingested.project_id);
        let limit = async {
            if self.config.ingest_rate_limit == 0 || !pre_authorized {
                return Ok(None);
            }
            self.limiter.hit(&limit_key, self.config.ingest_rate_limit, 60, now).await.map(Some)
        };
        let prefetch = async {
            let mut out = Vec::with_capacity(prepared.len());
            for (job, _) in &prepared {
                out.push(match job.kind {
                    SaveKind::Transaction => None,
                    _ => Some(self.saver.prefetch(job.project.id, &job.hashes, pre_authorized).await?),
                });
            }
            Ok::<_, StoreError>(out)
        };
        let (key, limit, prefetch) = tokio::join!(key, limit, prefetch);
        let key: ProjectKey = match check_key(key?, ingested.project_id) {
            KeyCheck::Valid(k) => k,
            KeyCheck::Forbidden(why) => return Err(ApiError::detail(403, why)),
        };
        // A cold key cache: the rate limit is counted now that the key is known valid.
        let limit = match (limit, pre_authorized, self.config.ingest_rate_limit) {
            (Ok(None), false, l) if l > 0 => self.limiter.hit(&limit_key, l, 60, now).await.map(Some),
            (other, _, _) => other,
        };
        match limit {
            Ok(Some(d)) if d.is_limited() => {
                let retry = match d {
                    shared::ports::RateDecision::Limited { retry_after_secs, .. } => retry_after_secs.max(1),
                    shared::ports::RateDecision::Allowed { .. } => 1,
                };
                return Err(ApiError::RateLimited {
                    retry_after_secs: retry,
                    detail: "event submission rejected with_reason: ProjectQuota".into(),
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ingest rate limiter unavailable, failing open"),
        }
        let prefetched = prefetch?;

        for ((mut job, mut event), pre) in prepared.into_iter().zip(prefetched) {
            job.project = key.project.clone();
            event["key_id"] = json!(key.key_id.to_string());
            event["project"] = json!(key.project.id);
            self.save_one(job, event, now, pre, stream_deadline(req.deadline_ms)).await?;
        }
        Ok(Reply::json(
            200,
            match response_id {
                Some(id) => json!({ "id": id }),
                None => json!({}),
            },
        ))
    }

    /// Saves one event and puts its record on the stream (see the crate docs for the guarantees).
    async fn save_one(
        &self,
        job: SaveJob,
        mut event: Value,
        now: i64,
        pre: Option<Prefetch>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), ApiError> {
        let result = match self.saver.begin_with(&job, now, pre).await? {
            Begin::Duplicate => {
                tracing::info!(project_id = job.project.id, event_id = %job.event_id, "duplicate event id, not saved again");
                return Ok(());
            }
            Begin::InFlight => return Err(ApiError::Unavailable { retry_after_secs: 1 }),
            Begin::Saved(r) | Begin::Resume(r) => r,
        };
        let record = stream_record(&job, &mut event, &result)?;
        match self.stream.publish_until(vec![record], deadline).await {
            Ok(()) => {
                if let Err(e) = self.saver.finish(job.project.id, &job.event_id).await {
                    // Published: the SDK gets its 200. A later copy of this id may be re-published
                    // once the lease expires (at-least-once, never lost).
                    tracing::warn!(error = %e, event_id = %job.event_id, "could not mark the event streamed");
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.saver.abandon(job.project.id, &job.event_id).await;
                Err(ApiError::from(e))
            }
        }
    }
}

/// Time left for stream retries: the Lambda deadline minus a margin for marking the event and answering.
/// Past it the SDK gets a 503 (and retries) instead of the Lambda timing out mid-request.
pub fn stream_deadline(deadline_ms: Option<u64>) -> Option<tokio::time::Instant> {
    const MARGIN_MS: i64 = 1_000;
    let deadline_ms = deadline_ms? as i64;
    let left = deadline_ms - chrono::Utc::now().timestamp_millis() - MARGIN_MS;
    Some(tokio::time::Instant::now() + Duration::from_millis(left.max(0) as u64))
}

fn cors(reply: Reply) -> Reply {
    reply
        .with_header("access-control-allow-origin", "*")
        .with_header("access-control-allow-methods", "POST, OPTIONS")
        .with_header("access-control-allow-headers", CORS_ALLOW_HEADERS)
        .with_header("access-control-expose-headers", CORS_EXPOSE_HEADERS)
        .with_header("access-control-max-age", "3600")
}

/// Relay's error answer: `{"detail": …, "causes": […]}` with the status the error knows.
fn ingest_error(e: IngestError) -> ApiError {
    let status = e.status();
    let detail = e.detail();
    tracing::info!(status, detail = %detail, "ingest request rejected");
    ApiError::Detail { status, detail }
}

/// Grouping, tags and metadata for one normalized event: the `SaveJob` and the event as it will be
/// stored and streamed.
pub fn prepare(mut event: Value, kind: EventKind, project_id: u64) -> (SaveJob, Value) {
    let ty = event.get("type").and_then(Value::as_str).unwrap_or("default").to_owned();
    let kind = match (kind, ty.as_str()) {
        (EventKind::Transaction, _) | (_, "transaction") => SaveKind::Transaction,
        (_, "generic") => SaveKind::Generic,
        _ => SaveKind::Error,
    };
    let event_id = event.get("event_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let release =
        event.get("release").and_then(Value::as_str).filter(|r| !r.trim().is_empty()).map(str::to_owned);
    let dist = event.get("dist").and_then(Value::as_str).map(str::to_owned);
    let environment: String = event
        .get("environment")
        .and_then(Value::as_str)
        .map(|e| e.chars().take(64).collect())
        .unwrap_or_default();
    grouping::tags::apply_save_tags(
        &mut event,
        release.as_deref(),
        dist.filter(|_| release.is_some()).as_deref(),
    );
    let hashes = match kind {
        SaveKind::Transaction => {
            // Client fingerprints are ignored for transactions; spans get their grouping hashes.
            grouping::spans::calculate_span_grouping(&mut event);
            Vec::new()
        }
        // Issue-platform events: the occurrence fingerprints (md5 per element) are the hashes.
        SaveKind::Generic => event
            .get("fingerprint")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter().filter_map(Value::as_str).map(|p| grouping::hashing::hash_from_values([p])).collect()
            })
            .unwrap_or_default(),
        SaveKind::Error => grouping::hashing::calculate_hashes(&mut event).hashes,
    };
    let m = grouping::metadata::materialize_metadata(&event);
    m.write_into(&mut event);
    let level = event.get("level").and_then(Value::as_str).unwrap_or("error").to_owned();
    let group = GroupValues {
        level: grouping::metadata::level_num(&level),
        culprit: m.culprit.clone(),
        message: grouping::metadata::search_message(&event),
        title_is_placeholder: grouping::metadata::is_placeholder_title(&m.title),
        title: m.title,
        event_type: m.event_type,
        metadata: m.metadata,
        platform: event.get("platform").and_then(Value::as_str).unwrap_or("other").to_owned(),
        logger: event.get("logger").and_then(Value::as_str).unwrap_or_default().to_owned(),
    };
    let timestamp = event.get("timestamp").and_then(Value::as_f64).unwrap_or_default();
    let received = event.get("received").and_then(Value::as_f64).unwrap_or(timestamp);
    let job = SaveJob {
        project: shared::domain::project::Project {
            id: project_id,
            organization_id: 0,
            slug: String::new(),
            platform: None,
        },
        event_id,
        kind,
        timestamp,
        received,
        release,
        environment,
        hashes,
        group,
    };
    (job, event)
}

/// The eventstream record of a saved event.
pub fn stream_record(job: &SaveJob, event: &mut Value, r: &SaveResult) -> Result<StreamRecord, StoreError> {
    let primary_hash = match job.kind {
        SaveKind::Transaction => None,
        _ => job.hashes.first().cloned(),
    };
    if let Some(g) = r.group_id {
        event["group_id"] = json!(g);
    }
    let groups: Vec<grouping::eventstream::GroupState> = r
        .group_id
        .map(|id| grouping::eventstream::GroupState {
            id,
            is_new: r.is_new,
            is_regression: r.is_regression,
            is_new_group_environment: r.is_new_group_environment,
        })
        .into_iter()
        .collect();
    let params = grouping::eventstream::InsertParams {
        event,
        organization_id: job.project.organization_id,
        project_id: job.project.id,
        groups: &groups,
        primary_hash: primary_hash.as_deref(),
        received_timestamp: r.received,
        skip_consume: false,
        retention_days: RETENTION_DAYS,
        occurrence: None,
    };
    let ty = event.get("type").and_then(Value::as_str).unwrap_or("default");
    Ok(StreamRecord {
        partition_key: grouping::eventstream::partition_key(ty, job.project.id, &job.event_id),
        data: grouping::eventstream::insert_message(&params)
            .map_err(|e| StoreError::Rejected(e.to_string()))?,
    })
}

#[async_trait::async_trait]
impl ApiHandler for SaveEvent {
    fn superuser_claim(&self) -> &str {
        &self.config.superuser_claim
    }

    async fn handle_api(&self, req: &ApiRequest) -> Reply {
        SaveEvent::handle_api(self, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_deadline_keeps_a_margin() {
        assert!(stream_deadline(None).is_none());
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        let d = stream_deadline(Some(now_ms + 3_000)).unwrap();
        let left = d.saturating_duration_since(tokio::time::Instant::now());
        assert!(left <= Duration::from_millis(2_000) && left >= Duration::from_millis(1_800), "{left:?}");
        let past = stream_deadline(Some(now_ms.saturating_sub(10))).unwrap();
        assert!(past <= tokio::time::Instant::now());
    }
}
