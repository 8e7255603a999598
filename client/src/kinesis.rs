//! Builds an `aws-sdk-kinesis` client for any Kinesis-compatible endpoint.

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};

/// A Kinesis client for `endpoint` (e.g. `http://127.0.0.1:4567`) with static credentials.
pub fn client(endpoint: &str, region: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("shardline", "shardline", None, None, "static"))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}
