//! The KPL aggregated record format, so any KCL can deaggregate what this producer writes and
//! this consumer reads what the KPL writes: the magic bytes `F3 89 9A C2`, a protobuf
//! `AggregatedRecord` (partition key and explicit hash key tables, records pointing into them),
//! then the MD5 of the protobuf bytes.

use md5::{Digest, Md5};
use prost::Message;

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// `AggregatedRecord` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    /// Partition keys the records point into.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Explicit hash keys the records point into.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// `Record` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// Index into the partition key table.
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index into the explicit hash key table.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// Payload.
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    /// Tags (unused by Shardline, kept for compatibility).
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// `Tag` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    /// Key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// One user record inside (or outside) an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Partition key.
    pub partition_key: String,
    /// Explicit hash key, decimal.
    pub explicit_hash_key: Option<String>,
    /// Payload.
    pub data: Vec<u8>,
}

/// Builds one aggregated record from user records.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    message: AggregatedRecord,
    size: usize,
}

impl Aggregator {
    /// Bytes the aggregated record would take now (magic, protobuf, digest).
    pub fn size(&self) -> usize {
        if self.message.records.is_empty() {
            0
        } else {
            MAGIC.len() + self.size + DIGEST_LEN
        }
    }

    /// User records held.
    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// Bytes `record` would add (an upper bound).
    pub fn added_size(&self, record: &UserRecord) -> usize {
        // Key table entries, the record's fields and their tags and lengths.
        record.partition_key.len() + record.explicit_hash_key.as_ref().map_or(0, String::len) + record.data.len() + 32
    }

    /// Adds a user record; returns its index (the sub-sequence number) in the aggregate.
    pub fn add(&mut self, record: UserRecord) -> u64 {
        self.size += self.added_size(&record);
        let partition_key_index = index_of(&mut self.message.partition_key_table, record.partition_key);
        let explicit_hash_key_index =
            record.explicit_hash_key.map(|key| index_of(&mut self.message.explicit_hash_key_table, key));
        self.message.records.push(Record {
            partition_key_index,
            explicit_hash_key_index,
            data: record.data,
            tags: Vec::new(),
        });
        (self.message.records.len() - 1) as u64
    }

    /// The aggregated record's bytes; the aggregator is empty afterwards.
    pub fn finish(&mut self) -> Vec<u8> {
        let message = std::mem::take(&mut self.message);
        self.size = 0;
        let body = message.encode_to_vec();
        let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&body);
        out.extend_from_slice(&Md5::digest(&body));
        out
    }
}

fn index_of(table: &mut Vec<String>, value: String) -> u64 {
    match table.iter().position(|v| *v == value) {
        Some(i) => i as u64,
        None => {
            table.push(value);
            (table.len() - 1) as u64
        }
    }
}

/// The user records inside `data` when it is a well-formed aggregate (magic and digest check),
/// or `None` when it is an ordinary record.
pub fn deaggregate(data: &[u8]) -> Option<Vec<UserRecord>> {
    let body = data.strip_prefix(&MAGIC)?;
    let split = body.len().checked_sub(DIGEST_LEN)?;
    let (message, digest) = body.split_at(split);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let aggregate = AggregatedRecord::decode(message).ok()?;
    aggregate
        .records
        .into_iter()
        .map(|r| {
            let partition_key =
                aggregate.partition_key_table.get(usize::try_from(r.partition_key_index).ok()?)?.clone();
            let explicit_hash_key = match r.explicit_hash_key_index {
                Some(i) => Some(aggregate.explicit_hash_key_table.get(usize::try_from(i).ok()?)?.clone()),
                None => None,
            };
            Some(UserRecord { partition_key, explicit_hash_key, data: r.data })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(key: &str, data: &str) -> UserRecord {
        UserRecord { partition_key: key.into(), explicit_hash_key: None, data: data.as_bytes().to_vec() }
    }

    #[test]
    fn aggregates_round_trip_and_share_key_tables() {
        let mut aggregator = Aggregator::default();
        assert_eq!(aggregator.add(user("a", "1")), 0);
        assert_eq!(aggregator.add(user("b", "2")), 1);
        assert_eq!(aggregator.add(UserRecord { explicit_hash_key: Some("42".into()), ..user("a", "3") }), 2);
        let estimate = aggregator.size();
        let bytes = aggregator.finish();
        assert!(bytes.len() <= estimate, "the estimate is an upper bound: {} > {estimate}", bytes.len());
        assert!(aggregator.is_empty());
        assert_eq!(&bytes[..4], &MAGIC);
        let records = deaggregate(&bytes).expect("aggregate");
        assert_eq!(records[1], user("b", "2"));
        assert_eq!(records[2].explicit_hash_key.as_deref(), Some("42"));
        let message = AggregatedRecord::decode(&bytes[4..bytes.len() - 16]).expect("protobuf");
        assert_eq!(message.partition_key_table, vec!["a", "b"]);
    }

    #[test]
    fn ordinary_and_corrupt_records_are_not_aggregates() {
        assert!(deaggregate(b"plain data").is_none());
        let mut aggregator = Aggregator::default();
        aggregator.add(user("a", "1"));
        let mut bytes = aggregator.finish();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(deaggregate(&bytes).is_none(), "a bad digest means an ordinary record");
    }
}
