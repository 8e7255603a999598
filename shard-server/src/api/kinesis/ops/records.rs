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

/// True when `fields` break none of the rules [`check_entry`] reports.
fn entry_is_valid(fields: &EntryFields<'_>) -> bool {
    let data = fields.data.is_some_and(|data| data.0.len() <= MAX_DATA_BYTES);
    // A key of at most 256 bytes has at most 256 characters; a longer one is counted.
    let key =
        fields.partition_key.is_some_and(|key| !key.is_empty() && (key.len() <= 256 || key.chars().count() <= 256));
    data && key && fields.explicit_hash_key.is_none_or(is_hash_key)
}

/// Validates one entry; `prefix` names it in the request (`records.3.member.`), built only when
/// the entry breaks a rule (a PutRecords call checks 500 of them).
pub fn check_entry(v: &mut Violations, prefix: impl Fn() -> String, fields: &EntryFields<'_>) {
    if entry_is_valid(fields) {
        return;
    }
    let prefix = prefix();
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
