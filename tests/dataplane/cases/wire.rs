//! The wire itself: malformed bodies, wrong types, unknown operations, sizes and headers. These
//! requests are sent raw, since no SDK would produce them.

use shardline_tests::{create_active_stream, error_type, raw_call, raw_request, Server};

#[tokio::test]
async fn malformed_requests_get_aws_shaped_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let endpoint = server.endpoint.as_str();
    create_active_stream(&server.client(), "wire", 1).await?;

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("PutRecord", b"{not json".to_vec(), "SerializationException"),
        ("PutRecord", b"[]".to_vec(), "SerializationException"),
        ("PutRecord", b"".to_vec(), "SerializationException"),
        (
            "PutRecord",
            br#"{"StreamName":"wire","PartitionKey":"k","Data":"%%%notbase64"}"#.to_vec(),
            "SerializationException",
        ),
        ("CreateStream", br#"{"StreamName":"typed","ShardCount":"three"}"#.to_vec(), "SerializationException"),
        ("CreateStream", br#"{"StreamName":["a"],"ShardCount":1}"#.to_vec(), "SerializationException"),
        ("CreateStream", br#"{"ShardCount":1}"#.to_vec(), "ValidationException"),
        ("PutRecord", br#"{"StreamName":"wire","Data":"eA=="}"#.to_vec(), "ValidationException"),
        ("PutRecords", br#"{"StreamName":"wire"}"#.to_vec(), "ValidationException"),
        (
            "GetShardIterator",
            br#"{"StreamName":"wire","ShardId":"shardId-000000000000","ShardIteratorType":"SOMEWHERE"}"#.to_vec(),
            "ValidationException",
        ),
        ("FlyToTheMoon", b"{}".to_vec(), "UnknownOperationException"),
        ("SplitShard", b"{}".to_vec(), "ValidationException"),
        ("PutResourcePolicy", b"{}".to_vec(), "UnknownOperationException"),
    ];
    for (op, body, expected) in cases {
        let (status, json) = raw_call(endpoint, op, body.clone()).await?;
        assert_eq!((status, error_type(&json)), (400, expected), "{op} {}", String::from_utf8_lossy(&body));
        // The service sends a bare type for bodies that are not one object and for unknown
        // operations; every other error says what is wrong.
        let bare = matches!(body.as_slice(), b"{not json" | b"[]" | b"") || op == "FlyToTheMoon";
        let message = json.get("message").or_else(|| json.get("Message")).and_then(|m| m.as_str());
        assert_eq!(message.is_none(), bare, "{op} {json}");
    }

    let (status, json) =
        raw_request(endpoint, "DynamoDB_20120810.ListTables", "application/x-amz-json-1.1", "{}").await?;
    assert_eq!((status, error_type(&json)), (400, "UnknownOperationException"));

    // Unknown fields are ignored, as AWS ignores them; the known ones still act.
    let (status, _) =
        raw_call(endpoint, "CreateStream", r#"{"StreamName":"extra","ShardCount":1,"Futuristic":{"a":1}}"#).await?;
    assert_eq!(status, 200);

    // A body larger than any valid request is refused before parsing.
    let huge = vec![b' '; 17 << 20];
    let (status, json) = raw_call(endpoint, "PutRecords", huge).await?;
    assert_eq!((status, error_type(&json)), (413, "SerializationException"));

    // A good request with a well-formed (unverified) signature works, in AWS's shape.
    let request = reqwest::Client::new()
        .post(endpoint)
        .header("X-Amz-Target", "Kinesis_20131202.PutRecord")
        .header("Content-Type", "application/x-amz-json-1.1");
    let response = shardline_tests::signed(request)
        .body(r#"{"StreamName":"wire","PartitionKey":"k","Data":"aGVsbG8="}"#)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-amz-json-1.1")
    );
    assert!(response.headers().get("x-amzn-requestid").is_some());
    let json: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    assert_eq!(json["ShardId"], "shardId-000000000000");
    assert!(json["SequenceNumber"].as_str().and_then(shardline_proto::sequence::SequenceNumber::parse).is_some());

    let health = reqwest::get(format!("{endpoint}/health")).await?;
    assert_eq!(health.status().as_u16(), 200);
    Ok(())
}
