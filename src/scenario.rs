//! Replaying sample events and scenario files.
//!
//! A scenario file (`*.scenario.json`) names a seed and a list of steps, each an event file with the
//! expected answer:
//!
//! ```json
//! {"description": "…", "seed": "seed.json",
//!  "steps": [{"event": "accept-invite.get-2fa-required.json", "expect": {"status": 200, "body": {"needs2fa": true}}}]}
//! ```
//! `expect.body` is matched as a subset (every key given must be equal). Steps of one scenario share a
//! [`Session`] (cookies, issued secret). A plain event file replays without an expectation; it fails
//! only on a 5xx.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use crate::apigw::{request_from_event, response_json};
use crate::backend::{App, Function, route};
use crate::session::Session;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub seed: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub event: String,
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Why the step expects what it does (for readers of the scenario file).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: u16,
    #[serde(default)]
    pub body: Option<Value>,
}

/// One replayed step.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub source: String,
    pub function: Option<Function>,
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    pub millis: f64,
    /// `None` = as expected; otherwise why not.
    pub failure: Option<String>,
    pub response: Value,
}

/// Expands the command-line paths into a plan: scenario files and loose event files, in name order.
pub fn plan(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            entries.sort();
            let scenarios: Vec<PathBuf> = entries.iter().filter(|p| is_scenario(p)).cloned().collect();
            // A folder with scenario files replays its scenarios (they name the events they use).
            if scenarios.is_empty() {
                out.extend(entries.into_iter().filter(|p| !is_seed(p)));
            } else {
                out.extend(scenarios);
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

pub fn is_scenario(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".scenario.json"))
}

fn is_seed(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed") && n.ends_with(".json"))
}

/// Hides the invite token segment of accept-invite paths in printed output.
pub fn display_path(path: &str) -> String {
    if let Some((Function::AcceptInvite, _)) = route("GET", path) {
        let mut parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        if let Some(last) = parts.last_mut() {
            *last = "<token>";
        }
        return format!("{}/", parts.join("/"));
    }
    path.to_owned()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs one event file (with placeholders filled from `session`), updating the session.
pub async fn run_event(app: &App, session: &mut Session, file: &Path, expect: Option<&Expect>) -> StepResult {
    let source = file.display().to_string();
    let fail = |msg: String| StepResult {
        source: source.clone(),
        function: None,
        method: String::new(),
        path: String::new(),
        status: None,
        millis: 0.0,
        failure: Some(msg),
        response: Value::Null,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read: {e}")),
    };
    session.webauthn_origin = app.config.webauthn.as_ref().map(|rp| rp.origin.clone());
    let mut event = match session.prepare(&text, now_secs()) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let method =
        event.pointer("/requestContext/http/method").and_then(Value::as_str).unwrap_or_default().to_owned();
    let path = event.get("rawPath").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some((function, params)) = route(&method, &path) else {
        return fail(format!("no function serves {method} {path}"));
    };
    // API Gateway fills pathParameters from the route; do the same when the file leaves them out.
    if event.get("pathParameters").is_none_or(Value::is_null) {
        event["pathParameters"] =
            params.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>().into();
    }
    let req = match request_from_event(&event) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let t0 = Instant::now();
    let resp = app.invoke(function, req).await;
    let millis = t0.elapsed().as_secs_f64() * 1000.0;
    let response = response_json(&resp);
    session.observe(&response);
    session.observe_text(app.outbox.sent().last().map(|m| m.text.expose()));
    let status = resp.status().as_u16();
    let failure = check(expect, status, &response);
    StepResult {
        source,
        function: Some(function),
        method,
        path: display_path(&path),
        status: Some(status),
        millis,
        failure,
        response,
    }
}

fn check(expect: Option<&Expect>, status: u16, response: &Value) -> Option<String> {
    let Some(expect) = expect else {
        return (status >= 500).then(|| format!("server error {status}"));
    };
    if status != expect.status {
        return Some(format!("expected status {}, got {status}", expect.status));
    }
    if let Some(want) = &expect.body {
        let got: Value =
            serde_json::from_str(response["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null);
        if let Some(diff) = subset_diff(want, &got, "") {
            return Some(diff);
        }
    }
    None
}

/// `None` when every key of `want` is equal in `got` (objects recursively; other values exactly).
pub fn subset_diff(want: &Value, got: &Value, at: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(k, wv)| match g.get(k) {
            Some(gv) => subset_diff(wv, gv, &format!("{at}/{k}")),
            None => Some(format!("body{at}/{k} is missing")),
        }),
        _ if want == got => None,
        _ => Some(format!("body{at}: expected {want}, got {got}")),
    }
}

/// Loads a scenario file and resolves its seed and event paths relative to the file.
pub fn load_scenario(file: &Path) -> Result<(Scenario, PathBuf), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let s: Scenario = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((s, file.parent().unwrap_or(Path::new(".")).to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_matching() {
        assert!(subset_diff(&json!({"a": 1}), &json!({"a": 1, "b": 2}), "").is_none());
        assert!(subset_diff(&json!({"a": {"x": true}}), &json!({"a": {"x": true, "y": 1}}), "").is_none());
        assert_eq!(subset_diff(&json!({"a": 2}), &json!({"a": 1}), "").unwrap(), "body/a: expected 2, got 1");
        assert!(subset_diff(&json!({"z": 1}), &json!({}), "").unwrap().contains("missing"));
        assert!(
            subset_diff(&json!([{"details": "Invalid OTP"}]), &json!([{"details": "Invalid OTP"}]), "")
                .is_none()
        );
    }

    #[test]
    fn tokens_are_hidden() {
        assert_eq!(
            display_path("/api/0/accept-invite/acme/20/5f0a/"),
            "/api/0/accept-invite/acme/20/<token>/"
        );
        assert_eq!(
            display_path("/api/0/users/me/authenticators/totp/enroll/"),
            "/api/0/users/me/authenticators/totp/enroll/"
        );
    }
}
