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

/// Makes ring the process's TLS crypto provider, for reqwest and the AWS SDK alike (see the
/// workspace manifest). Idempotent; every HTTP client here is built after it.
pub fn install_tls_provider() {
    // An error only says a provider is already installed: the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The roots every AWS service endpoint's certificate chains to (Amazon Trust Services).
#[cfg(feature = "aws")]
const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// The AWS SDK's HTTP client: hyper and rustls with ring. It trusts the five Amazon Trust
/// Services roots, compiled in, instead of the platform's store: loading and parsing that store
/// (a bundle and a directory of some 150 certificates) was most of a cold start's init. Set
/// `AWS_CA_BUNDLE` to a PEM file to trust other roots (an HTTPS endpoint with a private CA, or
/// the China regions, whose endpoints are not ATS-certified).
#[cfg(feature = "aws")]
pub fn aws_http_client(vars: &config::Vars) -> Result<aws_sdk_sqs::config::SharedHttpClient, config::ConfigError> {
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
    install_tls_provider();
    let roots = match vars.get("AWS_CA_BUNDLE") {
        None => AMAZON_TRUST_SERVICES.as_bytes().to_vec(),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| config::ConfigError::new("AWS_CA_BUNDLE", format!("cannot read {path}: {e}")))?;
            match count_pem_certificates(&pem) {
                Some(count) if count > 0 => pem,
                _ => return Err(config::ConfigError::new("AWS_CA_BUNDLE", format!("{path} holds no valid PEM certificate"))),
            }
        }
    };
    let trust = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(roots))
        .build()
        .map_err(|e| config::ConfigError::new("AWS_CA_BUNDLE", e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).tls_context(trust).build_https())
}

/// How many certificates a PEM file holds, or `None` if one of them does not parse.
#[cfg(feature = "aws")]
fn count_pem_certificates(pem: &[u8]) -> Option<usize> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem).try_fold(0, |count, cert| cert.ok().map(|_| count + 1))
}

/// The AWS SDK configuration from the environment (`AWS_REGION`, credentials, and
/// `AWS_ENDPOINT_URL` for moto or another endpoint). Load once at init and share.
#[cfg(feature = "aws")]
pub async fn aws_config(vars: &config::Vars) -> Result<aws_config::SdkConfig, config::ConfigError> {
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(aws_http_client(vars)?).load().await)
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    #[test]
    fn the_amazon_roots_parse() {
        assert_eq!(super::count_pem_certificates(super::AMAZON_TRUST_SERVICES.as_bytes()), Some(5));
    }

    #[test]
    fn a_bad_ca_bundle_is_named() {
        let vars = crate::config::Vars::default().with("AWS_CA_BUNDLE", "/nonexistent/bundle.pem");
        let error = super::aws_http_client(&vars).err().expect("an error");
        assert_eq!(error.variable, "AWS_CA_BUNDLE");
        assert!(super::aws_http_client(&crate::config::Vars::default()).is_ok());
    }
}
