//! # save-event
//!
//! `POST /api/{project_id}/envelope/` and `/api/{project_id}/store/`: what Relay and Sentry's
//! `EventManager.save` do for an event sent by a real SDK, as one Lambda.
//!
//! 1. **Authorize first** ([`shared::ingest::authenticate`]): the DSN key from the headers, the query
//!    or the envelope header (at most 64 KiB of the body decoded) must exist, be active and belong to
//!    the project in the path (401 when missing, 403 otherwise). Keys, known and unknown, are cached
//!    per warm Lambda, so a made-up key costs one lookup and no decoding, parsing or grouping.
//! 2. **Ingest** ([`shared::ingest`]): `Content-Encoding`, envelope parsing with Relay's limits (one
//!    event per envelope, as Relay), Relay-compatible normalization. Malformed input → 400/413 in
//!    Relay's body shape.
//! 3. **Save and stream** each event through [`shared::save`]: grouping, the de-duplication marker and
//!    the group decisions (no per-event write to a shared row), then one eventstream v2 record
//!    (`[2, "insert", event, state]`, partition key = event id). Counters are aggregated from the
//!    stream by the `aggregate-events` function. A stream failure answers 503 + `Retry-After`; the
//!    SDK's retry re-publishes without counting again.
//!
//! Answers as Relay does: `200 {"id": …}`, CORS headers for browser SDKs, `X-Sentry-Error` on errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use shared::backends::Backends;
use shared::config::Config;
use shared::domain::project::{KeyCheck, ProjectKey, check_key};
use shared::error::{ApiError, StoreError};
use shared::grouping::config::GroupingConfigCache;
use shared::http::{ApiHandler, ApiRequest, Reply};
use shared::ingest::{self, Endpoint, IngestError};
use shared::ports::{Clock, EventStream, RateDecision, RateLimiter, bucket};
use shared::save::{EventSaver, Pipeline, SaveJob, SaveKind, prepare};
use shared::storage::projects::KeyCache;
use shared::storage::table::Table;

pub use shared::save::{RETENTION_DAYS, stream_record};

const CORS_ALLOW_HEADERS: &str = "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, authentication, authorization, content-encoding, transfer-encoding, content-type, baggage, sentry-trace";
const CORS_EXPOSE_HEADERS: &str = "x-sentry-error, x-sentry-rate-limits, retry-after";

/// The per-project ingest quota, taken from the shared counter in blocks of a hundredth of the limit
/// (at least one) and spent locally: the counter item gets about a hundred writes per window whatever
/// the event rate. A block an instance does not spend is quota lost for that window (fails safe:
/// fewer events accepted, never more than the limit).
#[derive(Default)]
pub struct QuotaBudget {
    left: Mutex<HashMap<(u64, i64), u64>>,
}

impl QuotaBudget {
    async fn take(
        &self,
        limiter: &dyn RateLimiter,
        project: u64,
        limit: u64,
        now: i64,
    ) -> Result<RateDecision, StoreError> {
        let (b, left_secs) = bucket(now, 60);
        if let Ok(mut m) = self.left.lock()
            && let Some(n) = m.get_mut(&(project, b)).filter(|n| **n > 0)
        {
            *n -= 1;
            return Ok(RateDecision::Allowed { count: 0 });
        }
        let chunk = (limit / 100).max(1);
        let d = limiter.hit_n(&format!("ingest:{project}"), chunk, limit, 60, now).await?;
        let count = match d {
            RateDecision::Allowed { count } | RateDecision::Limited { count, .. } => count,
        };
        let granted = limit.saturating_sub(count.saturating_sub(chunk)).min(chunk);
        if granted == 0 {
            return Ok(RateDecision::Limited { count, retry_after_secs: left_secs });
        }
        if let Ok(mut m) = self.left.lock() {
            m.retain(|(_, bb), _| *bb >= b);
            m.insert((project, b), granted - 1);
        }
        Ok(RateDecision::Allowed { count })
    }
}

pub struct SaveEvent {
    pub table: Arc<dyn Table>,
    pub pipeline: Pipeline,
    pub keys: KeyCache,
    /// Compiled grouping rules per project (stack-trace and fingerprinting rules ride on the key).
    pub grouping: GroupingConfigCache,
    pub limiter: Arc<dyn RateLimiter>,
    pub quota: QuotaBudget,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    pub limits: ingest::envelope::Limits,
}

impl SaveEvent {
    /// The composition root: the saver over the table, the stream records go to, the limiter for
    /// ingest quotas, the clock and random source.
    pub fn build(config: Arc<Config>, backends: &Backends, stream: Arc<dyn EventStream>) -> Self {
        Self {
            pipeline: Pipeline {
                saver: EventSaver::new(backends.table.clone(), backends.random.clone())
                    .with_lease_secs(config.event_lease_secs)
                    .with_dedupe_secs(config.event_dedupe_secs),
                stream,
            },
            table: backends.table.clone(),
            keys: KeyCache::new(Duration::from_secs(60), 10_000),
            grouping: GroupingConfigCache::default(),
            limiter: backends.limiter.clone(),
            quota: QuotaBudget::default(),
            clock: backends.clock.clone(),
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
        // Authorize first, cheaply: the key comes from the headers, the query or the envelope header
        // (at most 64 KiB decoded), and is checked (one cached lookup) before anything else of the
        // body is decoded, parsed, normalized or grouped, and before any group read.
        let authenticated = ingest::authenticate(&request, &self.limits).map_err(ingest_error)?;
        let (project_id, auth) = (authenticated.project_id, &authenticated.auth);
        let now = self.clock.now_secs();
        let key = self.keys.get(self.table.as_ref(), &auth.public_key).await?;
        let key: ProjectKey = match check_key(key, project_id) {
            KeyCheck::Valid(k) => k,
            KeyCheck::Forbidden(why) => return Err(ApiError::detail(403, why)),
        };
        if self.config.ingest_rate_limit > 0 {
            match self
                .quota
                .take(self.limiter.as_ref(), key.project.id, self.config.ingest_rate_limit, now)
                .await
            {
                Ok(RateDecision::Limited { retry_after_secs, .. }) => {
                    return Err(ApiError::RateLimited {
                        retry_after_secs: retry_after_secs.max(1),
                        detail: "event submission rejected with_reason: ProjectQuota".into(),
                    });
                }
                Ok(RateDecision::Allowed { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "ingest rate limiter unavailable, failing open"),
            }
        }

        let mut ingested =
            ingest::ingest_authenticated(&request, &self.limits, authenticated).map_err(ingest_error)?;
        let response_id = ingested.response_event_id().map(str::to_owned);
        for d in &ingested.dropped {
            tracing::info!(reason = %d.reason, "event item dropped");
        }

        // Everything CPU-bound happens before any further I/O: prepare the jobs (grouping with the
        // project's rules, tags, metadata). An envelope carries at most one event
        // (`DropReason::DuplicateItem`).
        let project = &key.project;
        let grouping =
            self.grouping.get(project.id, &project.grouping_enhancements, &project.fingerprinting_rules);
        let mut prepared: Vec<(SaveJob, Value)> = Vec::with_capacity(ingested.events.len());
        for ev in std::mem::take(&mut ingested.events) {
            let (job, event) = prepare(ev.payload, ev.kind, ingested.project_id, &grouping);
            // Before anything is written: the event must still fit one stream record.
            ingest::check_stored_size(&event, ev.kind, ev.payload_bytes, &self.limits)
                .map_err(ingest_error)?;
            prepared.push((job, event));
        }

        // The group-hash reads (a warm Lambda reads none).
        let reads = prepared.iter().map(|(job, _)| async move {
            match job.kind {
                SaveKind::Transaction => Ok(None),
                _ => self.pipeline.saver.prefetch(job.project.id, &job.hashes).await.map(Some),
            }
        });
        let prefetched =
            futures::future::join_all(reads).await.into_iter().collect::<Result<Vec<_>, StoreError>>()?;

        for ((mut job, mut event), pre) in prepared.into_iter().zip(prefetched) {
            job.project = key.project.clone();
            event["key_id"] = json!(key.key_id.to_string());
            event["project"] = json!(key.project.id);
            self.pipeline.save_one(job, event, now, pre, stream_deadline(req.deadline_ms)).await?;
        }
        Ok(Reply::json(
            200,
            match response_id {
                Some(id) => json!({ "id": id }),
                None => json!({}),
            },
        ))
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
