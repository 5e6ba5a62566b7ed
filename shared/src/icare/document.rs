//! A single document for an iCare claim: one PDF, base64 in JSON, up to a configured size.

use super::fields::{self, object};
use crate::api_error::{ApiError, Problems};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const PDF: &str = "application/pdf";
const MAX_FILE_NAME_CHARS: usize = 255;

/// Accepts base64 with or without padding (the standard alphabet).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DocumentType {
    ClaimDocument,
    LegalDocument,
    LegalNote,
    MedicalCertificate,
    Invoice,
    WeeklyCompensation,
}

impl DocumentType {
    pub const ALL: [DocumentType; 6] = [
        DocumentType::ClaimDocument,
        DocumentType::LegalDocument,
        DocumentType::LegalNote,
        DocumentType::MedicalCertificate,
        DocumentType::Invoice,
        DocumentType::WeeklyCompensation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::ClaimDocument => "claimDocument",
            DocumentType::LegalDocument => "legalDocument",
            DocumentType::LegalNote => "legalNote",
            DocumentType::MedicalCertificate => "medicalCertificate",
            DocumentType::Invoice => "invoice",
            DocumentType::WeeklyCompensation => "weeklyCompensation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A validated document: the content is kept as canonical (padded, unbroken) base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentUpload {
    pub document_type: DocumentType,
    pub file_name: String,
    pub content_type: String,
    pub content_base64: String,
    /// Decoded size in bytes.
    pub size: usize,
    /// SHA-256 of the decoded content, hex.
    pub content_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// The decoded content is over `limit` bytes (413).
    TooLarge { limit: usize },
    /// Anything else wrong, every field named (400).
    Invalid(ApiError),
}

/// The decoded size base64 text of `len` characters can have at most.
fn decoded_upper_bound(len: usize) -> usize {
    len.div_ceil(4) * 3
}

/// Reads the body of `POST /icare/claims/{claimNumber}/documents`.
pub fn validate_document(body: &Value, max_bytes: usize) -> Result<DocumentUpload, DocumentError> {
    let mut problems = Problems::new();
    let Some(object) = object(&mut problems, Some(body), "body", true) else {
        return Err(DocumentError::Invalid(ApiError::validation(problems.into_vec())));
    };
    // Size first: a too-large document is refused as such, whatever else is wrong with it.
    let encoded: Option<String> = match object.get("contentBase64") {
        Some(Value::String(text)) => Some(text.chars().filter(|c| !c.is_ascii_whitespace()).collect()),
        _ => None,
    };
    if let Some(encoded) = &encoded
        && decoded_upper_bound(encoded.len()) > max_bytes.saturating_add(2)
    {
        let exact = LENIENT.decode(encoded).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
        if exact > max_bytes {
            return Err(DocumentError::TooLarge { limit: max_bytes });
        }
    }
    let document_type = match object.get("documentType") {
        Some(Value::String(text)) => DocumentType::parse(text.trim()).or_else(|| {
            let kinds: Vec<&str> = DocumentType::ALL.iter().map(|k| k.as_str()).collect();
            problems.push("documentType", format!("must be one of {}", kinds.join(", ")));
            None
        }),
        other => {
            fields::text_value(&mut problems, other, "documentType", 30);
            None
        }
    };
    let file_name = fields::text(&mut problems, object, "", "fileName", MAX_FILE_NAME_CHARS).and_then(|name| {
        if name.contains(['/', '\\']) {
            problems.push("fileName", "must be a file name without a path");
            None
        } else {
            Some(name)
        }
    });
    let content_type = fields::text(&mut problems, object, "", "contentType", 100).and_then(|kind| {
        let essence = kind.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence == PDF {
            Some(PDF.to_owned())
        } else {
            problems.push("contentType", format!("must be {PDF}: only PDF documents can be sent to iCare"));
            None
        }
    });
    let content = match (&encoded, object.get("contentBase64")) {
        (Some(encoded), _) if encoded.is_empty() => {
            problems.push("contentBase64", "must not be empty");
            None
        }
        (Some(encoded), _) => match LENIENT.decode(encoded) {
            Ok(bytes) if bytes.len() > max_bytes => return Err(DocumentError::TooLarge { limit: max_bytes }),
            Ok(bytes) if !bytes.starts_with(b"%PDF-") => {
                problems.push("contentBase64", "is not a PDF document (a PDF starts with %PDF-)");
                None
            }
            Ok(bytes) => Some(bytes),
            Err(_) => {
                problems.push("contentBase64", "must be base64 (standard alphabet)");
                None
            }
        },
        (None, other) => {
            fields::text_value(&mut problems, other, "contentBase64", usize::MAX);
            None
        }
    };
    match (document_type, file_name, content_type, content) {
        (Some(document_type), Some(file_name), Some(content_type), Some(content)) if problems.is_empty() => {
            Ok(DocumentUpload {
                document_type,
                file_name,
                content_type,
                content_base64: STANDARD.encode(&content),
                size: content.len(),
                content_sha256: hex::encode(Sha256::digest(&content)),
            })
        }
        _ => Err(DocumentError::Invalid(ApiError::validation(problems.into_vec()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdf(extra: usize) -> String {
        let mut bytes = b"%PDF-1.7\n".to_vec();
        bytes.resize(bytes.len() + extra, b'x');
        STANDARD.encode(bytes)
    }

    fn body(content: String) -> Value {
        json!({"documentType": "medicalCertificate", "fileName": "cert.pdf", "contentType": "application/pdf", "contentBase64": content})
    }

    #[test]
    fn a_pdf_under_the_limit_is_valid() {
        let upload = validate_document(&body(pdf(100)), 1000).expect("valid");
        assert_eq!(upload.document_type, DocumentType::MedicalCertificate);
        assert_eq!(upload.size, 109);
    }

    #[test]
    fn over_the_limit_is_too_large_whatever_else_is_wrong() {
        let mut request = body(pdf(2000));
        request["contentType"] = json!("image/png");
        assert_eq!(validate_document(&request, 1000), Err(DocumentError::TooLarge { limit: 1000 }));
        // Exactly at the limit is fine.
        assert!(validate_document(&body(pdf(1000 - 9)), 1000).is_ok());
        assert_eq!(validate_document(&body(pdf(1000 - 8)), 1000), Err(DocumentError::TooLarge { limit: 1000 }));
    }

    #[test]
    fn not_a_pdf_and_bad_fields_are_named() {
        let request = json!({"documentType": "photo", "fileName": "a/b.pdf", "contentType": "image/png",
                             "contentBase64": STANDARD.encode(b"GIF89a....")});
        let Err(DocumentError::Invalid(error)) = validate_document(&request, 1000) else { panic!("invalid expected") };
        let names: Vec<&str> = error.invalid_params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["documentType", "fileName", "contentType", "contentBase64"]);
        let Err(DocumentError::Invalid(error)) = validate_document(&json!({}), 1000) else {
            panic!("invalid expected")
        };
        assert_eq!(error.invalid_params.len(), 4);
        let Err(DocumentError::Invalid(error)) = validate_document(&body("%%%".into()), 1000) else {
            panic!("invalid")
        };
        assert_eq!(error.invalid_params[0].name, "contentBase64");
    }
}
