//! Memory per request, measured by DHAT's counting global allocator (the peak of bytes live that the
//! request allocated): deterministic, unlike RSS. What the handler may hold for
//! one request is bounded by the one event an envelope may create; a request with an unknown key
//! holds next to nothing, whatever its body would inflate to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Peak bytes live during `f` of the blocks allocated while it ran (DHAT tracks only blocks allocated
/// while its profiler runs).
async fn peak_during<T, F: std::future::Future<Output = T>>(f: F) -> (T, usize) {
    let profiler = dhat::Profiler::builder().testing().build();
    let out = f.await;
    let peak = dhat::HeapStats::get().max_bytes;
    drop(profiler);
    (out, peak)
}

const MIB: f64 = 1048576.0;

use serde_json::{Value, json};

/// The JSON text of a `bytes` event with `n` units under `key` (an object's entries `"m00000":"1"`
/// or an array's 7-character strings), the rest a long message; `None` when `n` units do not fit.
fn dense_event(bytes: usize, key: &str, n: usize, object: bool) -> Option<String> {
    let base = make_event(json!({})).to_string();
    let mut text = format!("{},\"{key}\":{}", &base[..base.len() - 1], if object { '{' } else { '[' });
    for i in 0..n {
        if object {
            text += &format!("\"m{i:05}\":\"1\",");
        } else {
            text += &format!("\"s{i:06}\",");
        }
    }
    if n > 0 {
        text.pop();
    }
    text.push(if object { '}' } else { ']' });
    let pad = bytes.checked_sub(text.len() + r#","message":""}"#.len())?;
    text += &format!(r#","message":"{}"}}"#, "m".repeat(pad));
    Some(text)
}

/// The densest `bytes` event of `dense_event`'s shape that the parser accepts: the most units that
/// still parse (found by bisection on the parser itself, so it follows the parser's accounting).
/// Objects are `modules` entries (about 10 bytes of tree per byte), arrays items of 7 characters
/// (8): the densest shapes under the limit.
fn densest_accepted_event(bytes: usize, key: &str, object: bool) -> Value {
    let parses = |n: usize| {
        dense_event(bytes, key, n, object)
            .is_some_and(|e| shared::ingest::parse::parse_event(e.as_bytes()).is_ok())
    };
    let (mut ok, mut refused) = (bytes / 40, bytes / 8);
    assert!(parses(ok) && !parses(refused));
    while refused - ok > 1 {
        let mid = (ok + refused) / 2;
        if parses(mid) { ok = mid } else { refused = mid }
    }
    serde_json::from_str(&dense_event(bytes, key, ok, object).unwrap()).unwrap()
}

/// One test (the counters are process-wide): each case's peak, printed, and held to its bound.
#[tokio::test(flavor = "current_thread")]
async fn peak_memory_per_request() {
    let env = memory_env().await;
    let made_up = "deadbeefdeadbeefdeadbeefdeadbeef";
    let event_bytes = 896 << 10;
    // Each request gets its own event id (the same id again would be a duplicate).
    let envelope = |key: &str, events: Vec<Value>| {
        let items: Vec<Vec<u8>> = events.iter().map(|e| e.to_string().into_bytes()).collect();
        let decompressed = items.iter().map(Vec::len).sum::<usize>() as f64 / MIB;
        let items: Vec<(&str, Vec<u8>)> = items.into_iter().map(|b| ("event", b)).collect();
        let mut r = raw_envelope(42, key, gzip(&envelope_body(None, &items)));
        r.headers.push(("content-encoding".into(), "gzip".into()));
        (r, decompressed)
    };
    let zeros = |n: usize| (0..n).map(|_| zeros_event(event_bytes)).collect::<Vec<_>>();
    let dense_outside_extra = || {
        let mut e = zeros_event(event_bytes);
        e["fingerprint"] = e["extra"]["a"].take();
        e["extra"] = json!({});
        e
    };
    // Warm the key cache and the handler's lazies (the regexes of the grouping rules are compiled on
    // first use: the corpus ANR's Java and native frames use them), so the cases measure the request
    // alone.
    assert_eq!(env.handler.handle_api(&envelope(KEY, zeros(1)).0).await.status, 200);
    assert_eq!(env.handler.handle_api(&envelope(KEY, vec![android_anr_event(0)]).0).await.status, 200);
    assert_eq!(env.handler.handle_api(&envelope(made_up, zeros(1)).0).await.status, 403);

    let cases = [
        ("unknown key, 19 zeros events", envelope(made_up, zeros(19)), 403),
        ("zeros in extra (trimmed), 1 event", envelope(KEY, zeros(1)), 200),
        ("zeros in extra, 19 events (1 parsed)", envelope(KEY, zeros(19)), 200),
        ("zeros outside extra (refused)", envelope(KEY, vec![dense_outside_extra()]), 413),
        ("Android ANR, threads to 0.7 MiB", envelope(KEY, vec![android_anr_event(700 << 10)]), 200),
        // Grouping adds in-app flags and `data` to its 20,000 frames: past one stream record, refused
        // before anything is written (was a 500 after the save).
        (
            "Android ANR, 0.9 MiB (too large grouped)",
            envelope(KEY, vec![android_anr_event(event_bytes)]),
            413,
        ),
        (
            "densest accepted object, 0.9 MiB",
            envelope(KEY, vec![densest_accepted_event(event_bytes, "modules", true)]),
            200,
        ),
        (
            "densest accepted array (an unknown key)",
            envelope(KEY, vec![densest_accepted_event(event_bytes, "x_dense", false)]),
            200,
        ),
    ];
    let mut per_mib = Vec::new();
    for (name, (req, decompressed), status) in cases {
        let (reply, peak) = peak_during(env.handler.handle_api(&req)).await;
        assert_eq!(reply.status, status, "{name}: {:?}", reply.body);
        let got = reply.status;
        let mib = peak as f64 / MIB;
        eprintln!(
            "{name:<40} {got}  request {:>8} B  decompressed {decompressed:>5.1} MiB  peak {mib:>5.1} MiB  per MiB {:>5.1}",
            req.body.len(),
            mib / decompressed
        );
        per_mib.push((name, mib, mib / decompressed));
    }
    // Unknown key: the 64 KiB envelope-header prefix and little else (the 17 MiB it would inflate to
    // are never decoded).
    assert!(per_mib[0].1 < 0.5, "{per_mib:?}");
    // `extra` is trimmed while it is parsed: the issue's 0.9 MiB bomb (45 MiB per MiB before) holds
    // its 16 KiB bag and little else.
    assert!(per_mib[1].2 < 2.5, "{per_mib:?}");
    // A tree denser than 8 bytes per byte of JSON is refused while it is built: under 10 per MiB.
    assert!(per_mib[3].2 < 10.5, "{per_mib:?}");
    // What is accepted: the tree (at most 8 bytes per byte, real events 3–6, counting what is held
    // while it is built: the scratch list an object is gathered in, an array's unused room) and what
    // grouping adds to every frame; the stream record is written as the tree is freed. Measured: the
    // Android ANR 9.3 (11.5 before frames had room for grouping's keys, `data` maps their size, the
    // record grew by quarters and was written from the event given up to it), the densest object
    // accepted 9.5 (15.1 before the scratch list was counted: an object of 53,000 entries was built
    // while its 6 MiB scratch list was still held), the densest array 8.9.
    for (name, _, ratio) in &per_mib[4..] {
        if !name.contains("refused") && !name.contains("too large") {
            assert!(*ratio <= 10.0, "{name}: {ratio:.1} MiB per MiB");
        }
    }
    // 19 events: one is parsed; the rest is the decompressed body (17 MiB, under the 20 MiB limit, in a
    // buffer that grew by doubling: up to twice that). The largest request we accept stays far inside
    // save-event's 256 MB.
    assert!(per_mib[2].1 < 2.0 * 19.0 * event_bytes as f64 / MIB + 4.0, "{per_mib:?}");
}
