//! Data-plane tests: the real `shard-server` binary on 127.0.0.1 with a temporary data
//! directory, driven through `aws-sdk-kinesis` and raw HTTP.

mod cases;
