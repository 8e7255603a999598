//! Event-stream frames (`application/vnd.amazon.eventstream`, SubscribeToShard's body) as a
//! peer sends them: any bytes decode or are refused without a panic, and a decoded message
//! written again decodes to the same message.
#![no_main]

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = bytes::Bytes::copy_from_slice(data);
    while let Ok(message) = read_message_from(&mut input) {
        let mut written = Vec::new();
        if write_message_to(&message, &mut written).is_ok() {
            let mut again = bytes::Bytes::from(written);
            let reread = read_message_from(&mut again).expect("a written frame reads back");
            assert_eq!(reread, message, "a frame changed on its way round");
        }
    }
});
