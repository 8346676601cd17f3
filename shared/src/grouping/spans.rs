//! Span grouping of transactions (spec §9, Sentry's `spans/grouping`, config `default:2022-10-27`).
//!
//! [`calculate_span_grouping`] writes `span_grouping_config = {"id": "default:2022-10-27"}`, a
//! 16-hex `hash` on every span and the transaction root span's hash on `contexts.trace.hash`, as
//! Sentry's `_calculate_span_grouping` does. A span's hash is the first 16 hex digits of the MD5 of
//! its fingerprint values: the span's own `fingerprint` if it has one (with `{{ default }}`
//! expanded), else the first strategy that applies —
//!
//! 1. `db` query ops: parameterized SQL (`IN (...)` lists collapsed, `SAVEPOINT` names, quoted
//!    strings, numbers and booleans replaced by `%s`);
//! 2. `http.client`: method, URL scheme, host and path (no query string);
//! 3. `redis` / `db.redis`: the command name;
//!
//! — else the raw description. The root span hashes the transaction name. Results already stored
//! under the same config id are kept. Like Sentry (which swallows errors here), an event without
//! `contexts.trace.span_id`, a transaction name or span ids is left unchanged.

use std::collections::HashMap;
use std::sync::LazyLock;

use md5::{Digest, Md5};
use regex::Regex;
use serde_json::{Value, json};

use super::compat::{get_path, py_strip, urlsplit};
use super::hashing::parse_fingerprint_variable;
use crate::tree::Fields;

/// The span grouping config Sentry uses for new events.
pub const SPAN_GROUPING_CONFIG_ID: &str = "default:2022-10-27";

/// Ops the database strategy applies to.
const DB_OPS: [&str; 6] =
    ["db", "db.query", "db.sql.query", "db.sql.active_record", "db.sql.execute", "db.sql.transaction"];

const HTTP_METHODS: [&str; 9] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// `LOOSE_IN_CONDITION_PATTERN`: `IN (%s, %s)`, `IN ($1, $2)`, `IN (?, ?)`, `IN (1, 2)`.
static LOOSE_IN_CONDITION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i) IN \(((%s|\$?\d+|\?)(\s*,\s*(%s|\$?\d+|\?))*)\)").ok());
/// `DB_SAVEPOINT_PATTERN`.
static DB_SAVEPOINT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"(?i)SAVEPOINT (?:(?:"[^"]+")|(?:`[^`]+`)|(?:[a-z]\w+))"#).ok());
/// The number and boolean alternatives of `DB_PARAMETRIZATION_PATTERN` (the quoted-string
/// alternative needs a look-ahead and is scanned by hand in [`quoted_string_end`]).
static DB_NUMBER_OR_BOOL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?:-?\b(?:[0-9]+\.)?[0-9]+(?:[eE][+-]?[0-9]+)?\b)|(?:\b(?:true|false)\b)").ok()
});

/// Whether each built-in pattern of this module compiled (see [`super::builtin_patterns`]).
pub(super) fn builtin_patterns() -> [(&'static str, bool); 3] {
    [
        ("spans::LOOSE_IN_CONDITION", LOOSE_IN_CONDITION.is_some()),
        ("spans::DB_SAVEPOINT", DB_SAVEPOINT.is_some()),
        ("spans::DB_NUMBER_OR_BOOL", DB_NUMBER_OR_BOOL.is_some()),
    ]
}

/// Hex digest truncated to 64 bits, Sentry's span `Hash`.
fn hash_values<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Md5::new();
    for value in values {
        hasher.update(value.as_bytes());
    }
    let mut digest = hex::encode(hasher.finalize());
    digest.truncate(16);
    digest
}

/// End (exclusive byte offset) of the single-quoted SQL string starting at `start`, following
/// `'(?:[^']|'')*?(?:\\'.*|'(?!'))`: lazily consume characters or doubled quotes until either a
/// backslash-quote (which swallows the rest of the line) or a quote not followed by another quote.
fn quoted_string_end(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'\'') {
            let rest = &s[i..];
            return Some(i + rest.find('\n').unwrap_or(rest.len()));
        }
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += s[i..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// `DB_PARAMETRIZATION_PATTERN.subn("%s", query)`.
fn parametrize_literals(query: &str) -> (String, usize) {
    let Some(numbers) = DB_NUMBER_OR_BOOL.as_ref() else {
        return (query.to_owned(), 0);
    };
    let mut out = String::with_capacity(query.len());
    let mut count = 0;
    let mut pos = 0;
    while pos <= query.len() {
        let number = numbers.find_at(query, pos);
        let quoted = query[pos..]
            .match_indices('\'')
            .map(|(i, _)| pos + i)
            .take_while(|start| number.is_none_or(|m| *start < m.start()))
            .find_map(|start| quoted_string_end(query, start).map(|end| (start, end)));
        let (start, end) = match (quoted, number) {
            (Some(q), _) => q,
            (None, Some(m)) => (m.start(), m.end()),
            (None, None) => break,
        };
        out.push_str(&query[pos..start]);
        out.push_str("%s");
        count += 1;
        if end == start {
            break;
        }
        pos = end;
    }
    if pos < query.len() {
        out.push_str(&query[pos..]);
    }
    (out, count)
}

fn replace_counting(re: Option<&Regex>, text: &str, replacement: &str) -> (String, usize) {
    let Some(re) = re else {
        return (text.to_owned(), 0);
    };
    let count = re.find_iter(text).count();
    if count == 0 {
        return (text.to_owned(), 0);
    }
    (re.replace_all(text, replacement).into_owned(), count)
}

/// `parametrize_db_span_strategy`.
fn parametrize_db(description: &str) -> Option<String> {
    let (query, in_count) = replace_counting(LOOSE_IN_CONDITION.as_ref(), description, " IN (%s)");
    let (query, savepoint_count) = replace_counting(DB_SAVEPOINT.as_ref(), &query, "SAVEPOINT %s");
    let (query, param_count) = parametrize_literals(&query);
    (in_count + savepoint_count + param_count > 0).then(|| py_strip(&query).to_owned())
}

/// `remove_http_client_query_string_strategy`: `[METHOD, scheme, netloc, path]`.
fn http_client_parts(description: &str) -> Option<Vec<String>> {
    let (method, url) = description.split_once(' ')?;
    let method = method.to_uppercase();
    if !HTTP_METHODS.contains(&method.as_str()) {
        return None;
    }
    let url = urlsplit(url);
    Some(vec![method, url.scheme.into_owned(), url.netloc.to_owned(), url.path.to_owned()])
}

/// The fingerprint values of a span under the default strategies.
fn default_span_fingerprint(span: &Value) -> Vec<String> {
    let op = span.field("op").and_then(Value::as_str).unwrap_or("");
    let description = span.field("description").and_then(Value::as_str).unwrap_or("");
    let strategy = if DB_OPS.contains(&op) {
        parametrize_db(description).map(|q| vec![q])
    } else if op == "http.client" {
        http_client_parts(description)
    } else if op == "redis" || op == "db.redis" {
        Some(vec![description.split(' ').next().unwrap_or("").to_owned()])
    } else {
        None
    };
    strategy.unwrap_or_else(|| vec![description.to_owned()])
}

/// `get_span_group`: hash of the span's fingerprint (default `{{ default }}`).
fn span_group(span: &Value) -> String {
    let fingerprint: Vec<&str> = span
        .field("fingerprint")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .unwrap_or_else(|| vec!["{{ default }}"]);
    let mut values: Vec<String> = Vec::new();
    for entry in fingerprint {
        if parse_fingerprint_variable(entry) == Some("default") {
            values.extend(default_span_fingerprint(span));
        } else {
            values.push(entry.to_owned());
        }
    }
    hash_values(values.iter().map(String::as_str))
}

fn span_id(span: &Value) -> Option<&str> {
    span.field("span_id").and_then(Value::as_str)
}

/// Whether the event already carries complete results of [`SPAN_GROUPING_CONFIG_ID`].
fn has_stored_results(event: &Value) -> bool {
    get_path(event, &["span_grouping_config", "id"]).and_then(Value::as_str) == Some(SPAN_GROUPING_CONFIG_ID)
        && event.field("spans").and_then(Value::as_array).is_none_or(|spans| {
            spans.iter().all(|s| span_id(s).is_some() && s.field("hash").is_some_and(|h| !h.is_null()))
        })
        && get_path(event, &["contexts", "trace", "span_id"]).is_some()
        && get_path(event, &["contexts", "trace", "hash"]).is_some()
}

/// Computes and writes the span grouping of a transaction (see the module docs). Returns whether
/// the event carries span grouping results afterwards.
pub fn calculate_span_grouping(event: &mut Value) -> bool {
    if has_stored_results(event) {
        return true;
    }
    let Some(root_span_id) = get_path(event, &["contexts", "trace", "span_id"]).and_then(Value::as_str)
    else {
        return false;
    };
    let Some(transaction) = get_path(event, &["transaction"]).and_then(Value::as_str) else {
        return false;
    };
    let spans: &[Value] = event.field("spans").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let mut results: HashMap<String, String> = HashMap::with_capacity(spans.len() + 1);
    for span in spans {
        let Some(id) = span_id(span) else {
            return false;
        };
        results.insert(id.to_owned(), span_group(span));
    }
    results.insert(root_span_id.to_owned(), hash_values([transaction]));
    let root_span_id = root_span_id.to_owned();

    if let Some(spans) = event.field_mut("spans").and_then(Value::as_array_mut) {
        for span in spans.iter_mut() {
            let hash = span_id(span).and_then(|id| results.get(id)).cloned();
            if let (Some(hash), Some(span)) = (hash, span.as_object_mut()) {
                span.insert("hash".to_owned(), Value::String(hash));
            }
        }
    }
    if let Some(trace) =
        event.field_mut("contexts").and_then(|c| c.field_mut("trace")).and_then(Value::as_object_mut)
        && let Some(hash) = results.get(&root_span_id)
    {
        trace.insert("hash".to_owned(), Value::String(hash.clone()));
    }
    if let Some(data) = event.as_object_mut() {
        data.insert("span_grouping_config".to_owned(), json!({ "id": SPAN_GROUPING_CONFIG_ID }));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(query: &str) -> Option<String> {
        parametrize_db(query)
    }

    #[test]
    fn regexes_compile() {
        assert!(builtin_patterns().iter().all(|(_, ok)| *ok));
    }

    /// Sentry's `test_parametrize_db_span_strategy` table.
    #[test]
    fn test_parametrize_db_span_strategy() {
        let cases: [(&str, Option<&str>); 28] = [
            ("SELECT * FROM table WHERE id = 1", Some("SELECT * FROM table WHERE id = %s")),
            ("SELECT * FROM table LIMIT 1", Some("SELECT * FROM table LIMIT %s")),
            (
                "SELECT * FROM table WHERE temperature > -100",
                Some("SELECT * FROM table WHERE temperature > %s"),
            ),
            ("SELECT * FROM table WHERE salary > 1e7", Some("SELECT * FROM table WHERE salary > %s")),
            ("SELECT * FROM table123 WHERE id = %s", None),
            ("SELECT * FROM ta123ble WHERE id = %s", None),
            ("SELECT * FROM `123table` WHERE id = %s", None),
            ("SELECT * FROM table WHERE sku = 'foo'", Some("SELECT * FROM table WHERE sku = %s")),
            (
                "SELECT * FROM table WHERE quote = 'it\\'s a string",
                Some("SELECT * FROM table WHERE quote = %s"),
            ),
            ("SELECT * from \"table\" WHERE sku = %s", None),
            ("SELECT * from table WHERE sku = \"foo\"", None),
            ("SELECT * FROM table WHERE deleted = true", Some("SELECT * FROM table WHERE deleted = %s")),
            ("SELECT * FROM table WHERE deleted = false", Some("SELECT * FROM table WHERE deleted = %s")),
            ("SELECT * FROM table_true WHERE deleted = %s", None),
            ("SELECT * FROM true_table WHERE deleted = %s", None),
            ("SELECT * FROM tatrueble WHERE deleted = %s", None),
            ("SELECT * FROM table WHERE deleted_at IS NULL", None),
            (
                "SELECT count() FROM table WHERE id IN (%s, %s) AND id IN (%s, %s, %s)",
                Some("SELECT count() FROM table WHERE id IN (%s) AND id IN (%s)"),
            ),
            (
                "SELECT count() FROM table WHERE id IN (100, 101, 102)",
                Some("SELECT count() FROM table WHERE id IN (%s)"),
            ),
            (
                "select count() from table where id in (100, 101, 102)",
                Some("select count() from table where id IN (%s)"),
            ),
            (
                "SELECT count() FROM table WHERE id IN ($1, $2, $3)",
                Some("SELECT count() FROM table WHERE id IN (%s)"),
            ),
            (
                "SELECT count() FROM table WHERE id IN (?, ?, ?)",
                Some("SELECT count() FROM table WHERE id IN (%s)"),
            ),
            ("SAVEPOINT unquoted_identifier", Some("SAVEPOINT %s")),
            ("SAVEPOINT unquoted_identifier;", Some("SAVEPOINT %s;")),
            ("savepoint unquoted_identifier", Some("SAVEPOINT %s")),
            ("SAVEPOINT \"pg_quoted_identifier\"", Some("SAVEPOINT %s")),
            ("SAVEPOINT `mysql_quoted_identifier`", Some("SAVEPOINT %s")),
            ("SELECT 'it''s' FROM t", Some("SELECT %s FROM t")),
        ];
        for (query, expected) in cases {
            assert_eq!(db(query).as_deref(), expected, "{query}");
        }
    }

    /// Sentry's `test_remove_http_client_query_string_strategy` table.
    #[test]
    fn test_remove_http_client_query_string_strategy() {
        let parts = |d: &str| http_client_parts(d);
        assert_eq!(parts(""), None);
        assert_eq!(parts("making an http request"), None);
        assert_eq!(
            parts("GET https://[this-is-not-a-valid-url?query").unwrap(),
            ["GET", "https", "[this-is-not-a-valid-url", ""]
        );
        assert_eq!(
            parts("GET https://[Filtered]@3x.png").unwrap(),
            ["GET", "https", "[Filtered]@3x.png", ""]
        );
        assert_eq!(
            parts("GET https://sentry.io/api/0/organization/sentry/projects/?all_projects=1").unwrap(),
            ["GET", "https", "sentry.io", "/api/0/organization/sentry/projects/"]
        );
    }

    /// Sentry's `test_remove_redis_command_arguments_strategy` and raw-description fallback.
    #[test]
    fn test_redis_and_raw_description() {
        let span = |op: &str, d: &str| serde_json::json!({"op": op, "description": d});
        assert_eq!(default_span_fingerprint(&span("redis", "INCRBY 'key' 1")), ["INCRBY"]);
        assert_eq!(default_span_fingerprint(&span("db.redis", "INCRBY 'key' 1")), ["INCRBY"]);
        assert_eq!(default_span_fingerprint(&span("cache", "INCRBY 'key' 1")), ["INCRBY 'key' 1"]);
        assert_eq!(default_span_fingerprint(&serde_json::json!({})), [""]);
        assert_eq!(default_span_fingerprint(&span("http.client", "making a request")), ["making a request"]);
    }

    /// Sentry's `test_default_2022_10_27_strategy`.
    #[test]
    fn test_default_2022_10_27_strategy() {
        let mut event = serde_json::json!({
            "transaction": "transaction name",
            "contexts": {"trace": {"span_id": "a".repeat(16)}},
            "spans": [
                {"span_id": "b".repeat(16), "op": "db.sql.query", "description": "SELECT * FROM table WHERE id = 1"},
                {"span_id": "c".repeat(16), "op": "db.sql.query", "description": "SELECT * FROM table WHERE id IN (4, 5, 6)"},
                {"span_id": "d".repeat(16), "op": "db.sql.query", "description": "SELECT * FROM table WHERE id = 'string'"},
            ]
        });
        assert!(calculate_span_grouping(&mut event));
        let hashes: Vec<&str> =
            event["spans"].as_array().unwrap().iter().map(|s| s["hash"].as_str().unwrap()).collect();
        assert_eq!(
            hashes,
            [
                hash_values(["SELECT * FROM table WHERE id = %s"]),
                hash_values(["SELECT * FROM table WHERE id IN (%s)"]),
                hash_values(["SELECT * FROM table WHERE id = %s"]),
            ]
        );
        assert_eq!(event["contexts"]["trace"]["hash"], hash_values(["transaction name"]));
        assert_eq!(event["span_grouping_config"], serde_json::json!({"id": "default:2022-10-27"}));
    }

    /// Sentry's `test_basic_span_grouping_strategy` fingerprint row.
    #[test]
    fn fingerprints_take_precedence_over_the_description() {
        let mut event = serde_json::json!({
            "transaction": "t",
            "contexts": {"trace": {"span_id": "a".repeat(16)}},
            "spans": [
                {"span_id": "b".repeat(16), "description": "hi", "fingerprint": ["a"]},
                {"span_id": "c".repeat(16), "description": "hi"},
            ]
        });
        calculate_span_grouping(&mut event);
        assert_eq!(event["spans"][0]["hash"], hash_values(["a"]));
        assert_eq!(event["spans"][1]["hash"], hash_values(["hi"]));
    }

    /// Sentry's `test_reuse_existing_grouping_results`.
    #[test]
    fn test_reuse_existing_grouping_results() {
        let mut event = serde_json::json!({
            "transaction": "transaction name",
            "contexts": {"trace": {"span_id": "a".repeat(16), "hash": "a".repeat(16)}},
            "spans": [{"span_id": "b".repeat(16), "hash": "b".repeat(16)}],
            "span_grouping_config": {"id": "default:2022-10-27"},
        });
        let before = event.clone();
        assert!(calculate_span_grouping(&mut event));
        assert_eq!(event, before);
    }

    #[test]
    fn missing_trace_context_leaves_the_event_alone() {
        let mut event =
            serde_json::json!({"transaction": "t", "spans": [{"span_id": "b", "description": "x"}]});
        let before = event.clone();
        assert!(!calculate_span_grouping(&mut event));
        assert_eq!(event, before);
    }
}
