//! NSW iCare: workplace policies that opt in to the iCare API integration, the initial
//! notification of injury (SIRA content) and single documents, with their validation, and
//! [`IcareClient`], the one adapter that knows iCare's wire contract.
//!
//! iCare's API is not public (partners receive it under agreement): everything about the wire
//! lives in [`client`], so matching the real contract later is a change in that one file. The
//! request shapes here are ours and stay stable for our clients.

pub mod client;
pub mod document;
pub mod notification;
pub mod policy;

mod fields;

pub use client::{ClaimNumberReceived, DocumentReceived, DocumentToSend, IcareClient, IcareError};
pub use document::{DocumentError, DocumentType, DocumentUpload, validate_document};
pub use notification::{Incapacity, InitialNotification, validate_notification};
pub use policy::{Policy, validate_policy, validate_policy_id};

/// The `type` of an API Error Payload for a notification or document iCare refused.
pub const ICARE_REJECTED_TYPE: &str = "urn:claims-gateway:error:icare-rejected";
/// The `type` of an API Error Payload for one that iCare never accepted within the retries.
pub const ICARE_GAVE_UP_TYPE: &str = "urn:claims-gateway:error:icare-unavailable";
