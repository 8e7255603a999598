//! Kinesis errors on the wire. [`ErrorCode::wire`] is the one place that maps an error to its
//! `__type` and HTTP status; [`From<crate::Error>`] is the one place that classifies
//! data-plane failures. No handler matches on message text.

use axum::http::StatusCode;

use crate::error::Error;

/// The Kinesis error types Shardline answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not valid for the protocol (bad JSON, wrong types, bad base64).
    Serialization,
    /// A field breaks its declared constraints (missing, too long, out of range, pattern).
    Validation,
    /// The `X-Amz-Target` names no operation Shardline serves.
    UnknownOperation,
    /// The stream or shard does not exist.
    ResourceNotFound,
    /// The resource exists but its state forbids the call.
    ResourceInUse,
    /// A value is well formed but not acceptable.
    InvalidArgument,
    /// A limit would be exceeded.
    LimitExceeded,
    /// The shard's throughput limit is exhausted.
    ProvisionedThroughputExceeded,
    /// A lease compare-and-set failed (lease table calls only).
    LeaseConflict,
    /// The shard iterator has expired.
    ExpiredIterator,
    /// The pagination token has expired.
    ExpiredNextToken,
    /// DryRun was set and the request would have succeeded.
    DryRunOperation,
    /// The request body is larger than any valid request.
    RequestTooLarge,
    /// The request body did not arrive in time (retryable).
    RequestTimeout,
    /// A fault inside the server.
    InternalFailure,
    /// The caller may not do this here (cluster mode: topology belongs to the operator).
    AccessDenied,
    /// A transient failure; retrying shortly succeeds.
    Unavailable,
    /// The request carries no signature at all.
    MissingAuthenticationToken,
    /// The request's signature lacks a part every signature has.
    IncompleteSignature,
    /// The request is signed twice over (header and query string).
    InvalidSignature,
}

impl ErrorCode {
    /// The `__type` and HTTP status of this error.
    pub const fn wire(self) -> (&'static str, StatusCode) {
        match self {
            ErrorCode::Serialization => ("SerializationException", StatusCode::BAD_REQUEST),
            ErrorCode::Validation => ("ValidationException", StatusCode::BAD_REQUEST),
            ErrorCode::UnknownOperation => ("UnknownOperationException", StatusCode::BAD_REQUEST),
            ErrorCode::ResourceNotFound => ("ResourceNotFoundException", StatusCode::BAD_REQUEST),
            ErrorCode::ResourceInUse => ("ResourceInUseException", StatusCode::BAD_REQUEST),
            ErrorCode::InvalidArgument => ("InvalidArgumentException", StatusCode::BAD_REQUEST),
            ErrorCode::LimitExceeded => ("LimitExceededException", StatusCode::BAD_REQUEST),
            ErrorCode::LeaseConflict => ("LeaseConflictException", StatusCode::BAD_REQUEST),
            ErrorCode::ProvisionedThroughputExceeded => {
                ("ProvisionedThroughputExceededException", StatusCode::BAD_REQUEST)
            }
            ErrorCode::ExpiredIterator => ("ExpiredIteratorException", StatusCode::BAD_REQUEST),
            ErrorCode::ExpiredNextToken => ("ExpiredNextTokenException", StatusCode::BAD_REQUEST),
            ErrorCode::DryRunOperation => ("DryRunOperationException", StatusCode::BAD_REQUEST),
            ErrorCode::RequestTooLarge => ("SerializationException", StatusCode::PAYLOAD_TOO_LARGE),
            // The type AWS SDKs treat as a transient timeout and retry.
            ErrorCode::RequestTimeout => ("RequestTimeoutException", StatusCode::REQUEST_TIMEOUT),
            ErrorCode::InternalFailure => ("InternalFailure", StatusCode::INTERNAL_SERVER_ERROR),
            ErrorCode::AccessDenied => ("AccessDeniedException", StatusCode::BAD_REQUEST),
            // Kinesis' per-record and whole-call code for a transient server-side failure.
            ErrorCode::Unavailable => ("InternalFailure", StatusCode::INTERNAL_SERVER_ERROR),
            ErrorCode::MissingAuthenticationToken => ("MissingAuthenticationTokenException", StatusCode::BAD_REQUEST),
            ErrorCode::IncompleteSignature => ("IncompleteSignatureException", StatusCode::BAD_REQUEST),
            ErrorCode::InvalidSignature => ("InvalidSignatureException", StatusCode::BAD_REQUEST),
        }
    }
}

impl ErrorCode {
    /// The body key of this error's message: Kinesis writes `Message` for the conversion
    /// errors of its deserializer and `message` for everything else.
    pub const fn message_key(self) -> &'static str {
        match self {
            ErrorCode::Serialization | ErrorCode::RequestTooLarge => "Message",
            _ => "message",
        }
    }
}

/// An error ready to be written as `{"__type": …, "message": …}` (no message when empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Which Kinesis error.
    pub code: ErrorCode,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// An error Kinesis answers with its type alone, no message.
    pub fn bare(code: ErrorCode) -> Self {
        Self::new(code, String::new())
    }

    /// An `InvalidArgumentException`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The refusal of a request that would have succeeded but asked for a dry run.
    pub fn dry_run() -> Self {
        Self::new(ErrorCode::DryRunOperation, "Request would have succeeded, but DryRun flag is set.")
    }

    /// An `InternalFailure`, bare as Kinesis sends it; the cause is logged, never shown.
    pub fn internal() -> Self {
        Self::bare(ErrorCode::InternalFailure)
    }

    /// A `SerializationException`.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Serialization, message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::StreamNotFound { .. } | Error::ShardNotFound { .. } | Error::CouldNotFindShard { .. } => {
                ErrorCode::ResourceNotFound
            }
            Error::StreamExists { .. } | Error::StreamNotActive { .. } | Error::ResourceInUse(_) => {
                ErrorCode::ResourceInUse
            }
            Error::ResourceNotFound(_) => ErrorCode::ResourceNotFound,
            Error::InvalidArgument(_) | Error::ForeignSequenceNumber => ErrorCode::InvalidArgument,
            Error::LimitExceeded(_) => ErrorCode::LimitExceeded,
            Error::ThroughputExceeded(_) => ErrorCode::ProvisionedThroughputExceeded,
            Error::LeaseConflict(_) => ErrorCode::LeaseConflict,
            Error::ManagedByOperator(_) => ErrorCode::AccessDenied,
            Error::StaleEpoch { .. } => ErrorCode::ResourceInUse,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::ExpiredIterator(_) => ErrorCode::ExpiredIterator,
            Error::ExpiredNextToken(_) => ErrorCode::ExpiredNextToken,
            Error::OldestSequenceLayout => return ApiError::internal(),
            Error::WritePathClosed(_) | Error::Store(_) | Error::Journal(_) => {
                tracing::error!(cause = %err, "internal failure");
                return ApiError::internal();
            }
        };
        ApiError::new(code, err.to_string())
    }
}
