//! Timestamps: parsing, clock drift, future/past clamping, `received` (ingest-protocol.md §8.3).
//!
//! Every timestamp slot (`timestamp`, `start_timestamp`, `breadcrumbs.values[].timestamp`,
//! `spans[].{start_timestamp,timestamp}`) is parsed to microseconds first; shifts are applied in
//! integer microseconds and the slots are written back as float seconds, Relay's output form.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use super::{Errors, NormalizeConfig, set};
use crate::tree::Fields;

/// Relay's `ClockDriftProcessor` threshold: smaller drifts are ignored.
const MIN_CLOCK_DRIFT_MICROS: i64 = 55 * 60 * 1_000_000;

/// Parses a timestamp value: a number (unix seconds) or an RFC 3339 / ISO 8601 string (UTC when
/// no offset is given). Returns microseconds since the epoch or Relay's error reason.
pub(super) fn parse(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => {
            n.as_f64().and_then(micros_from_secs).ok_or_else(|| "invalid timestamp".to_owned())
        }
        Value::String(s) => parse_str(s).map(|dt| dt.timestamp_micros()),
        _ => Err("expected timestamp".to_owned()),
    }
}

fn parse_str(s: &str) -> Result<DateTime<Utc>, String> {
    match s.parse::<NaiveDateTime>() {
        Ok(naive) => Ok(Utc.from_utc_datetime(&naive)),
        // Relay reports the naive parser's error when both forms fail.
        Err(naive_err) => DateTime::parse_from_rfc3339(s)
            .map(|dt| dt.with_timezone(&Utc))
            .map_err(|_| naive_err.to_string()),
    }
}

fn micros_from_secs(secs: f64) -> Option<i64> {
    let micros = (secs * 1_000_000.0).round();
    // ±2^53 µs keeps the value exact and inside chrono's range.
    (micros.is_finite() && micros.abs() < 9_007_199_254_740_992.0).then_some(micros as i64)
}

/// Float seconds with microsecond precision, as Relay serializes timestamps.
pub(super) fn to_secs(micros: i64) -> Value {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let value = secs as f64 + frac as f64 / 1_000_000.0;
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn rfc3339(micros: i64) -> Value {
    Utc.timestamp_micros(micros).single().map_or(Value::Null, |dt| Value::from(dt.to_rfc3339()))
}

/// One parsed timestamp slot (microseconds), `None` when absent or invalid.
struct Slot {
    value: Option<i64>,
}

/// Parsed timestamps of one event, in slot order.
struct Parsed {
    timestamp: Slot,
    start_timestamp: Slot,
    breadcrumbs: Vec<Slot>,
    spans: Vec<(Slot, Slot)>,
}

impl Parsed {
    fn shift(&mut self, delta: i64) {
        let all = [&mut self.timestamp, &mut self.start_timestamp]
            .into_iter()
            .chain(self.breadcrumbs.iter_mut())
            .chain(self.spans.iter_mut().flat_map(|(a, b)| [a, b]));
        for slot in all {
            if let Some(v) = slot.value.as_mut() {
                *v = v.saturating_add(delta);
            }
        }
    }
}

/// Parses `map[key]`; an invalid value is nulled and reported at the path `path()` gives (built
/// only then).
fn parse_slot(
    map: &mut Map<String, Value>,
    key: &str,
    path: impl FnOnce() -> String,
    errors: &mut Errors,
) -> Slot {
    let Some(value) = map.field_mut(key) else { return Slot { value: None } };
    if value.is_null() {
        return Slot { value: None };
    }
    match parse(value) {
        Ok(micros) => Slot { value: Some(micros) },
        Err(reason) => {
            errors.invalid(&path(), Some(value.take()), Some(&reason));
            Slot { value: None }
        }
    }
}

fn write_slot(map: &mut Map<String, Value>, key: &str, slot: &Slot) {
    if let Some(micros) = slot.value {
        set(map, key, to_secs(micros));
    }
}

/// Normalizes all timestamps of `event` and sets `received`.
pub(super) fn normalize(event: &mut Map<String, Value>, config: &NormalizeConfig, errors: &mut Errors) {
    let received = config.received_at.timestamp_micros();
    let mut parsed = Parsed {
        timestamp: parse_slot(event, "timestamp", || "timestamp".to_owned(), errors),
        start_timestamp: parse_slot(event, "start_timestamp", || "start_timestamp".to_owned(), errors),
        breadcrumbs: Vec::new(),
        spans: Vec::new(),
    };
    if let Some(crumbs) = breadcrumb_values(event) {
        for (i, crumb) in crumbs.iter_mut().enumerate() {
            if let Value::Object(crumb) = crumb {
                let path = || format!("breadcrumbs.values.{i}.timestamp");
                parsed.breadcrumbs.push(parse_slot(crumb, "timestamp", path, errors));
            } else {
                parsed.breadcrumbs.push(Slot { value: None });
            }
        }
    }
    if let Some(Value::Array(spans)) = event.field_mut("spans") {
        for (i, span) in spans.iter_mut().enumerate() {
            if let Value::Object(span) = span {
                let start =
                    parse_slot(span, "start_timestamp", || format!("spans.{i}.start_timestamp"), errors);
                let end = parse_slot(span, "timestamp", || format!("spans.{i}.timestamp"), errors);
                parsed.spans.push((start, end));
            } else {
                parsed.spans.push((Slot { value: None }, Slot { value: None }));
            }
        }
    }

    // Envelope clock drift (Relay server: ClockDriftProcessor before normalization).
    if let Some(sent_at) = config.sent_at {
        let sent = sent_at.timestamp_micros();
        let drift = received - sent;
        if drift.abs() >= MIN_CLOCK_DRIFT_MICROS {
            parsed.shift(drift);
            let mut entry = Map::new();
            entry.insert("type".into(), Value::from("clock_drift"));
            entry.insert("name".into(), Value::from("timestamp"));
            entry.insert("sdk_time".into(), rfc3339(sent));
            entry.insert("server_time".into(), rfc3339(received));
            errors.push_entry(entry);
        }
    }

    // Missing timestamp → received; too far in the future/past → shift everything.
    let timestamp = *parsed.timestamp.value.get_or_insert(received);
    let future_limit = received.saturating_add(config.max_secs_in_future.saturating_mul(1_000_000));
    let past_limit = received.saturating_sub(config.max_secs_in_past.saturating_mul(1_000_000));
    let kind = if timestamp > future_limit {
        Some("future_timestamp")
    } else if timestamp < past_limit {
        Some("past_timestamp")
    } else {
        None
    };
    if let Some(kind) = kind {
        parsed.shift(received - timestamp);
        let mut entry = Map::new();
        entry.insert("type".into(), Value::from(kind));
        entry.insert("name".into(), Value::from("timestamp"));
        entry.insert("sdk_time".into(), rfc3339(timestamp));
        entry.insert("server_time".into(), rfc3339(received));
        errors.push_entry(entry);
    }

    write_slot(event, "timestamp", &parsed.timestamp);
    write_slot(event, "start_timestamp", &parsed.start_timestamp);
    if let Some(crumbs) = breadcrumb_values(event) {
        for (crumb, slot) in crumbs.iter_mut().zip(&parsed.breadcrumbs) {
            if let Value::Object(crumb) = crumb {
                write_slot(crumb, "timestamp", slot);
            }
        }
    }
    if let Some(Value::Array(spans)) = event.field_mut("spans") {
        for (span, (start, end)) in spans.iter_mut().zip(&parsed.spans) {
            if let Value::Object(span) = span {
                write_slot(span, "start_timestamp", start);
                write_slot(span, "timestamp", end);
            }
        }
    }
    event.insert("received".into(), to_secs(received));
}

fn breadcrumb_values(event: &mut Map<String, Value>) -> Option<&mut Vec<Value>> {
    match event.field_mut("breadcrumbs")?.field_mut("values")? {
        Value::Array(values) => Some(values),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_accepted_forms() {
        let base = 1_304_358_096_000_000;
        assert_eq!(parse(&json!("2011-05-02T17:41:36Z")), Ok(base));
        assert_eq!(parse(&json!("2011-05-02T17:41:36")), Ok(base));
        assert_eq!(parse(&json!("2011-05-02T19:41:36+02:00")), Ok(base));
        assert_eq!(parse(&json!("2011-05-02T17:41:36.5")), Ok(base + 500_000));
        assert_eq!(parse(&json!(1_304_358_096)), Ok(base));
        assert_eq!(parse(&json!(1_304_358_096.25)), Ok(base + 250_000));
        assert_eq!(parse(&json!(-5)), Ok(-5_000_000));
    }

    #[test]
    fn rejects_garbage_with_relays_reason() {
        assert_eq!(parse(&json!("not a date")).unwrap_err(), "input contains invalid characters");
        assert!(parse(&json!("1304358096")).is_err());
        assert_eq!(parse(&json!(true)).unwrap_err(), "expected timestamp");
        assert!(parse(&json!(1e300)).is_err());
    }

    #[test]
    fn renders_floats() {
        assert_eq!(to_secs(1_304_358_096_250_000), json!(1_304_358_096.25));
        assert_eq!(to_secs(-5_000_000), json!(-5.0));
        assert_eq!(to_secs(-500_000), json!(-0.5));
    }
}
