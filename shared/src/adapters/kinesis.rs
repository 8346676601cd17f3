//! The Kinesis adapters (the `stream` feature): both SDK clients together ([`AwsClients`]), the
//! `PutRecords` sink of the event stream, shard readers, and the feed the in-process aggregation
//! polls. Re-exported from [`super::aws`].

use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::aws::{CallRecorder, dynamodb_client, sdk_config, sdk_err};
use super::publisher::{EntryResult, Publisher, RecordSink};
use crate::error::StoreError;
use crate::ports::{StoredRecord, StreamRecord};

/// SDK clients, built once.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
}

impl AwsClients {
    /// Loads the shared SDK configuration and builds both clients. `recorder` installs the
    /// call-counting interceptor.
    pub async fn load(recorder: Option<CallRecorder>) -> Self {
        Self::new(&sdk_config().await, recorder)
    }

    /// Both clients over a given configuration ([`super::aws::lambda_sdk_config`] in the Lambdas).
    pub fn new(sdk: &aws_config::SdkConfig, recorder: Option<CallRecorder>) -> Self {
        Self { dynamodb: dynamodb_client(sdk, recorder.clone()), kinesis: kinesis_client(sdk, recorder) }
    }
}

pub fn kinesis_client(
    sdk: &aws_config::SdkConfig,
    recorder: Option<CallRecorder>,
) -> aws_sdk_kinesis::Client {
    let mut b = aws_sdk_kinesis::config::Builder::from(sdk);
    if let Some(r) = recorder {
        b = b.interceptor(r);
    }
    aws_sdk_kinesis::Client::from_conf(b.build())
}

pub fn kinesis_err<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    sdk_err("kinesis", err)
}

/// `PutRecords` on one stream.
#[derive(Clone, Debug)]
pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl KinesisSink {
    pub fn new(client: aws_sdk_kinesis::Client, stream: impl Into<String>) -> Self {
        Self { client, stream: stream.into() }
    }
}

#[async_trait]
impl RecordSink for KinesisSink {
    async fn put_batch(&self, records: &[StreamRecord]) -> Result<Vec<EntryResult>, StoreError> {
        let entries = records
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&r.partition_key)
                    .data(Blob::new(r.data.clone()))
                    .build()
                    .map_err(|e| StoreError::Rejected(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .put_records()
            .stream_name(&self.stream)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(kinesis_err)?;
        Ok(out
            .records()
            .iter()
            .map(|e| match e.error_code() {
                None => EntryResult::Ok,
                Some(code) => EntryResult::Failed(code.to_owned()),
            })
            .collect())
    }
}

/// The Kinesis event stream: the shared publisher over `PutRecords`.
pub type KinesisStream = Publisher<KinesisSink>;

pub fn kinesis_stream(client: aws_sdk_kinesis::Client, stream: &str, max_attempts: u32) -> KinesisStream {
    Publisher::new(KinesisSink::new(client, stream), max_attempts)
}

/// Reads every record of every shard from the beginning (tests and `postflow tail`), in sequence order
/// per shard.
pub async fn read_all_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<StoredRecord>, StoreError> {
    let shards = client.list_shards().stream_name(stream).send().await.map_err(kinesis_err)?;
    let mut out = Vec::new();
    for shard in shards.shards() {
        out.extend(read_shard(client, stream, shard.shard_id(), None, usize::MAX, 1000).await?);
    }
    Ok(out)
}

/// The records of one shard after `after` (from the beginning with `None`), in sequence order: at most
/// `max` records over at most `max_pages` `GetRecords` calls. An open shard always returns a next
/// iterator, so reading stops at the first empty page.
async fn read_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    after: Option<&str>,
    max: usize,
    max_pages: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let req = client.get_shard_iterator().stream_name(stream).shard_id(shard);
    let req = match after {
        Some(seq) => {
            req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq)
        }
        None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let mut iterator = req.send().await.map_err(kinesis_err)?.shard_iterator().map(str::to_owned);
    let mut out = Vec::new();
    for _ in 0..max_pages {
        let Some(i) = iterator.take() else { break };
        let limit = (max - out.len()).clamp(1, 10_000) as i32;
        let page = client.get_records().shard_iterator(i).limit(limit).send().await.map_err(kinesis_err)?;
        if page.records().is_empty() {
            break;
        }
        out.extend(page.records().iter().map(|r| StoredRecord {
            sequence_number: r.sequence_number().to_owned(),
            partition_key: r.partition_key().unwrap_or_default().to_owned(),
            data: r.data().as_ref().to_vec(),
        }));
        if out.len() >= max {
            break;
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    Ok(out)
}

/// A Kinesis stream read shard by shard from the last committed sequence number, for the
/// aggregation run in-process (the local CLI with `--aws`, the emulator tests). On AWS an event-source
/// mapping does this and invokes `aggregate-events`.
pub struct KinesisFeed {
    client: aws_sdk_kinesis::Client,
    stream: String,
    committed: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl KinesisFeed {
    pub fn new(client: aws_sdk_kinesis::Client, stream: &str) -> Self {
        Self { client, stream: stream.to_owned(), committed: Default::default() }
    }
}

#[async_trait]
impl crate::save::aggregate::StreamFeed for KinesisFeed {
    async fn poll(&self, max: usize) -> Result<Vec<(String, Vec<StoredRecord>)>, StoreError> {
        let shards = self.client.list_shards().stream_name(&self.stream).send().await.map_err(kinesis_err)?;
        let committed = self.committed.lock().map(|c| c.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for shard in shards.shards() {
            let id = shard.shard_id().to_owned();
            let batch =
                read_shard(&self.client, &self.stream, &id, committed.get(&id).map(String::as_str), max, 100)
                    .await?;
            if !batch.is_empty() {
                out.push((id, batch));
            }
        }
        Ok(out)
    }

    fn commit(&self, shard: &str, seq: &str) {
        if let Ok(mut c) = self.committed.lock() {
            c.insert(shard.to_owned(), seq.to_owned());
        }
    }
}
