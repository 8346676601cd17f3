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

/// One test (the counters are process-wide): each case's peak, printed, and held to its bound.
#[tokio::test(flavor = "current_thread")]
async fn peak_memory_per_request() {
    let env = memory_env().await;
    let made_up = "deadbeefdeadbeefdeadbeefdeadbeef";
    let event_bytes = 896 << 10;
    let big_len = zeros_event(event_bytes).to_string().len();
    let decompressed = |n: usize| (n * big_len) as f64 / MIB;
    // Each request gets its own event id (the same id again would be a duplicate).
    let bomb = |key: &str, n: usize| {
        let big = zeros_event(event_bytes).to_string().into_bytes();
        let items: Vec<(&str, Vec<u8>)> = (0..n).map(|_| ("event", big.clone())).collect();
        let mut r = raw_envelope(42, key, gzip(&envelope_body(None, &items)));
        r.headers.push(("content-encoding".into(), "gzip".into()));
        r
    };
    // Warm the key cache and the handler's lazies, so the cases measure the request alone.
    let warm = bomb(KEY, 1);
    assert_eq!(env.handler.handle_api(&warm).await.status, 200);
    assert_eq!(env.handler.handle_api(&bomb(made_up, 1)).await.status, 403);

    let cases = [
        ("unknown key, 19 events gzip", bomb(made_up, 19), 403, 19),
        ("valid key, 1 event gzip", bomb(KEY, 1), 200, 1),
        ("valid key, 19 events gzip (1 parsed)", bomb(KEY, 19), 200, 19),
    ];
    let mut peaks = Vec::new();
    for (name, req, status, events) in cases {
        let (got, peak) = peak_during(env.handler.handle_api(&req)).await.into_status();
        assert_eq!(got, status, "{name}");
        let mib = peak as f64 / MIB;
        eprintln!(
            "{name:<40} request {:>8} B  decompressed {:>6.1} MiB  peak {mib:>6.1} MiB",
            req.body.len(),
            decompressed(events)
        );
        peaks.push(mib);
    }
    // Unknown key: the 64 KiB envelope-header prefix and little else (the 17 MiB it would inflate to
    // are never decoded).
    assert!(peaks[0] < 0.5, "unknown key peaked at {:.2} MiB", peaks[0]);
    // One accepted event of 0.9 MiB: almost all of it is the parsed tree — about 80 bytes of
    // `serde_json::Value` (with `preserve_order`) per 2-byte array element `0,` of this all-numbers
    // JSON, the worst shape there is — plus the record and the stream's copies (~3 MiB).
    let per_mib = peaks[1] / decompressed(1);
    eprintln!("peak per MiB of decompressed event: {per_mib:.1} MiB");
    assert!(per_mib < 48.0, "{per_mib:.1} MiB per MiB");
    // 19 events: one is parsed; the rest is the decompressed body (17 MiB, under the 20 MiB limit, in a
    // buffer that grew by doubling: up to twice that).
    // The largest request we accept peaks near 70 MiB: within save-event's 256 MB with room to spare
    // (before: every event parsed and held, 19 × ~40 MiB).
    assert!(peaks[2] < peaks[1] + 2.0 * decompressed(19) + 1.0, "{:.1} MiB", peaks[2]);
    assert!(peaks[2] < 96.0, "{:.1} MiB", peaks[2]);
}

trait IntoStatus {
    fn into_status(self) -> (u16, usize);
}

impl IntoStatus for (shared::http::Reply, usize) {
    fn into_status(self) -> (u16, usize) {
        (self.0.status, self.1)
    }
}
