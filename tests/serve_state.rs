//! The README's serve-then-tail steps, with the real binary: `postflow serve --state FILE` saves the
//! embedded store while it serves (every 5 s) and when it is stopped (SIGTERM, as Ctrl-C), so
//! `postflow tail --state FILE` shows what was served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_postflow");
const KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";

fn post_event(addr: &str, event_id: &str) -> String {
    let body = format!(
        r#"{{"event_id":"{event_id}","message":"served then tailed","level":"error","platform":"python"}}"#
    );
    let req = format!(
        "POST /api/42/store/ HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Sentry-Auth: Sentry sentry_key={KEY}, sentry_version=7\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn tail(state: &std::path::Path) -> String {
    let out = Command::new(BIN).args(["tail", "--json", "--state"]).arg(state).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serve_state_is_saved_while_serving_and_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("pf-serve-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--seed"])
        .arg(format!("{root}/events/seed.json"))
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("postflow serve on http://") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let first = "5e1f2a3b4c5d6e7f8091a2b3c4d5e6f1";
    assert!(post_event(&addr, first).starts_with("HTTP/1.1 200"));
    // Saved while serving: within the 5 s period.
    let t0 = Instant::now();
    while !(state.exists() && tail(&state).contains(first)) {
        assert!(t0.elapsed() < Duration::from_secs(15), "the state was not saved while serving");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Saved on SIGTERM: an event served right before the stop is in the state.
    let second = "5e1f2a3b4c5d6e7f8091a2b3c4d5e6f2";
    assert!(post_event(&addr, second).starts_with("HTTP/1.1 200"));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "serve stops cleanly on SIGTERM: {exit:?}");
    let records = tail(&state);
    assert!(records.contains(first) && records.contains(second), "{records}");
    assert_eq!(records.lines().filter(|l| l.starts_with("[2,\"insert\"")).count(), 2, "{records}");
    let _ = std::fs::remove_dir_all(&dir);
}
