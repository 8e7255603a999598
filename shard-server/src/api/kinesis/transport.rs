//! The HTTP envelope of the Kinesis endpoint, shaped as the service shapes it: which content
//! types it reads, how it refuses a request before it knows the request's format (XML bodies
//! with HTTP 403 or 404, and the legacy `application/json` envelope), CORS for browsers, and
//! the headers every answer carries (`x-amzn-RequestId`, `x-amz-id-2`).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore as _;

use super::codec::{Wire, CBOR_CONTENT_TYPE, JSON_CONTENT_TYPE};
use super::error::{ApiError, ErrorCode};
use super::{Operation, TARGET_PREFIX};

/// The headers a browser page may read from an answer.
const EXPOSED_HEADERS: &str = "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "172800";
/// Random bytes in an `x-amz-id-2` header.
const EXTENDED_ID_BYTES: usize = 72;
/// The legacy JSON content type; Kinesis reads it but serves no operation through it.
const LEGACY_JSON_CONTENT_TYPE: &str = "application/json";

/// A request's content type, as far as Kinesis reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// `application/x-amz-json-1.1`.
    Json,
    /// `application/x-amz-cbor-1.1`.
    Cbor,
    /// `application/json`: parsed, then refused in the legacy envelope.
    LegacyJson,
}

impl Content {
    /// The content type a `Content-Type` header names, if Kinesis reads it.
    pub fn of(value: Option<&HeaderValue>) -> Option<Self> {
        let value = value.and_then(|v| v.to_str().ok()).unwrap_or_default();
        match value.split(';').next().unwrap_or_default().trim() {
            JSON_CONTENT_TYPE => Some(Content::Json),
            CBOR_CONTENT_TYPE => Some(Content::Cbor),
            LEGACY_JSON_CONTENT_TYPE => Some(Content::LegacyJson),
            _ => None,
        }
    }

    /// The wire format of bodies of this content type.
    pub const fn wire(self) -> Wire {
        match self {
            Content::Cbor => Wire::Cbor,
            Content::Json | Content::LegacyJson => Wire::Json,
        }
    }
}

/// A request's `X-Amz-Target`: `Service.Operation`.
#[derive(Debug, Default)]
pub struct Target {
    raw: Option<String>,
    service: String,
    operation: String,
}

impl Target {
    /// The target a header names.
    pub fn of(value: Option<&HeaderValue>) -> Self {
        let Some(raw) = value.and_then(|v| v.to_str().ok()) else { return Self::default() };
        let mut pieces = raw.split('.');
        let service = pieces.next().unwrap_or_default().to_owned();
        let operation = pieces.next().unwrap_or_default().to_owned();
        Self { raw: Some(raw.to_owned()), service, operation }
    }

    /// True when the target names some service and some operation.
    pub fn named(&self) -> bool {
        !self.service.is_empty() && !self.operation.is_empty()
    }

    /// True when the target names an operation of Kinesis.
    pub fn exists(&self) -> bool {
        TARGET_PREFIX.strip_suffix('.') == Some(self.service.as_str())
            && Operation::is_kinesis_operation(&self.operation)
    }

    /// The operation served for this target.
    pub fn operation(&self) -> Result<Operation, ApiError> {
        Operation::from_target(self.raw.as_deref())
    }
}

/// A refusal made before the request's format is known.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// An XML error document with HTTP 403, or a bare XML element with another status.
    Xml {
        /// The error's type.
        kind: &'static str,
        /// Its message; `None` for the bare form.
        message: Option<&'static str>,
        /// The HTTP status.
        status: StatusCode,
    },
    /// The envelope Kinesis answers `application/json` requests with.
    Legacy(ErrorCode),
}

impl Refusal {
    /// A request Kinesis cannot attribute to an operation (not a POST, or no target).
    pub const fn access_denied() -> Self {
        Refusal::Xml {
            kind: "AccessDeniedException",
            message: Some("Unable to determine service/operation name to be authorized"),
            status: StatusCode::FORBIDDEN,
        }
    }

    /// A targeted request whose content type Kinesis does not read.
    pub const fn unknown_operation() -> Self {
        Refusal::Xml { kind: "UnknownOperationException", message: None, status: StatusCode::NOT_FOUND }
    }

    /// An `application/json` request, refused with `code`.
    pub const fn legacy(code: ErrorCode) -> Self {
        Refusal::Legacy(code)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Xml { kind, message: Some(message), status } => {
                let xml = format!("<{kind}>\n  <Message>{message}</Message>\n</{kind}>\n");
                (status, Body::from(xml)).into_response()
            }
            Refusal::Xml { kind, message: None, status } => {
                (status, Body::from(format!("<{kind}/>\n"))).into_response()
            }
            Refusal::Legacy(code) => {
                let (kind, _) = code.wire();
                let status =
                    if code == ErrorCode::Serialization { StatusCode::BAD_REQUEST } else { StatusCode::NOT_FOUND };
                let body = serde_json::json!({
                    "Output": { "__type": format!("com.amazon.coral.service#{kind}") },
                    "Version": "1.0",
                });
                self::body(status, LEGACY_JSON_CONTENT_TYPE, body.to_string().into_bytes())
            }
        }
    }
}

/// An answer with `body` of `content_type`.
pub fn body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The answer to a CORS preflight (`OPTIONS` with `Origin`): empty, allowing whatever the
/// browser asks to send.
pub fn preflight(request: &HeaderMap) -> Response {
    let mut response = (StatusCode::OK, Body::empty()).into_response();
    let headers = response.headers_mut();
    for (asked, allowed) in [
        (header::ACCESS_CONTROL_REQUEST_HEADERS, header::ACCESS_CONTROL_ALLOW_HEADERS),
        (header::ACCESS_CONTROL_REQUEST_METHOD, header::ACCESS_CONTROL_ALLOW_METHODS),
    ] {
        if let Some(value) = request.get(asked) {
            headers.insert(allowed, value.clone());
        }
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// Adds the headers every answer carries: a request id, an extended id (not on preflights),
/// and for requests from a browser page (`Origin`) the CORS headers.
pub fn stamp(headers: &mut HeaderMap, origin: bool, preflight: bool) {
    if !headers.contains_key("x-amzn-requestid") {
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            headers.insert("x-amzn-requestid", id);
        }
    }
    if !preflight {
        let mut id = [0u8; EXTENDED_ID_BYTES];
        rand::rng().fill_bytes(&mut id);
        if let Ok(id) = HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(id)) {
            headers.insert("x-amz-id-2", id);
        }
    }
    if origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        if !preflight {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_targets_are_read_as_kinesis_reads_them() {
        let of = |v: &'static str| Content::of(Some(&HeaderValue::from_static(v)));
        assert_eq!(of("application/x-amz-json-1.1; charset=utf-8"), Some(Content::Json));
        assert_eq!(of("application/x-amz-cbor-1.1"), Some(Content::Cbor));
        assert_eq!(of("application/json"), Some(Content::LegacyJson));
        assert_eq!(of("application/x-amz-json-1.0"), None);
        assert_eq!(Content::of(None), None);
        let target = |v: &'static str| Target::of(Some(&HeaderValue::from_static(v)));
        assert!(target("Kinesis_20131202.ListStreams").exists());
        assert!(target("Kinesis_20131202.StartStreamEncryption").exists());
        assert!(!target("Kinesis_20131202.ListStream").exists());
        assert!(target("Whatever.Whatever").named() && !target("Whatever").named());
        assert!(!Target::of(None).named());
    }
}
