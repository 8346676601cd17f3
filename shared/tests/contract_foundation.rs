//! Contract tests for the foundation ports — the rate limiter and the event stream — run against the
//! in-memory adapters always and against DynamoDB Local + ministack when the emulators are up (mandatory
//! in CI; see `shared::testing`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::adapters::aws::{DynamoRateLimiter, kinesis_stream, read_all_records};
use shared::adapters::memory::{MemoryRateLimiter, MemorySink, SinkFault, memory_stream};
use shared::error::StoreError;
use shared::ports::{EventStream, RateLimiter, StoredRecord, StreamRecord};
use shared::storage::rate_limit_key;
use shared::testing::aws_env;

const LIMIT: u64 = 10;
const WINDOW: u64 = 86_400;
/// 2023-11-14T22:13:20Z, 80 000 s into its UTC day.
const NOW: i64 = 1_700_000_000;

/// 32 concurrent tasks make 3 × limit calls: exactly `limit` are allowed; the next bucket starts over.
async fn limiter_contract(limiter: Arc<dyn RateLimiter>) {
    let key = format!("auth:authenticator-enroll:{}:totp", shared::testing::unique_name("u"));
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (limiter, key, calls) = (limiter.clone(), key.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0u64;
            while calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 * LIMIT {
                if !limiter.hit(&key, LIMIT, WINDOW, NOW).await.unwrap().is_limited() {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.unwrap();
    }
    assert_eq!(allowed, LIMIT, "exactly `limit` of 3×limit concurrent calls are allowed");

    // Still the same UTC day: limited, and the answer says how long until the bucket ends.
    let d = limiter.hit(&key, LIMIT, WINDOW, NOW + 6_399).await.unwrap();
    assert_eq!(d, shared::ports::RateDecision::Limited { count: 3 * LIMIT + 1, retry_after_secs: 1 });
    // Next UTC day: a fresh bucket.
    let d = limiter.hit(&key, LIMIT, WINDOW, NOW + 6_400).await.unwrap();
    assert_eq!(d, shared::ports::RateDecision::Allowed { count: 1 });
    // Keys are independent.
    assert!(!limiter.hit(&format!("{key}:other"), LIMIT, WINDOW, NOW).await.unwrap().is_limited());
}

#[tokio::test]
async fn limiter_memory() {
    limiter_contract(Arc::new(MemoryRateLimiter::default())).await;
}

#[tokio::test]
async fn limiter_dynamodb() {
    let Some(env) = aws_env("limiter_dynamodb").await else { return };
    let limiter = DynamoRateLimiter::new(env.clients.dynamodb.clone(), &env.table);
    limiter_contract(Arc::new(limiter.clone())).await;

    // The counter item carries the TTL attribute: end of the bucket + 60 s.
    let key = "ttl-check";
    limiter.hit(key, LIMIT, WINDOW, NOW).await.unwrap();
    let (pk, sk) = rate_limit_key(key, WINDOW, NOW / WINDOW as i64);
    let item = env
        .clients
        .dynamodb
        .get_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = item.item().expect("counter item exists");
    let expected_ttl = (NOW / WINDOW as i64 + 1) * WINDOW as i64 + 60;
    assert_eq!(item["expires_at"], AttributeValue::N(expected_ttl.to_string()));
    assert_eq!(item["count"], AttributeValue::N("1".into()));
}

fn records(n: usize) -> Vec<StreamRecord> {
    // Two partitions, interleaved; order within each partition must survive.
    (0..n)
        .map(|i| StreamRecord {
            partition_key: format!("project-{}", i % 2),
            data: format!("{{\"n\":{i}}}").into_bytes(),
        })
        .collect()
}

fn assert_partition_order(read: &[StoredRecord], n: usize) {
    assert_eq!(read.len(), n);
    for p in ["project-0", "project-1"] {
        let seen: Vec<usize> = read
            .iter()
            .filter(|r| r.partition_key == p)
            .map(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.data).unwrap()["n"].as_u64().unwrap() as usize
            })
            .collect();
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(seen, sorted, "records of {p} are in publish order");
    }
}

#[tokio::test]
async fn stream_memory_order_and_limits() {
    let stream = memory_stream(5);
    stream.publish(records(600)).await.unwrap();
    assert_partition_order(&stream.sink().records(), 600);
    assert_eq!(stream.sink().calls().iter().map(Vec::len).collect::<Vec<_>>(), [500, 100]);

    // An oversized record anywhere rejects the publish before any call.
    let calls_before = stream.sink().calls().len();
    let mut bad = records(3);
    bad[1].data = vec![b'x'; 1024 * 1024];
    assert!(matches!(stream.publish(bad).await, Err(StoreError::Rejected(_))));
    assert_eq!(stream.sink().calls().len(), calls_before);
    assert_eq!(stream.sink().records().len(), 600);
}

#[tokio::test]
async fn stream_memory_retries_only_failed_entries() {
    let stream = memory_stream(5);
    stream.sink().inject(SinkFault::Entries(vec![1, 3]));
    stream.publish(records(5)).await.unwrap();
    let calls = stream.sink().calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1], vec![records(5)[1].clone(), records(5)[3].clone()]);
    assert_eq!(stream.sink().records().len(), 5);

    // Failures on every attempt: a bounded number of calls, then a retryable error.
    let stream = memory_stream(3);
    for _ in 0..3 {
        stream.sink().inject(SinkFault::Entries(vec![0]));
    }
    let err = stream.publish(records(2)).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(stream.sink().calls().len(), 3);

    // A whole-call failure surfaces as is.
    let sink_stream = memory_stream(3);
    sink_stream
        .sink()
        .inject(SinkFault::Call(StoreError::Unavailable { service: "kinesis", message: "boom".into() }));
    assert!(sink_stream.publish(records(1)).await.unwrap_err().is_retryable());
    let _unused: Option<MemorySink> = None;
}

#[tokio::test]
async fn stream_kinesis_order_and_limits() {
    let Some(env) = aws_env("stream_kinesis_order_and_limits").await else { return };
    let stream = kinesis_stream(env.clients.kinesis.clone(), &env.stream, 5);
    stream.publish(records(600)).await.unwrap();
    let read = read_all_records(&env.clients.kinesis, &env.stream).await.unwrap();
    assert_partition_order(&read, 600);
    // Two PutRecords calls (500 + 100).
    let ops = env.recorder.operations();
    assert_eq!(ops.iter().filter(|o| *o == "PutRecords").count(), 2, "{ops:?}");

    env.recorder.reset();
    let mut bad = records(2);
    bad[0].partition_key = "k".repeat(257);
    assert!(matches!(stream.publish(bad).await, Err(StoreError::Rejected(_))));
    assert!(env.recorder.operations().is_empty(), "nothing was sent");
}

/// The emulator never fails partially, so the partial-failure path of the Kinesis sink is driven by
/// `aws-smithy-mocks`: the first `PutRecords` fails entries 1 and 3; the retry must carry exactly those.
#[tokio::test]
async fn stream_kinesis_partial_failure_retries_only_failed_entries() {
    use aws_sdk_kinesis::Client;
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    let ok = |seq: &str| PutRecordsResultEntry::builder().sequence_number(seq).shard_id("shardId-0").build();
    let failed = || {
        PutRecordsResultEntry::builder()
            .error_code("ProvisionedThroughputExceededException")
            .error_message("Rate exceeded for shard")
            .build()
    };
    let first =
        mock!(Client::put_records).match_requests(|req| req.records().len() == 5).then_output(move || {
            PutRecordsOutput::builder()
                .failed_record_count(2)
                .records(ok("1"))
                .records(failed())
                .records(ok("2"))
                .records(failed())
                .records(ok("3"))
                .build()
                .unwrap()
        });
    let retry = mock!(Client::put_records)
        .match_requests(|req| {
            let data: Vec<&[u8]> = req.records().iter().map(|r| r.data().as_ref()).collect();
            data == [br#"{"n":1}"#.as_slice(), br#"{"n":3}"#.as_slice()]
        })
        .then_output(move || {
            PutRecordsOutput::builder()
                .failed_record_count(0)
                .records(ok("4"))
                .records(ok("5"))
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&first, &retry]);
    let stream = kinesis_stream(client, "events", 5);
    stream.publish(records(5)).await.unwrap();
    assert_eq!(first.num_calls(), 1);
    assert_eq!(retry.num_calls(), 1, "the retry carried only the two failed entries");
}

/// Retries of failed entries stop at the deadline (the Lambda's remaining time): a retryable error comes
/// back instead of the invocation timing out mid-request.
#[tokio::test]
async fn stream_retries_are_bounded_by_the_deadline() {
    use shared::adapters::memory::MemorySink;
    use shared::adapters::publisher::Publisher;
    use std::time::Duration;

    let stream = Publisher::new(MemorySink::default(), 3).with_base_delay(Duration::from_millis(200));
    for _ in 0..6 {
        stream.sink().inject(SinkFault::Entries(vec![0]));
    }
    let near = tokio::time::Instant::now() + Duration::from_millis(50);
    let err = stream.publish_until(records(1), Some(near)).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(stream.sink().calls().len(), 1, "no retry fits before the deadline");
    // Without a deadline the same faults use every attempt.
    let err = stream.publish_until(records(1), None).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(stream.sink().calls().len(), 1 + 3);
}
