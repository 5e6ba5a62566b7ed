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
pub mod icare;
pub mod idempotency;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod metrics;
pub mod parse_problem;
pub mod program;
pub mod queue;
pub mod secrets;
pub mod store;
pub mod telemetry;
#[cfg(feature = "embedded")]
pub mod testing;
pub mod time;
pub mod web;

pub use api_error::{ApiError, InvalidParam};

/// Makes ring the process's TLS crypto provider, for reqwest and the AWS SDK alike (see the
/// workspace manifest). Idempotent; every HTTP client here is built after it.
pub fn install_tls_provider() {
    // An error only says a provider is already installed: the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS for our reqwest clients: ring, TLS 1.2 and 1.3, and `roots`. Building the roots here keeps
/// reqwest from loading the platform's store (a bundle and a directory of some 150 files, parsed
/// at every cold start).
pub fn client_tls(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    install_tls_provider();
    rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
}

/// Mozilla's roots, compiled in (webpki-roots): what the upstream partners' public certificates
/// chain to, at no cost at init.
pub fn public_roots() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// The roots every AWS service endpoint's certificate chains to (Amazon Trust Services).
#[cfg(feature = "aws")]
const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// The PEM roots our AWS traffic trusts: the five Amazon Trust Services roots, compiled in, or
/// the file `AWS_CA_BUNDLE` names (an HTTPS endpoint with a private CA, or the China regions,
/// whose endpoints are not ATS-certified).
#[cfg(feature = "aws")]
pub fn aws_roots_pem(vars: &config::Vars) -> Result<Vec<u8>, config::ConfigError> {
    let Some(path) = vars.get("AWS_CA_BUNDLE") else {
        return Ok(AMAZON_TRUST_SERVICES.as_bytes().to_vec());
    };
    let pem = std::fs::read(path)
        .map_err(|e| config::ConfigError::new("AWS_CA_BUNDLE", format!("cannot read {path}: {e}")))?;
    match pem_certificates(&pem) {
        Some(certificates) if !certificates.is_empty() => Ok(pem),
        _ => Err(config::ConfigError::new("AWS_CA_BUNDLE", format!("{path} holds no valid PEM certificate"))),
    }
}

/// [`aws_roots_pem`] as a root store, for a reqwest client that talks to AWS.
#[cfg(feature = "aws")]
pub fn aws_roots(vars: &config::Vars) -> Result<rustls::RootCertStore, config::ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(pem_certificates(&aws_roots_pem(vars)?).unwrap_or_default());
    if ignored > 0 || roots.is_empty() {
        return Err(config::ConfigError::new("AWS_CA_BUNDLE", "holds a certificate that is not a usable root"));
    }
    Ok(roots)
}

/// The certificates of a PEM file, or `None` if one of them does not parse.
#[cfg(feature = "aws")]
fn pem_certificates(pem: &[u8]) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().ok()
}

/// The AWS SDK's HTTP client: hyper and rustls with ring, trusting [`aws_roots_pem`] instead of
/// the platform's store, whose loading was most of a cold start's init.
#[cfg(feature = "aws")]
pub fn aws_http_client(vars: &config::Vars) -> Result<aws_sdk_sqs::config::SharedHttpClient, config::ConfigError> {
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
    install_tls_provider();
    let trust = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(aws_roots_pem(vars)?))
        .build()
        .map_err(|e| config::ConfigError::new("AWS_CA_BUNDLE", e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(trust)
        .build_https())
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
        assert_eq!(super::pem_certificates(super::AMAZON_TRUST_SERVICES.as_bytes()).map(|c| c.len()), Some(5));
        assert_eq!(super::aws_roots(&crate::config::Vars::default()).map(|r| r.len()).ok(), Some(5));
        assert!(!super::public_roots().is_empty());
    }

    #[test]
    fn a_bad_ca_bundle_is_named() {
        let vars = crate::config::Vars::default().with("AWS_CA_BUNDLE", "/nonexistent/bundle.pem");
        let Err(error) = super::aws_http_client(&vars) else { panic!("an error") };
        assert_eq!(error.variable, "AWS_CA_BUNDLE");
        assert!(super::aws_http_client(&crate::config::Vars::default()).is_ok());
    }
}
