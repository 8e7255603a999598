//! Shard iterators, page tokens (NextToken) and sequence numbers as clients send them back:
//! any text is refused or accepted without a panic, and whatever is accepted round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shard_server::api::kinesis::page_token;
use shard_server::iterator::{self, IteratorCodec};
use shard_server::sequence::{self, SequenceNumber};

const NOW_MS: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let codec = IteratorCodec::new([7; 32], 300_000);
    let text = String::from_utf8_lossy(data);
    if let Ok(decoded) = codec.decode(&text, NOW_MS) {
        assert_eq!(codec.decode(&codec.encode(&decoded), NOW_MS).ok(), Some(decoded), "re-encoding changes it");
    }
    let _ = iterator::peek(&text);
    let _ = codec.open(data);
    let _: Result<serde_json::Value, _> = page_token::redeem(&codec, &text, NOW_MS);
    let _: Result<(String, u64), _> = page_token::redeem(&codec, &text, NOW_MS);
    let sealed = codec.seal(data);
    assert_eq!(codec.open(&sealed), Some(data), "a sealed body opens to itself");
    if let Some(number) = SequenceNumber::parse(&text) {
        assert!(sequence::is_well_formed(&text));
        assert_eq!(SequenceNumber::parse(&number.to_string()), Some(number), "sequence numbers round-trip");
    }
});
