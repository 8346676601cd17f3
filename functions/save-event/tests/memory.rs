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

/// A 0.9 MiB event whose JSON parses into the densest tree the parser accepts: `modules` entries
/// (~10 bytes of tree per byte) up to just under the limit, the rest a long message.
fn densest_accepted_event(bytes: usize) -> Value {
    let limit = shared::ingest::parse::tree_limit(bytes);
    // tree bytes of one `"m00000":"1",` entry (13 bytes): entry 40 + key 6 + value 80 + 1
    let entries = (limit * 95 / 100 - bytes) / (126 - 12);
    let modules: serde_json::Map<String, Value> =
        (0..entries).map(|i| (format!("m{i:05}"), Value::from("1"))).collect();
    let mut e = make_event(json!({ "modules": modules }));
    let pad = bytes.saturating_sub(e.to_string().len());
    e["message"] = Value::from("m".repeat(pad));
    e
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
        ("densest accepted tree, 0.9 MiB", envelope(KEY, vec![densest_accepted_event(event_bytes)]), 200),
    ];
    let mut per_mib = Vec::new();
    for (name, (req, decompressed), status) in cases {
        let (got, peak) = peak_during(env.handler.handle_api(&req)).await.into_status();
        assert_eq!(got, status, "{name}");
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
    // `extra` is trimmed while it is parsed: the 0.9 MiB bomb (45 MiB per MiB before) holds
    // its 16 KiB bag and little else.
    assert!(per_mib[1].2 < 2.5, "{per_mib:?}");
    // A tree denser than 8 bytes per byte of JSON is refused while it is built: under 10 per MiB.
    assert!(per_mib[3].2 < 10.5, "{per_mib:?}");
    // What is accepted: the tree (at most 8 bytes per byte, real events 3–6) and the `data` grouping
    // adds to every frame; the stream record is written as the tree is freed. Measured: the Android
    // ANR 9.3 (11.5 before frames had room for grouping's keys, `data` maps their size, the record
    // grew by quarters and was written from the event given up to it), the densest tree accepted
    // 15.1 per MiB.
    assert!(per_mib[4].2 <= 10.0, "{per_mib:?}");
    for (name, _, ratio) in &per_mib[4..] {
        assert!(*ratio <= 16.0, "{name}: {ratio:.1} MiB per MiB");
    }
    // 19 events: one is parsed; the rest is the decompressed body (17 MiB, under the 20 MiB limit, in a
    // buffer that grew by doubling: up to twice that). The largest request we accept stays far inside
    // save-event's 256 MB.
    assert!(per_mib[2].1 < 2.0 * 19.0 * event_bytes as f64 / MIB + 4.0, "{per_mib:?}");
}

trait IntoStatus {
    fn into_status(self) -> (u16, usize);
}

impl IntoStatus for (shared::http::Reply, usize) {
    fn into_status(self) -> (u16, usize) {
        (self.0.status, self.1)
    }
}
