//! The two wire formats of the Kinesis API, JSON 1.1 and CBOR 1.1, over one request model:
//! bodies into typed requests, responses and errors into bodies, plus the wire types that need
//! care. Blobs are base64 strings in JSON and byte strings in CBOR; timestamps are epoch
//! seconds (with fraction) in JSON and, as the AWS SDKs write them, tag 1 over epoch
//! milliseconds in CBOR.

use base64::Engine as _;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ApiError;

/// Content type of JSON 1.1 requests and responses.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Content type of CBOR 1.1 requests and responses.
pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";
/// CBOR's tag for epoch-based date/time.
const CBOR_EPOCH_TAG: u64 = 1;

/// The format a request arrived in; its answer leaves in the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `application/x-amz-json-1.1`.
    Json,
    /// `application/x-amz-cbor-1.1`.
    Cbor,
}

impl Wire {
    /// The wire a `Content-Type` names (JSON when there is none).
    pub fn from_content_type(value: Option<&str>) -> Result<Self, ApiError> {
        let Some(value) = value else { return Ok(Wire::Json) };
        let media = value.split(';').next().unwrap_or_default().trim();
        match media {
            JSON_CONTENT_TYPE | "application/x-amz-json-1.0" | "application/json" => Ok(Wire::Json),
            CBOR_CONTENT_TYPE => Ok(Wire::Cbor),
            other => Err(ApiError::serialization(format!(
                "Unsupported Content-Type '{other}'; expected {JSON_CONTENT_TYPE} or {CBOR_CONTENT_TYPE}."
            ))),
        }
    }

    /// The response content type.
    pub const fn content_type(self) -> &'static str {
        match self {
            Wire::Json => JSON_CONTENT_TYPE,
            Wire::Cbor => CBOR_CONTENT_TYPE,
        }
    }

    /// Decodes a request body, which must be an object (a CBOR map).
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        match self {
            Wire::Json => decode(body),
            Wire::Cbor => {
                match body.first() {
                    // Major type 5: a map.
                    Some(b) if b >> 5 == 5 => {}
                    Some(_) => return Err(ApiError::serialization("The request body must be a CBOR map.")),
                    None => return Err(ApiError::serialization("The request body is empty; a CBOR map is required.")),
                }
                ciborium::from_reader(body).map_err(|err| ApiError::serialization(err.to_string()))
            }
        }
    }

    /// Encodes a response body.
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, ApiError> {
        match self {
            Wire::Json => encode(value),
            Wire::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(value, &mut out).map_err(|err| {
                    tracing::error!(cause = %err, "response encoding failed");
                    ApiError::internal()
                })?;
                Ok(out)
            }
        }
    }

    /// The body of an error answer: `__type` and `message`.
    pub fn error_body(self, kind: &str, message: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct ErrorShape<'a> {
            #[serde(rename = "__type")]
            kind: &'a str,
            message: &'a str,
        }
        self.encode(&ErrorShape { kind, message }).unwrap_or_default()
    }
}

/// Decodes a JSON request body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Kinesis requests are JSON objects; refuse arrays and scalars before serde sees them.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(ApiError::serialization("The request body must be a JSON object.")),
        None => return Err(ApiError::serialization("The request body is empty; a JSON object is required.")),
    }
    serde_json::from_slice(body).map_err(|err| ApiError::serialization(err.to_string()))
}

/// Encodes a JSON response body.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|err| {
        tracing::error!(cause = %err, "response encoding failed");
        ApiError::internal()
    })
}

/// Binary data, base64 on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl Visitor<'_> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64-encoded string or a byte string")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(bytes.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(bytes))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Blob, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map(Blob)
                    .map_err(|err| E::custom(format!("'{}' can not be converted to a Blob: {err}", preview(text))))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BlobVisitor)
        } else {
            deserializer.deserialize_byte_buf(BlobVisitor)
        }
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer
                .collect_str(&base64::display::Base64Display::new(&self.0, &base64::engine::general_purpose::STANDARD))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

fn preview(text: &str) -> String {
    text.chars().take(64).collect()
}

/// A point in time, epoch seconds (with fraction) on the wire, milliseconds inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seconds = if deserializer.is_human_readable() {
            f64::deserialize(deserializer)?
        } else {
            // CBOR: integers are epoch milliseconds (what the AWS SDKs send), floats seconds.
            let value = ciborium::tag::Captured::<ciborium::Value>::deserialize(deserializer)?.1;
            match value {
                ciborium::Value::Integer(ms) => {
                    let ms = i128::from(ms);
                    let ms =
                        u64::try_from(ms).map_err(|_| de::Error::custom(format!("{ms} is not a valid timestamp")))?;
                    return Ok(Timestamp(ms));
                }
                ciborium::Value::Float(seconds) => seconds,
                _ => return Err(de::Error::custom("a timestamp must be a number")),
            }
        };
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(de::Error::custom(format!("{seconds} is not a valid timestamp")));
        }
        // Saturating float-to-int conversion; timestamps beyond u64 ms are clamped.
        Ok(Timestamp((seconds * 1000.0).round() as u64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            ciborium::tag::Required::<u64, CBOR_EPOCH_TAG>(self.0).serialize(serializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kinesis::error::ErrorCode;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(rename = "Data")]
        data: Option<Blob>,
        #[serde(rename = "At")]
        at: Option<Timestamp>,
    }

    #[test]
    fn blobs_and_timestamps_decode() {
        let probe: Probe = decode(br#"{"Data":"aGVsbG8=","At":1700000000.123,"Extra":[1,2]}"#).expect("decode");
        assert_eq!(probe.data, Some(Blob(b"hello".to_vec())));
        assert_eq!(probe.at, Some(Timestamp(1_700_000_000_123)));
        assert_eq!(encode(&Blob(b"hello".to_vec())).expect("encode"), br#""aGVsbG8=""#);
        assert_eq!(encode(&Timestamp(1_500)).expect("encode"), b"1.5");
    }

    #[derive(Debug, Serialize)]
    struct Out {
        #[serde(rename = "Data")]
        data: Blob,
        #[serde(rename = "At")]
        at: Timestamp,
    }

    #[test]
    fn cbor_carries_blobs_as_bytes_and_timestamps_as_tagged_milliseconds() {
        let body = Wire::Cbor.encode(&Out { data: Blob(b"hi".to_vec()), at: Timestamp(1_500) }).expect("encode");
        let value: ciborium::Value = ciborium::from_reader(body.as_slice()).expect("cbor");
        let map = value.as_map().expect("map");
        assert_eq!(map[0].1, ciborium::Value::Bytes(b"hi".to_vec()));
        assert_eq!(map[1].1, ciborium::Value::Tag(1, Box::new(ciborium::Value::Integer(1_500.into()))));
        let probe: Probe = Wire::Cbor.decode(&body).expect("decode");
        assert_eq!((probe.data, probe.at), (Some(Blob(b"hi".to_vec())), Some(Timestamp(1_500))));
        let err = Wire::Cbor.decode::<Probe>(&[0x80]).expect_err("an array is not a request");
        assert_eq!(err.code, ErrorCode::Serialization);
    }

    #[test]
    fn bad_bodies_are_serialization_errors() {
        for body in [
            &b""[..],
            b"   ",
            b"{",
            b"[]",
            b"42",
            br#"{"Data":"not base64!"}"#,
            br#"{"Data":5}"#,
            br#"{"At":"yesterday"}"#,
            br#"{"At":-1}"#,
        ] {
            let err = decode::<Probe>(body).expect_err("must fail");
            assert_eq!(err.code, ErrorCode::Serialization, "{}", String::from_utf8_lossy(body));
        }
    }
}
