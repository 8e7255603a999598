//! AWS's validation of the resharding, tagging, monitoring, consumer and fan-out operations,
//! sent raw so that every malformed shape reaches the server: each answer is the AWS error
//! type with a message.

use shardline_tests::{create_active_stream, error_type, raw_call, Server, ACCOUNT, REGION};

#[tokio::test]
async fn malformed_requests_of_newer_operations_get_aws_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    create_active_stream(&server.client(), "v", 2).await?;
    let arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/v");
    let consumer = format!("{arn}/consumer/none:1");
    let cases: Vec<(&str, String, &str)> = vec![
        ("SplitShard", r#"{"StreamName":"v","ShardToSplit":"shardId-000000000000"}"#.into(), "ValidationException"),
        (
            "SplitShard",
            r#"{"StreamName":"v","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"-5"}"#.into(),
            "ValidationException",
        ),
        (
            "SplitShard",
            r#"{"StreamName":"v","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"1"}"#.into(),
            "InvalidArgumentException",
        ),
        (
            "SplitShard",
            r#"{"StreamName":"v","ShardToSplit":"shardId-000000000009","NewStartingHashKey":"5"}"#.into(),
            "ResourceNotFoundException",
        ),
        (
            "SplitShard",
            r#"{"StreamName":"nope","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"5"}"#.into(),
            "ResourceNotFoundException",
        ),
        ("MergeShards", r#"{"StreamName":"v","ShardToMerge":"shardId-000000000000"}"#.into(), "ValidationException"),
        ("UpdateShardCount", r#"{"StreamName":"v","TargetShardCount":3}"#.into(), "ValidationException"),
        (
            "UpdateShardCount",
            r#"{"StreamName":"v","TargetShardCount":3,"ScalingType":"RANDOM"}"#.into(),
            "ValidationException",
        ),
        (
            "UpdateShardCount",
            r#"{"StreamName":"v","TargetShardCount":100001,"ScalingType":"UNIFORM_SCALING"}"#.into(),
            "ValidationException",
        ),
        ("AddTagsToStream", r#"{"StreamName":"v"}"#.into(), "ValidationException"),
        ("AddTagsToStream", r#"{"StreamName":"v","Tags":{}}"#.into(), "ValidationException"),
        ("RemoveTagsFromStream", r#"{"StreamName":"v","TagKeys":[]}"#.into(), "ValidationException"),
        ("ListTagsForStream", r#"{"StreamName":"v","Limit":51}"#.into(), "ValidationException"),
        ("TagResource", r#"{"Tags":{"a":"b"}}"#.into(), "ValidationException"),
        ("TagResource", format!(r#"{{"ResourceARN":"{consumer}","Tags":{{"a":"b"}}}}"#), "InvalidArgumentException"),
        (
            "EnableEnhancedMonitoring",
            r#"{"StreamName":"v","ShardLevelMetrics":["Bogus"]}"#.into(),
            "ValidationException",
        ),
        ("EnableEnhancedMonitoring", r#"{"StreamName":"v","ShardLevelMetrics":[]}"#.into(), "ValidationException"),
        (
            "UpdateStreamMode",
            format!(r#"{{"StreamARN":"{arn}","StreamModeDetails":{{"StreamMode":"SOMETIMES"}}}}"#),
            "ValidationException",
        ),
        ("UpdateStreamMode", r#"{"StreamModeDetails":{"StreamMode":"ON_DEMAND"}}"#.into(), "ValidationException"),
        (
            "UpdateMaxRecordSize",
            format!(r#"{{"StreamARN":"{arn}","MaxRecordSizeInKiB":20000}}"#),
            "ValidationException",
        ),
        ("RegisterStreamConsumer", r#"{"ConsumerName":"c"}"#.into(), "ValidationException"),
        (
            "RegisterStreamConsumer",
            format!(r#"{{"StreamARN":"{arn}","ConsumerName":"bad name"}}"#),
            "ValidationException",
        ),
        ("DescribeStreamConsumer", r#"{"ConsumerARN":"not-an-arn"}"#.into(), "ValidationException"),
        ("DescribeStreamConsumer", r#"{}"#.into(), "InvalidArgumentException"),
        ("DescribeStreamConsumer", format!(r#"{{"ConsumerARN":"{consumer}"}}"#), "ResourceNotFoundException"),
        ("ListStreamConsumers", r#"{}"#.into(), "ValidationException"),
        ("ListStreamConsumers", format!(r#"{{"StreamARN":"{arn}","MaxResults":0}}"#), "ValidationException"),
        (
            "SubscribeToShard",
            format!(r#"{{"ConsumerARN":"{consumer}","ShardId":"shardId-000000000000"}}"#),
            "ValidationException",
        ),
        (
            "SubscribeToShard",
            format!(
                r#"{{"ConsumerARN":"{consumer}","ShardId":"shardId-000000000000","StartingPosition":{{"Type":"SOMEWHERE"}}}}"#
            ),
            "ValidationException",
        ),
        (
            "SubscribeToShard",
            format!(
                r#"{{"ConsumerARN":"{consumer}","ShardId":"shardId-000000000000","StartingPosition":{{"Type":"LATEST"}}}}"#
            ),
            "ResourceNotFoundException",
        ),
    ];
    for (op, body, expected) in cases {
        let (status, json) = raw_call(&server.endpoint, op, body.clone()).await?;
        assert_eq!((status, error_type(&json)), (400, expected), "{op} {body}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{op}: {json}");
    }

    // Registered consumers block DeleteStream unless EnforceConsumerDeletion is set.
    let (status, _) =
        raw_call(&server.endpoint, "RegisterStreamConsumer", format!(r#"{{"StreamARN":"{arn}","ConsumerName":"c"}}"#))
            .await?;
    assert_eq!(status, 200);
    let (status, json) = raw_call(&server.endpoint, "DeleteStream", r#"{"StreamName":"v"}"#).await?;
    assert_eq!((status, error_type(&json)), (400, "ResourceInUseException"), "{json}");
    let (status, _) =
        raw_call(&server.endpoint, "DeleteStream", r#"{"StreamName":"v","EnforceConsumerDeletion":true}"#).await?;
    assert_eq!(status, 200);
    Ok(())
}
