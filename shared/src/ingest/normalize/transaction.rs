//! Transactions: Relay's `validate_transaction` (ingest-protocol.md §8.6) and the transactions
//! processor defaults (`transaction_info.source`, trace context `op`/`status`, span `op`).
//!
//! Runs after timestamps were parsed (floats, missing `timestamp` already set to `received`).

use serde_json::{Map, Value};

use super::interfaces::{normalize_hex_id, normalize_trace_ids};
use super::{Errors, NormalizeError, set};
use crate::tree::Fields;

fn invalid(reason: &'static str) -> NormalizeError {
    NormalizeError::InvalidTransaction(reason)
}

pub(super) fn validate_and_normalize(
    event: &mut Map<String, Value>,
    errors: &mut Errors,
) -> Result<(), NormalizeError> {
    let end = event
        .field("timestamp")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid("timestamp hard-required for transaction events"))?;
    let start = event
        .field("start_timestamp")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid("start_timestamp hard-required for transaction events"))?;
    if end < start {
        return Err(invalid("end timestamp is smaller than start timestamp"));
    }

    let trace = match event.field_mut("contexts").and_then(|c| c.field_mut("trace")) {
        Some(Value::Object(trace)) => trace,
        _ => return Err(invalid("missing valid trace context")),
    };
    trace.retain(|_, v| !v.is_null());
    normalize_trace_ids(trace, errors);
    if !trace.has_field("trace_id") {
        return Err(invalid("trace context is missing trace_id"));
    }
    if !trace.has_field("span_id") {
        return Err(invalid("trace context is missing span_id"));
    }
    if !trace.field("op").is_some_and(Value::is_string) {
        if let Some(bad) = trace.remove("op") {
            errors.invalid("contexts.trace.op", Some(bad), Some("expected a string"));
        }
        trace.insert("op".into(), Value::from("default"));
    }
    trace.entry("status").or_insert_with(|| Value::from("unknown"));
    set(trace, "type", Value::from("trace"));

    if let Some(Value::Array(spans)) = event.field_mut("spans") {
        for span in spans.iter_mut() {
            if let Value::Object(span) = span {
                validate_span(span, end)?;
            }
        }
    }

    let info = event.entry("transaction_info").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(info) = info {
        info.entry("source").or_insert_with(|| Value::from("unknown"));
    }
    Ok(())
}

/// A span needs a start, an end not before it (a missing end is the transaction's end with
/// status `deadline_exceeded`), and trace/span ids.
fn validate_span(span: &mut Map<String, Value>, transaction_end: f64) -> Result<(), NormalizeError> {
    let start = span
        .field("start_timestamp")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid("span is missing start_timestamp"))?;
    let end = match span.field("timestamp").and_then(Value::as_f64) {
        Some(end) => end,
        None => {
            span.insert("timestamp".into(), Value::from(transaction_end));
            span.insert("status".into(), Value::from("deadline_exceeded"));
            transaction_end
        }
    };
    if end < start {
        return Err(invalid("end timestamp is smaller than start timestamp"));
    }
    for (key, len, reason) in
        [("trace_id", 32, "span is missing trace_id"), ("span_id", 16, "span is missing span_id")]
    {
        let id = span
            .field(key)
            .and_then(Value::as_str)
            .and_then(|s| normalize_hex_id(s, len))
            .ok_or_else(|| invalid(reason))?;
        span.insert(key.into(), Value::String(id));
    }
    if !span.field("op").is_some_and(Value::is_string) {
        span.insert("op".into(), Value::from("default"));
    }
    Ok(())
}
