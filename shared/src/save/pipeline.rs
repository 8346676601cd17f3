//! The save pipeline's steps over one event (compiled with the `events` feature): prepare (grouping,
//! tags, metadata), span completion and the eventstream record; [`Pipeline`] runs them.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::domain::project::Project;
use crate::error::ApiError;
use crate::grouping;
use crate::grouping::config::GroupingConfig;
use crate::ingest::EventKind;
use crate::ports::{EventStream, StreamRecord};
use crate::tree::Fields;

use super::record;
use super::saver::{Begin, EventSaver, GroupValues, Prefetch, SaveJob, SaveKind, SaveResult};

/// Retention reported in eventstream records (Sentry's default plan retention).
pub const RETENTION_DAYS: u32 = 90;

/// Grouping (with the project's grouping configuration), tags and metadata for one normalized event:
/// the `SaveJob` and the event as it will be stored and streamed.
pub fn prepare(
    mut event: Value,
    kind: EventKind,
    project_id: u64,
    grouping_config: &GroupingConfig,
) -> (SaveJob, Value) {
    let ty = event.field("type").and_then(Value::as_str).unwrap_or("default").to_owned();
    let kind = match (kind, ty.as_str()) {
        (EventKind::Transaction, _) | (_, "transaction") => SaveKind::Transaction,
        (_, "generic") => SaveKind::Generic,
        _ => SaveKind::Error,
    };
    let event_id = event.field("event_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let release =
        event.field("release").and_then(Value::as_str).filter(|r| !r.trim().is_empty()).map(str::to_owned);
    let dist = event.field("dist").and_then(Value::as_str).map(str::to_owned);
    let environment: String = event
        .field("environment")
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
            .field("fingerprint")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter().filter_map(Value::as_str).map(|p| grouping::hashing::hash_from_values([p])).collect()
            })
            .unwrap_or_default(),
        SaveKind::Error => grouping::hashing::calculate_hashes_with(&mut event, grouping_config).hashes,
    };
    let m = grouping::metadata::materialize_metadata(&event);
    m.write_into(&mut event);
    let level = event.field("level").and_then(Value::as_str).unwrap_or("error").to_owned();
    let group = GroupValues {
        level: grouping::metadata::level_num(&level),
        culprit: m.culprit.clone(),
        message: grouping::metadata::search_message(&event),
        title_is_placeholder: grouping::metadata::is_placeholder_title(&m.title),
        title: m.title,
        event_type: m.event_type,
        metadata: m.metadata,
        platform: event.field("platform").and_then(Value::as_str).unwrap_or("other").to_owned(),
        logger: event.field("logger").and_then(Value::as_str).unwrap_or_default().to_owned(),
    };
    let timestamp = event.field("timestamp").and_then(Value::as_f64).unwrap_or_default();
    let received = event.field("received").and_then(Value::as_f64).unwrap_or(timestamp);
    let job = SaveJob {
        project: Project { id: project_id, ..Default::default() },
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

/// Spans as Sentry writes them to the `transactions` topic: every span carries `tags` and `data`, `null`
/// when the SDK sent none. Relay's normalizer leaves absent fields out, but the messages Sentry produces
/// (the examples published with `sentry-kafka-schemas`) have them, and the topic's schema
/// (`transactions.v1`, `Span.required`) requires both.
pub fn complete_spans(event: &mut Value) {
    if let Some(spans) = event.field_mut("spans").and_then(Value::as_array_mut) {
        for span in spans.iter_mut().filter_map(Value::as_object_mut) {
            for key in ["tags", "data"] {
                span.entry(key).or_insert(Value::Null);
            }
        }
    }
}

/// The eventstream record of a saved event, which is given up to it: its parts are freed as they are
/// written, so the tree and the record are not held together. The record's `message` is the job's
/// `group.message`, the search message [`prepare`] computed from the same event.
pub fn stream_record(job: &SaveJob, mut event: Value, r: &SaveResult) -> StreamRecord {
    let primary_hash = match job.kind {
        SaveKind::Transaction => None,
        _ => job.hashes.first().cloned(),
    };
    if let Some(g) = &r.group {
        event["group_id"] = json!(g.id);
    }
    if job.kind == SaveKind::Transaction {
        complete_spans(&mut event);
    }
    let groups: Vec<record::GroupState> = r.group.iter().copied().collect();
    let params = record::InsertParams {
        event: &event,
        organization_id: job.project.organization_id,
        project_id: job.project.id,
        groups: &groups,
        primary_hash: primary_hash.as_deref(),
        received_timestamp: r.received,
        skip_consume: false,
        retention_days: RETENTION_DAYS,
        occurrence: None,
        search_message: Some(&job.group.message),
    };
    let head = record::RecordHead::of(&params);
    let data = record::insert_message_taking(head, event);
    StreamRecord { partition_key: record::partition_key(&job.event_id), data }
}

/// Save and publish, over a saver and a stream.
pub struct Pipeline {
    pub saver: EventSaver,
    pub stream: Arc<dyn EventStream>,
}

impl Pipeline {
    /// Saves one event and puts its record on the stream: two sequential calls on a warm Lambda (the
    /// marker, `PutRecords`). A failed publish releases the lease (the SDK's retry resumes) and
    /// answers 503; a copy of an event being published answers 503 + `Retry-After` too.
    pub async fn save_one(
        &self,
        job: SaveJob,
        event: Value,
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
        // The event is freed as its record is written, before the stream takes its copies.
        let record = stream_record(&job, event, &result);
        match self.stream.publish_until(vec![record], deadline).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.saver.abandon(job.project.id, &job.event_id).await;
                Err(ApiError::from(e))
            }
        }
    }
}
