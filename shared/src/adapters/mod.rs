//! Adapters for the ports in [`crate::ports`]:
//!
//! - [`aws`]: DynamoDB and Kinesis, SDK clients built once per cold start.
//! - [`http_client`]: the HTTP client under the SDK clients (hyper's HTTP/1.1 client, rustls over ring).
//! - [`memory`]: in-memory implementations with the same semantics (the embedded default of the local CLI
//!   and of every `cargo test`).
//! - [`publisher`]: the stream publishing algorithm (validation, batching, retrying only failed entries),
//!   shared by both stream adapters so that they cannot drift apart.
//! - [`sns`]: Amazon SNS text messages (the enrollment SMS).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "enroll")]
pub mod disabled;
#[cfg(feature = "aws")]
pub mod dynamo_table;
#[cfg(feature = "aws")]
pub mod http_client;
#[cfg(feature = "stream")]
pub mod kinesis;
pub mod memory;
pub mod publisher;
#[cfg(feature = "enroll")]
pub mod sns;
