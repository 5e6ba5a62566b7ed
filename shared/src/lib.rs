//! The claims integration gateway's domain crate: types, validation, the claim state machine,
//! and the ports (traits) with their adapters. Handlers in `functions/` are thin glue over this.
//!
//! Adapters: `aws` (DynamoDB, SQS, Secrets Manager) and `embedded` (in-process, same semantics),
//! each behind the feature of that name. Domain logic names only the ports.

pub mod acc;
pub mod api_error;
pub mod caller;
pub mod claiming;
pub mod config;
pub mod handoff;
pub mod hicaps;
pub mod http_client;
pub mod idempotency;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod icare;
pub mod metrics;
pub mod program;
pub mod queue;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod web;

pub use api_error::{ApiError, InvalidParam};

/// The AWS SDK configuration from the environment (`AWS_REGION`, credentials, and
/// `AWS_ENDPOINT_URL` for moto or another endpoint). Load once at init and share.
#[cfg(feature = "aws")]
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}
