//! The CBOR 1.1 wire, as the AWS Java SDK and the KCL speak it by default: requests and answers
//! in CBOR, blobs as byte strings, timestamps as tag 1 over epoch milliseconds, errors in the
//! same shape as JSON's.

use ciborium::Value;
use shardline_tests::{create_active_stream, Server};

const CBOR: &str = "application/x-amz-cbor-1.1";

fn map(entries: Vec<(&str, Value)>) -> Vec<u8> {
    let value = Value::Map(entries.into_iter().map(|(k, v)| (Value::Text(k.into()), v)).collect());
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).expect("encode");
    out
}

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_map()?.iter().find(|(k, _)| k.as_text() == Some(name)).map(|(_, v)| v)
}

async fn call(endpoint: &str, op: &str, body: Vec<u8>) -> anyhow::Result<(u16, String, Value)> {
    let request = reqwest::Client::new()
        .post(endpoint)
        .header("X-Amz-Target", format!("Kinesis_20131202.{op}"))
        .header("Content-Type", CBOR);
    let response = shardline_tests::signed(request).body(body).send().await?;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = response.bytes().await?;
    let value = if bytes.is_empty() { Value::Null } else { ciborium::from_reader(bytes.as_ref())? };
    Ok((status, content_type, value))
}

#[tokio::test]
async fn cbor_requests_round_trip_records() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let endpoint = server.endpoint.as_str();
    let (status, _, _) = call(
        endpoint,
        "CreateStream",
        map(vec![("StreamName", Value::Text("cbor".into())), ("ShardCount", Value::Integer(1.into()))]),
    )
    .await?;
    assert_eq!(status, 200);
    shardline_tests::wait_for_status(&server.client(), "cbor", aws_sdk_kinesis::types::StreamStatus::Active).await?;

    let payload = vec![0u8, 1, 2, 255];
    let (status, content_type, put) = call(
        endpoint,
        "PutRecord",
        map(vec![
            ("StreamName", Value::Text("cbor".into())),
            ("PartitionKey", Value::Text("k".into())),
            ("Data", Value::Bytes(payload.clone())),
        ]),
    )
    .await?;
    assert_eq!((status, content_type.as_str()), (200, CBOR));
    assert_eq!(field(&put, "ShardId").and_then(Value::as_text), Some("shardId-000000000000"));

    let (_, _, iterator) = call(
        endpoint,
        "GetShardIterator",
        map(vec![
            ("StreamName", Value::Text("cbor".into())),
            ("ShardId", Value::Text("shardId-000000000000".into())),
            ("ShardIteratorType", Value::Text("TRIM_HORIZON".into())),
        ]),
    )
    .await?;
    let iterator = field(&iterator, "ShardIterator").cloned().expect("iterator");
    let (status, _, records) = call(endpoint, "GetRecords", map(vec![("ShardIterator", iterator)])).await?;
    assert_eq!(status, 200);
    let records = field(&records, "Records").and_then(Value::as_array).cloned().unwrap_or_default();
    assert_eq!(records.len(), 1);
    assert_eq!(field(&records[0], "Data"), Some(&Value::Bytes(payload)));
    match field(&records[0], "ApproximateArrivalTimestamp") {
        Some(Value::Tag(1, inner)) => {
            let ms = inner.as_integer().map(i128::from).unwrap_or_default();
            assert!(ms > 1_600_000_000_000, "epoch milliseconds, got {ms}");
        }
        other => panic!("timestamp should be tag 1 over milliseconds, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn cbor_errors_keep_the_aws_shape() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let endpoint = server.endpoint.as_str();
    create_active_stream(&server.client(), "e", 1).await?;
    let cases = [
        ("DescribeStream", map(vec![("StreamName", Value::Text("missing".into()))]), "ResourceNotFoundException"),
        ("CreateStream", map(vec![("ShardCount", Value::Integer(1.into()))]), "ValidationException"),
        (
            "PutRecord",
            map(vec![
                ("StreamName", Value::Text("e".into())),
                ("PartitionKey", Value::Text("k".into())),
                ("Data", Value::Integer(5.into())),
            ]),
            "SerializationException",
        ),
    ];
    for (op, body, expected) in cases {
        let (status, content_type, answer) = call(endpoint, op, body).await?;
        assert_eq!((status, content_type.as_str()), (400, CBOR), "{op}");
        assert_eq!(field(&answer, "__type").and_then(Value::as_text), Some(expected), "{op}: {answer:?}");
        let message = field(&answer, "message").or_else(|| field(&answer, "Message"));
        assert!(message.and_then(Value::as_text).is_some_and(|m| !m.is_empty()), "{answer:?}");
    }
    // A body that is not one CBOR map gets the type alone, as the service sends it.
    for body in [vec![0x80], vec![0xff, 0x00], Vec::new()] {
        let (status, content_type, answer) = call(endpoint, "ListStreams", body).await?;
        assert_eq!((status, content_type.as_str()), (400, CBOR));
        assert_eq!(answer, Value::Map(vec![("__type".into(), "SerializationException".into())]));
    }
    Ok(())
}
