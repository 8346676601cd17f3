//! Creates the table and the stream (tests, the local CLI with `--create`), from the same definition as
//! `template.yaml`. Polls `Describe*` every 50 ms instead of using the SDK waiters, whose minimum delay is
//! about 20 s when the first poll is not ACTIVE.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
#[cfg(feature = "stream")]
use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails, StreamStatus};

use super::attr;
use crate::adapters::aws::ddb_err;
#[cfg(feature = "stream")]
use crate::adapters::aws::kinesis_err;
use crate::error::StoreError;

/// How long provisioning waits for ACTIVE before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

fn key(name: &str, kt: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder().attribute_name(name).key_type(kt).build().map_err(build_err)
}

fn attr_def(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_err)
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other { service: "dynamodb", message: e.to_string() }
}

/// Creates the table (if missing), waits until ACTIVE, and enables TTL on `expires_at`.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), StoreError> {
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(attr::GSI1)
        .key_schema(key(attr::GSI1_PK, KeyType::Hash)?)
        .key_schema(key(attr::GSI1_SK, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_err)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(attr::PK, KeyType::Hash)?)
        .key_schema(key(attr::SK, KeyType::Range)?)
        .attribute_definitions(attr_def(attr::PK)?)
        .attribute_definitions(attr_def(attr::SK)?)
        .attribute_definitions(attr_def(attr::GSI1_PK)?)
        .attribute_definitions(attr_def(attr::GSI1_SK)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(ddb_err(e)),
    }
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let d = client.describe_table().table_name(table).send().await.map_err(ddb_err)?;
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StoreError::Unavailable {
                service: "dynamodb",
                message: format!("table {table} not ACTIVE after 60 s"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(attr::TTL)
        .build()
        .map_err(build_err)?;
    match client.update_time_to_live().table_name(table).time_to_live_specification(ttl).send().await {
        Ok(_) => Ok(()),
        // Already enabled (re-running against an existing table).
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.meta().message().unwrap_or_default().contains("already enabled")) =>
        {
            Ok(())
        }
        Err(e) => Err(ddb_err(e)),
    }
}

pub async fn delete_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), StoreError> {
    client.delete_table().table_name(table).send().await.map_err(ddb_err)?;
    Ok(())
}

#[cfg(feature = "stream")]
/// Creates the stream (on-demand, as in `template.yaml`; emulators that need a shard count get one) and
/// waits until ACTIVE.
pub async fn create_stream(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<(), StoreError> {
    let created = client
        .create_stream()
        .stream_name(stream)
        .shard_count(1)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .map_err(|e| StoreError::Other { service: "kinesis", message: e.to_string() })?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(kinesis_err(e)),
    }
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let d = client.describe_stream_summary().stream_name(stream).send().await.map_err(kinesis_err)?;
        if d.stream_description_summary().map(|s| s.stream_status()) == Some(&StreamStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StoreError::Unavailable {
                service: "kinesis",
                message: format!("stream {stream} not ACTIVE after 60 s"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(feature = "stream")]
pub async fn delete_stream(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<(), StoreError> {
    client
        .delete_stream()
        .stream_name(stream)
        .enforce_consumer_deletion(true)
        .send()
        .await
        .map_err(kinesis_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::attr;

    /// `template.yaml` must declare the same key schema, GSI and TTL attribute as the code.
    #[test]
    fn template_matches_the_code_definition() {
        let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml at the repository root");
        // `AttributeName: pk` in block or flow style, not `pkx`.
        let declares = |key: &str, value: &str| {
            template.match_indices(&format!("{key}: {value}")).any(|(i, m)| {
                template[i + m.len()..].chars().next().is_none_or(|c| matches!(c, ',' | '}' | '\n' | ' '))
            })
        };
        for name in [attr::PK, attr::SK, attr::GSI1_PK, attr::GSI1_SK, attr::TTL] {
            assert!(declares("AttributeName", name), "template.yaml lacks AttributeName {name}");
        }
        assert!(declares("IndexName", attr::GSI1));
        assert!(template.contains("BillingMode: PAY_PER_REQUEST"));
        assert!(template.contains("ProjectionType: ALL"));
    }
}
