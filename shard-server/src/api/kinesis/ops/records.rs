//! What PutRecord and PutRecords share: the checks on one record entry and its conversion.

use crate::api::kinesis::codec::Blob;
use crate::api::kinesis::error::ApiError;
use crate::api::kinesis::validate::{is_hash_key, Violations, HASH_KEY_PATTERN};
use crate::hash_range::parse_hash_key;
use crate::node::PutEntry;

/// Largest data blob the Kinesis model admits (10 MiB); streams default to 1 MiB records.
pub const MAX_DATA_BYTES: usize = 10 << 20;

/// The fields of one record entry, borrowed for validation.
#[derive(Debug)]
pub struct EntryFields<'a> {
    /// PartitionKey.
    pub partition_key: Option<&'a str>,
    /// ExplicitHashKey.
    pub explicit_hash_key: Option<&'a str>,
    /// Data.
    pub data: Option<&'a Blob>,
}

/// Validates one entry; `prefix` locates it in the request (`records.3.`).
pub fn check_entry(v: &mut Violations, prefix: &str, fields: &EntryFields<'_>) {
    let field = |name: &str| format!("{prefix}{name}");
    v.required(&field("data"), fields.data);
    if let Some(data) = fields.data {
        if data.0.len() > MAX_DATA_BYTES {
            let shown = format!("java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]", data.0.len());
            v.violation(
                Some(&shown),
                &field("data"),
                &format!("Member must have length less than or equal to {MAX_DATA_BYTES}"),
            );
        }
    }
    v.required(&field("partitionKey"), fields.partition_key);
    v.length(&field("partitionKey"), fields.partition_key, 1, 256);
    v.pattern(&field("explicitHashKey"), fields.explicit_hash_key, is_hash_key, HASH_KEY_PATTERN);
}

/// Converts a validated entry, checking the explicit hash key's range.
pub fn to_put_entry(
    partition_key: Option<String>,
    explicit_hash_key: Option<&str>,
    data: Option<Blob>,
) -> Result<PutEntry, ApiError> {
    let explicit_hash_key = match explicit_hash_key {
        Some(text) => Some(parse_hash_key(text).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
            ))
        })?),
        None => None,
    };
    Ok(PutEntry {
        partition_key: partition_key.unwrap_or_default(),
        explicit_hash_key,
        data: data.unwrap_or_default().0,
    })
}
