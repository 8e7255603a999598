//! Kinesis' behaviour at the edges, as the service answers (the expectations follow the
//! responses a public suite recorded against the real service, updated where the current
//! service model differs): the HTTP envelope, signatures, type conversions, validation, the
//! wording of errors, shard ids, sequence numbers, tags and state rules. Every case checks the
//! whole answer body.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use serde_json::{json, Value};
use shardline_proto::sequence::{Layout, Position, SequenceNumber};
use shardline_tests::{code, create_active_stream, message, raw_call, seq, signed, Server, ACCOUNT};

/// A raw answer: status, headers and body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every answer carries a request id and (but on preflights) a 72-byte extended id.
    fn assert_ids(&self) {
        let id = self.header("x-amzn-requestid").unwrap_or_default();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "request id {id:?}");
        use base64::Engine as _;
        let extended = base64::engine::general_purpose::STANDARD.decode(self.header("x-amz-id-2").unwrap_or_default());
        assert_eq!(extended.map(|b| b.len()).ok(), Some(72), "x-amz-id-2");
        assert_eq!(self.header("content-length"), Some(self.body.len().to_string().as_str()));
    }
}

/// GetShardIterator through the SDK.
async fn shard_iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    sequence: Option<&str>,
) -> Result<
    aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorOutput,
    aws_sdk_kinesis::error::SdkError<aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError>,
> {
    let request = client.get_shard_iterator().stream_name(stream).shard_id(shard).shard_iterator_type(kind);
    request.set_starting_sequence_number(sequence.map(str::to_owned)).send().await
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(Answer { status, headers, body })
}

fn post(
    endpoint: &str,
    content_type: Option<&str>,
    target: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    let mut request = reqwest::Client::new().post(endpoint).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(target) = target {
        request = request.header("x-amz-target", target);
    }
    request
}

const JSON: &str = "application/x-amz-json-1.1";
const CBOR: &str = "application/x-amz-cbor-1.1";
const LIST_STREAMS: &str = "Kinesis_20131202.ListStreams";

#[tokio::test]
async fn the_envelope_is_the_services() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--cors"])?;
    let endpoint = server.endpoint.as_str();

    // Not a POST: 403 with an XML document and no content type.
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let answer = send(reqwest::Client::new().request(method.clone(), endpoint)).await?;
        assert_eq!(answer.status, 403, "{method}");
        assert_eq!(answer.header("content-type"), None);
        assert_eq!(
            answer.text(),
            "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n"
        );
        answer.assert_ids();
    }
    // No body: CBOR, typed by whether the target names an operation.
    let answer = send(post(endpoint, None, None, "")).await?;
    assert_eq!((answer.status, answer.header("content-type")), (400, Some(CBOR)));
    let body: ciborium::Value = ciborium::from_reader(answer.body.as_slice())?;
    assert_eq!(body, ciborium::Value::Map(vec![("__type".into(), "UnknownOperationException".into())]));
    answer.assert_ids();
    let answer = send(post(endpoint, None, Some(LIST_STREAMS), "")).await?;
    let body: ciborium::Value = ciborium::from_reader(answer.body.as_slice())?;
    assert_eq!(body, ciborium::Value::Map(vec![("__type".into(), "SerializationException".into())]));
    let answer = send(post(endpoint, Some(JSON), Some("Kinesis_20131202.Whatever"), "")).await?;
    assert_eq!((answer.status, answer.header("content-type")), (400, Some(JSON)));
    assert_eq!(answer.json(), json!({"__type": "UnknownOperationException"}));

    // A body in a content type Kinesis does not read.
    let answer = send(post(endpoint, None, None, "{}")).await?;
    assert_eq!((answer.status, answer.header("content-type")), (403, None));
    assert!(answer.text().starts_with("<AccessDeniedException>"));
    let answer = send(post(endpoint, Some("application/x-amz-json-1.0"), Some(LIST_STREAMS), "{}")).await?;
    assert_eq!((answer.status, answer.text().as_str()), (404, "<UnknownOperationException/>\n"));

    // `application/json` is parsed, then answered in the legacy envelope.
    let answer = send(post(endpoint, Some("application/json"), Some(LIST_STREAMS), "{}")).await?;
    assert_eq!((answer.status, answer.header("content-type")), (404, Some("application/json")));
    assert_eq!(
        answer.json(),
        json!({"Output": {"__type": "com.amazon.coral.service#UnknownOperationException"}, "Version": "1.0"})
    );
    let answer = send(post(endpoint, Some("application/json"), Some(LIST_STREAMS), "hello")).await?;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({"Output": {"__type": "com.amazon.coral.service#SerializationException"}, "Version": "1.0"})
    );

    // Bodies that are not one JSON object, and unknown targets, have no message.
    for body in ["hello", "[]", "true", "null", "{"] {
        let answer = send(signed(post(endpoint, Some(JSON), Some(LIST_STREAMS), body))).await?;
        assert_eq!((answer.status, answer.json()), (400, json!({"__type": "SerializationException"})), "{body}");
        assert_eq!(answer.header("x-amzn-errortype"), Some("SerializationException"));
    }
    for target in ["Whatever", "Kinesis_20131202.", "Kinesis_20131202.ListStream", "Whatever.ListStreams"] {
        let answer = send(signed(post(endpoint, Some(JSON), Some(target), "{}"))).await?;
        assert_eq!((answer.status, answer.json()), (400, json!({"__type": "UnknownOperationException"})), "{target}");
    }

    // CORS: a preflight answers whatever the page asks for; other answers expose the headers.
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, endpoint)
        .header("origin", "https://app.example")
        .header("access-control-request-headers", "a, b, c")
        .header("access-control-request-method", "POST");
    let answer = send(preflight).await?;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(answer.header("access-control-allow-headers"), Some("a, b, c"));
    assert_eq!(answer.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(answer.header("access-control-max-age"), Some("172800"));
    assert_eq!(answer.header("content-length"), Some("0"));
    assert_eq!((answer.header("x-amz-id-2"), answer.header("content-type")), (None, None));
    assert!(answer.header("x-amzn-requestid").is_some());
    let answer = send(signed(post(endpoint, Some(JSON), Some(LIST_STREAMS), "{}").header("origin", "x"))).await?;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({"HasMoreStreams": false, "StreamNames": [], "StreamSummaries": []}));
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-expose-headers"),
        Some("x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date")
    );
    answer.assert_ids();
    Ok(())
}

#[tokio::test]
async fn browsers_are_let_in_only_when_asked() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let endpoint = server.endpoint.as_str();
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, endpoint)
        .header("origin", "https://evil.example")
        .header("access-control-request-headers", "x-amz-target, authorization");
    let answer = send(preflight).await?;
    assert_eq!(answer.status, 403, "without --cors a preflight is refused like any other non-POST");
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let answer = send(signed(post(endpoint, Some(JSON), Some(LIST_STREAMS), "{}").header("origin", "x"))).await?;
    assert_eq!((answer.status, answer.header("access-control-allow-origin")), (200, None));
    Ok(())
}

#[tokio::test]
async fn unsigned_requests_are_refused_as_the_service_refuses_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let endpoint = server.endpoint.as_str();
    let answer = send(post(endpoint, Some(JSON), Some(LIST_STREAMS), "{}")).await?;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})
    );
    let answer = send(post(endpoint, Some(JSON), Some(LIST_STREAMS), "{}").header("authorization", "a")).await?;
    assert_eq!(
        answer.json(),
        json!({
            "__type": "IncompleteSignatureException",
            "message": "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=a"
        })
    );
    let presigned = format!("{endpoint}/?X-Amz-Algorithm");
    let answer = send(post(&presigned, Some(CBOR), Some(LIST_STREAMS), vec![0xa0u8])).await?;
    let body: ciborium::Value = ciborium::from_reader(answer.body.as_slice())?;
    let expected = "AWS query-string parameters must include 'X-Amz-Algorithm'. AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Date'. Re-examine the query-string parameters.";
    assert_eq!(
        body,
        ciborium::Value::Map(vec![
            ("__type".into(), "IncompleteSignatureException".into()),
            ("message".into(), expected.into()),
        ])
    );
    let answer = send(signed(post(&presigned, Some(JSON), Some(LIST_STREAMS), "{}"))).await?;
    assert_eq!(
        answer.json(),
        json!({"__type": "InvalidSignatureException", "message": "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."})
    );
    // A complete pre-signed query string passes (signatures are not verified yet).
    let query = format!(
        "{endpoint}/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Signature=b&X-Amz-SignedHeaders=host&X-Amz-Date=c"
    );
    let answer = send(post(&query, Some(JSON), Some(LIST_STREAMS), "{}")).await?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // The unauthenticated health probe stays open.
    assert_eq!(reqwest::get(format!("{endpoint}/health")).await?.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn wrong_json_types_are_named_in_java_terms() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let endpoint = server.endpoint.as_str();
    let number = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";
    let cases = [
        ("CreateStream", json!({"StreamName": true}), "class java.lang.Boolean can not be converted to an String".to_owned()),
        ("CreateStream", json!({"StreamName": 23}), format!("{number} can not be converted to an String")),
        ("CreateStream", json!({"StreamName": []}), "Start of list found where not expected".to_owned()),
        ("CreateStream", json!({"StreamName": {}}), "Start of structure or map found where not expected.".to_owned()),
        ("CreateStream", json!({"ShardCount": "23"}), "class java.lang.String can not be converted to an Integer".to_owned()),
        ("CreateStream", json!({"ShardCount": true}), "class java.lang.Boolean can not be converted to an Integer".to_owned()),
        ("CreateStream", json!({"Tags": 23}), "Expected map or null".to_owned()),
        ("CreateStream", json!({"StreamModeDetails": "x"}), "Expected null".to_owned()),
        ("DeleteStream", json!({"EnforceConsumerDeletion": "23"}), "'23' can not be converted to an Boolean".to_owned()),
        ("DeleteStream", json!({"EnforceConsumerDeletion": 1}), format!("{number} can not be converted to an Boolean")),
        ("PutRecord", json!({"Data": true}), "class java.lang.Boolean can not be converted to a Blob".to_owned()),
        ("PutRecord", json!({"Data": 34.56}), format!("{number} can not be converted to a Blob")),
        (
            "PutRecord",
            json!({"Data": "23456"}),
            "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5".to_owned(),
        ),
        ("PutRecord", json!({"Data": "=+/="}), "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='".to_owned()),
        ("PutRecord", json!({"Data": "+/+="}), "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected".to_owned()),
        ("PutRecords", json!({"Records": "23"}), "Expected list or null".to_owned()),
        ("PutRecords", json!({"Records": {}}), "Start of structure or map found where not expected.".to_owned()),
        ("PutRecords", json!({"Records": [{"PartitionKey": false}]}), "class java.lang.Boolean can not be converted to an String".to_owned()),
        (
            "GetShardIterator",
            json!({"Timestamp": "23"}),
            "class java.lang.String can not be converted to milliseconds since epoch".to_owned(),
        ),
        ("RemoveTagsFromStream", json!({"TagKeys": [23]}), format!("{number} can not be converted to an String")),
    ];
    for (op, body, expected) in cases {
        let (status, answer) = raw_call(endpoint, op, body.to_string()).await?;
        assert_eq!(
            (status, answer),
            (400, json!({"__type": "SerializationException", "Message": expected})),
            "{op} {body}"
        );
    }
    // Numbers for Integers are floored and capped, as the service reads them.
    let (status, answer) =
        raw_call(endpoint, "CreateStream", r#"{"StreamName":"big","ShardCount":2147483648}"#).await?;
    assert_eq!(status, 400);
    assert_eq!(answer["__type"], "LimitExceededException");
    assert!(
        answer["message"].as_str().is_some_and(|m| m.contains("resulted from this request: 2147483647.")),
        "{answer}"
    );
    Ok(())
}

#[tokio::test]
async fn validation_comes_first_and_names_every_violation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let endpoint = server.endpoint.as_str();
    let client = server.client();
    create_active_stream(&client, "edges", 1).await?;
    let keys: Vec<String> = (0..51).map(|i| format!("k{i}")).collect();
    let cases = [
        (
            "PutRecords",
            json!({"StreamName": "missing", "Records": []}),
            "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1".to_owned(),
        ),
        (
            "RemoveTagsFromStream",
            json!({"StreamName": "missing", "TagKeys": keys}),
            format!("1 validation error detected: Value '[{}]' at 'tagKeys' failed to satisfy constraint: Member must have length less than or equal to 50", keys.join(", ")),
        ),
        (
            "AddTagsToStream",
            json!({"StreamName": "missing", "Tags": {"a": "1", "b": "x".repeat(257)}}),
            format!("1 validation error detected: Value '{{a=1, b={}}}' at 'tags' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 256, Member must have length greater than or equal to 0]", "x".repeat(257)),
        ),
        (
            "PutRecord",
            json!({"StreamName": "a b", "PartitionKey": "", "ExplicitHashKey": "01"}),
            "4 validation errors detected: Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value null at 'data' failed to satisfy constraint: Member must not be null; Value '' at 'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1; Value '01' at 'explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})".to_owned(),
        ),
    ];
    for (op, body, expected) in cases {
        let (status, answer) = raw_call(endpoint, op, body.to_string()).await?;
        assert_eq!((status, answer), (400, json!({"__type": "ValidationException", "message": expected})), "{op}");
    }
    // Members are checked in the model's order, and ten violations at most are reported.
    let records: Vec<Value> = (0..501).map(|_| json!({"PartitionKey": "", "Data": ""})).collect();
    let (_, answer) =
        raw_call(endpoint, "PutRecords", json!({"StreamName": "", "Records": records}).to_string()).await?;
    let text = answer["message"].as_str().unwrap_or_default();
    let entries = vec!["com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310"; 501].join(", ");
    let first = format!("10 validation errors detected: Value '[{entries}]' at 'records' failed to satisfy constraint: Member must have length less than or equal to 500; Value '' at 'records.1.member.partitionKey'");
    assert!(text.starts_with(&first), "{}", &text[..text.len().min(300)]);
    assert!(!text.contains("'streamName'") && text.contains("'records.9.member.partitionKey'"));
    // A record over the model's 10 MiB is a validation error on 'data'; one over the stream's
    // 1 MiB record size (key and data together) is an invalid argument.
    use base64::Engine as _;
    let huge = base64::engine::general_purpose::STANDARD.encode(vec![0u8; (10 << 20) + 1]);
    let body = json!({"StreamName": "edges", "PartitionKey": "k", "Data": huge}).to_string();
    let (status, answer) = raw_call(endpoint, "PutRecord", body).await?;
    assert_eq!((status, &answer["__type"]), (400, &json!("ValidationException")));
    assert_eq!(
        answer["message"],
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]' at 'data' failed to satisfy constraint: Member must have length less than or equal to 10485760"
    );
    let err = client
        .put_record()
        .stream_name("edges")
        .partition_key("k")
        .data(Blob::new(vec![0u8; 1 << 20]))
        .send()
        .await
        .expect_err("over the record size");
    assert_eq!(code(&err), "InvalidArgumentException");
    Ok(())
}

#[tokio::test]
async fn errors_name_the_right_thing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &["--shard-limit", "4", "--iterator-ttl-secs", "1"])?;
    let client = server.client();
    create_active_stream(&client, "named", 2).await?;
    let missing_shard = shard_iterator(&client, "named", "shard-9", ShardIteratorType::TrimHorizon, None)
        .await
        .expect_err("no shard 9");
    assert_eq!(code(&missing_shard), "ResourceNotFoundException");
    assert_eq!(
        message(&missing_shard),
        format!("Shard shardId-000000000009 in stream named under account {ACCOUNT} does not exist")
    );
    let missing_stream =
        shard_iterator(&client, "gone", "0", ShardIteratorType::TrimHorizon, None).await.expect_err("no stream");
    assert_eq!(
        message(&missing_stream),
        format!("Shard shardId-000000000000 in stream gone under account {ACCOUNT} does not exist")
    );
    let unreadable = shard_iterator(&client, "named", "shardId-x", ShardIteratorType::TrimHorizon, None)
        .await
        .expect_err("no index");
    assert_eq!(
        message(&unreadable),
        format!("Could not find shard shardId-x in stream named under account {ACCOUNT}.")
    );
    let over = client.create_stream().stream_name("more").shard_count(3).send().await.expect_err("over the limit");
    assert_eq!(code(&over), "LimitExceededException");
    assert_eq!(
        message(&over),
        format!("This request would exceed the shard limit for the account {ACCOUNT} in us-east-1. Current shard count for the account: 2. Limit: 4. Number of additional shards that would have resulted from this request: 3. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.")
    );
    let iterator = shard_iterator(&client, "named", "shardId-000000000000", ShardIteratorType::TrimHorizon, None)
        .await?
        .shard_iterator
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = client.get_records().shard_iterator(iterator).send().await.expect_err("expired");
    assert_eq!(code(&expired), "ExpiredIteratorException");
    let text = message(&expired);
    let times = text
        .strip_prefix("Iterator expired. The iterator was created at time ")
        .and_then(|t| t.strip_suffix(" which is further in the future than the tolerated delay of 1000 milliseconds."))
        .map(|t| t.split(" while right now it is ").collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(times.len(), 2, "{text}");
    for time in times {
        // Java's Date in UTC: `Wed Dec 02 18:50:00 UTC 2026`.
        let pieces: Vec<&str> = time.split(' ').collect();
        assert!(
            pieces.len() == 6
                && pieces[4] == "UTC"
                && pieces[2].len() == 2
                && pieces[3].len() == 8
                && pieces[5].len() == 4,
            "{time}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn shard_ids_resolve_as_the_service_resolves_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "ids", 3).await?;
    for id in ["shardId-000000000001", "shardId-1", "shard-1", "1", "any-thing-01"] {
        let iterator = shard_iterator(&client, "ids", id, ShardIteratorType::Latest, None).await;
        assert!(iterator.is_ok(), "{id}: {:?}", iterator.err().map(|e| message(&e)));
    }
    let after = client.list_shards().stream_name("ids").exclusive_start_shard_id("x-0").send().await?;
    let ids: Vec<&str> = after.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
    let inverted = client
        .merge_shards()
        .stream_name("ids")
        .shard_to_merge("shard-2")
        .adjacent_shard_to_merge("1")
        .send()
        .await
        .expect_err("ShardToMerge must be the lower shard");
    assert_eq!(code(&inverted), "InvalidArgumentException");
    assert_eq!(
        message(&inverted),
        format!("Shards shardId-000000000002 and shardId-000000000001 in stream ids under account {ACCOUNT} are not an adjacent pair of shards eligible for merging")
    );
    let missing = client
        .merge_shards()
        .stream_name("ids")
        .shard_to_merge("shard-1")
        .adjacent_shard_to_merge("shardId-5")
        .send()
        .await
        .expect_err("no shard 5");
    assert_eq!(
        (code(&missing), message(&missing)),
        (
            "ResourceNotFoundException".to_owned(),
            format!("Could not find shard shardId-000000000005 in stream ids under account {ACCOUNT}.")
        )
    );
    // An unreadable id is refused before the stream is looked up.
    let unreadable = client
        .split_shard()
        .stream_name("no-such-stream")
        .shard_to_split("2.14E4")
        .new_starting_hash_key("5")
        .send()
        .await
        .expect_err("no index");
    assert_eq!(
        message(&unreadable),
        format!("Could not find shard 2.14E4 in stream no-such-stream under account {ACCOUNT}.")
    );
    client.split_shard().stream_name("ids").shard_to_split("shard-0").new_starting_hash_key("1000").send().await?;
    Ok(())
}

#[tokio::test]
async fn sequence_numbers_have_the_services_layout() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    let endpoint = server.endpoint.as_str();
    create_active_stream(&client, "seqs", 2).await?;
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let put = client
        .put_record()
        .stream_name("seqs")
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("a"))
        .send()
        .await?;
    let text = put.sequence_number().to_owned();
    assert_eq!(text.len(), 56);
    // 2, shard creation (36 bits), shard index low nibble, position (64 bits), 00, arrival
    // (36 bits), shard index (32 bits), 2.
    let hex = format!("{:x}", ethnum::U256::from_str_radix(&text, 10)?);
    assert_eq!(hex.len(), 47, "{hex}");
    assert!(hex.starts_with('2') && &hex[10..11] == "0" && hex[11..12] <= *"7", "{hex}");
    assert!(&hex[27..29] == "00" && hex.ends_with("000000002"), "{hex}");
    let number = seq(&text);
    assert_eq!((number.shard, number.counter), (0, 1));
    assert!(number.arrival_secs >= before && number.arrival_secs <= before + 5);
    // The shard's starting number shares its creation time and precedes its first record.
    let shards = client.list_shards().stream_name("seqs").send().await?;
    let start = shards.shards()[0].sequence_number_range().map(|r| r.starting_sequence_number()).unwrap_or_default();
    assert_eq!(seq(start).shard_created_secs, number.shard_created_secs);
    assert!(seq(start) < number);

    // A number of another shard, and one of another stream's shard 0.
    let other = client
        .put_record()
        .stream_name("seqs")
        .partition_key("k")
        .explicit_hash_key(u128::MAX.to_string())
        .data(Blob::new("b"))
        .send()
        .await?;
    let err = shard_iterator(
        &client,
        "seqs",
        "shardId-000000000000",
        ShardIteratorType::AtSequenceNumber,
        Some(other.sequence_number()),
    )
    .await
    .expect_err("another shard's number");
    assert_eq!(
        message(&err),
        "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used in a call to a shard with shardId-000000000000"
    );
    let foreign = SequenceNumber::new(0, 1_000_000, 1, 1_000_000).to_string();
    let err =
        shard_iterator(&client, "seqs", "shardId-000000000000", ShardIteratorType::AfterSequenceNumber, Some(&foreign))
            .await
            .expect_err("another stream's number");
    assert_eq!(
        message(&err),
        format!("StartingSequenceNumber {foreign} used in GetShardIterator on shard shardId-000000000000 in stream seqs under account {ACCOUNT} is invalid because it did not come from this stream.")
    );
    // A small number is read as the oldest layout: the service answers a bare InternalFailure.
    let body = json!({"StreamName": "seqs", "ShardId": "shardId-0", "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "0"});
    let (status, answer) = raw_call(endpoint, "GetShardIterator", body.to_string()).await?;
    assert_eq!((status, answer), (500, json!({"__type": "InternalFailure"})));

    // Numbers the service issued order puts here (a migrating producer sends them).
    let from_aws = "49590338271490256608559692538361571095921575989136588898";
    assert!(matches!(Position::parse(from_aws).map(|p| p.layout), Some(Layout::Current { .. })));
    client
        .put_record()
        .stream_name("seqs")
        .partition_key("k")
        .sequence_number_for_ordering(from_aws)
        .data(Blob::new("c"))
        .send()
        .await?;
    let bad = "73559785961562665201200657303214840813699477864812904449";
    let err = client
        .put_record()
        .stream_name("seqs")
        .partition_key("k")
        .sequence_number_for_ordering(bad)
        .data(Blob::new("d"))
        .send()
        .await
        .expect_err("no layout has a leading 3");
    assert_eq!(
        message(&err),
        format!(
            "ExclusiveMinimumSequenceNumber {bad} used in PutRecord on stream seqs under account {ACCOUNT} is invalid."
        )
    );

    // Numbers of Shardline's earlier layout (checkpoints stored before) still position.
    let earlier = format!("4{:012}{:020}", 0, 1);
    let iterator =
        shard_iterator(&client, "seqs", "shardId-000000000000", ShardIteratorType::AtSequenceNumber, Some(&earlier))
            .await?
            .shard_iterator
            .unwrap_or_default();
    let page = client.get_records().shard_iterator(iterator).send().await?;
    assert_eq!(page.records().first().map(|r| r.sequence_number()), Some(text.as_str()));
    Ok(())
}

#[tokio::test]
async fn tags_allow_only_the_services_characters() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    create_active_stream(&client, "tagged", 1).await?;
    let invalid = "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @.";
    let illegal = |what: &str| {
        format!("Failed to {what} stream tagged under account {ACCOUNT} because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'.")
    };
    for (key, value, expected) in [
        ("abc;def", "1", invalid.to_owned()),
        ("abc\tdef", "1", invalid.to_owned()),
        ("abc\ndef", "1", invalid.to_owned()),
        ("abc,def", "1", invalid.to_owned()),
        ("a", "abc\ndef", invalid.to_owned()),
        ("abc%def", "1", illegal("add tags to")),
        ("a", "abc%def", illegal("add tags to")),
    ] {
        let err = client.add_tags_to_stream().stream_name("tagged").tags(key, value).send().await.expect_err(key);
        assert_eq!((code(&err), message(&err)), ("InvalidArgumentException".to_owned(), expected), "{key:?}={value:?}");
    }
    let err = client.remove_tags_from_stream().stream_name("tagged").tag_keys("a%b").send().await.expect_err("%");
    assert_eq!(message(&err), illegal("remove tags from"));
    client.add_tags_to_stream().stream_name("tagged").tags("aws:team/x_1.y=z+w-v@ é", "ok value").send().await?;
    // 50 tags at most; the stream is looked up first, then characters, then the count.
    let mut add = client.add_tags_to_stream().stream_name("tagged");
    for i in 0..50 {
        add = add.tags(format!("k{i}"), "v");
    }
    let err = add.send().await.expect_err("51 tags");
    assert_eq!(
        (code(&err), message(&err)),
        (
            "InvalidArgumentException".to_owned(),
            format!("Failed to add tags to stream tagged under account {ACCOUNT} because a given stream cannot have more than 50 tags associated with it.")
        )
    );
    let err = client.add_tags_to_stream().stream_name("missing").tags("a%b", "v").send().await.expect_err("no stream");
    assert_eq!(code(&err), "ResourceNotFoundException");
    Ok(())
}

#[tokio::test]
async fn a_creating_stream_can_be_deleted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir, &[])?;
    let client = server.client();
    client.create_stream().stream_name("short-lived").shard_count(1).send().await?;
    let status = |d: aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryOutput| {
        d.stream_description_summary().map(|s| s.stream_status().clone())
    };
    let described = client.describe_stream_summary().stream_name("short-lived").send().await?;
    assert_eq!(status(described), Some(StreamStatus::Creating));
    client.delete_stream().stream_name("short-lived").send().await?;
    match client.describe_stream_summary().stream_name("short-lived").send().await {
        Ok(described) => assert_eq!(status(described), Some(StreamStatus::Deleting)),
        Err(err) => assert_eq!(code(&err), "ResourceNotFoundException"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.describe_stream_summary().stream_name("short-lived").send().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
