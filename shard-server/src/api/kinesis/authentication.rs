//! Whether a request carries AWS Signature Version 4 credentials, as Kinesis checks it before
//! it looks at the request's fields: in the `Authorization` header or as a pre-signed query
//! string, never both, and with every part a signature needs. Kinesis' messages are kept word
//! for word. The signature itself is not verified yet (there is no key store to verify it
//! against); a request that carries a complete one is accepted.

use axum::http::{header, HeaderMap};

use super::error::{ApiError, ErrorCode};

/// The parameters a signed `Authorization` header must carry, in the order Kinesis names them.
const HEADER_PARAMETERS: [&str; 3] = ["Credential", "Signature", "SignedHeaders"];
/// The parameters a pre-signed query string must carry, in the order Kinesis names them.
const QUERY_PARAMETERS: [&str; 5] =
    ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date"];

/// Checks that the request is signed, in the header or the query string.
pub fn check(headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let query: Vec<(String, String)> =
        query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let presigned = query.iter().any(|(key, _)| key == "X-Amz-Algorithm");
    let missing = match (authorization, presigned) {
        (Some(_), true) => {
            return Err(ApiError::new(
                ErrorCode::InvalidSignature,
                "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
            ))
        }
        (None, false) => {
            return Err(ApiError::new(ErrorCode::MissingAuthenticationToken, "Missing Authentication Token"))
        }
        (Some(authorization), false) => missing_from_header(&authorization, headers),
        (None, true) => missing_from_query(&query),
    };
    match missing {
        None => Ok(()),
        Some(message) => Err(ApiError::new(ErrorCode::IncompleteSignature, message)),
    }
}

/// What a signed `Authorization` header lacks, worded as Kinesis words it.
fn missing_from_header(authorization: &str, headers: &HeaderMap) -> Option<String> {
    // `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`: the scheme, then
    // parameters separated by commas or spaces.
    let parameters: Vec<(&str, &str)> = authorization
        .split([',', ' '])
        .skip(1)
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let mut parts = piece.trim().split('=');
            (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
        })
        .collect();
    let mut message = String::new();
    for wanted in HEADER_PARAMETERS {
        if !parameters.iter().any(|(key, value)| *key == wanted && !value.is_empty()) {
            message.push_str(&format!("Authorization header requires '{wanted}' parameter. "));
        }
    }
    if !headers.contains_key("x-amz-date") && !headers.contains_key(header::DATE) {
        message.push_str("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
    }
    (!message.is_empty()).then(|| format!("{message}Authorization={authorization}"))
}

/// What a pre-signed query string lacks, worded as Kinesis words it.
fn missing_from_query(query: &[(String, String)]) -> Option<String> {
    let mut message = String::new();
    for wanted in QUERY_PARAMETERS {
        if !query.iter().any(|(key, value)| key == wanted && !value.is_empty()) {
            message.push_str(&format!("AWS query-string parameters must include '{wanted}'. "));
        }
    }
    (!message.is_empty()).then(|| format!("{message}Re-examine the query-string parameters."))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn refusal(headers: &HeaderMap, query: Option<&str>) -> (ErrorCode, String) {
        let err = check(headers, query).expect_err("refused");
        (err.code, err.message)
    }

    #[test]
    fn a_complete_signature_passes() {
        let signed = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=ff"),
            ("x-amz-date", "20261202T000000Z"),
        ]);
        assert!(check(&signed, None).is_ok());
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Signature=b&X-Amz-SignedHeaders=host&X-Amz-Date=c";
        assert!(check(&HeaderMap::new(), Some(query)).is_ok());
    }

    #[test]
    fn what_is_missing_is_named_in_kinesis_words() {
        assert_eq!(
            refusal(&HeaderMap::new(), None),
            (ErrorCode::MissingAuthenticationToken, "Missing Authentication Token".to_owned())
        );
        assert_eq!(
            refusal(&headers(&[("authorization", "a")]), None),
            (
                ErrorCode::IncompleteSignature,
                "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=a".to_owned()
            )
        );
        assert_eq!(
            refusal(&HeaderMap::new(), Some("X-Amz-Algorithm")),
            (
                ErrorCode::IncompleteSignature,
                "AWS query-string parameters must include 'X-Amz-Algorithm'. AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Date'. Re-examine the query-string parameters.".to_owned()
            )
        );
        assert_eq!(
            refusal(&headers(&[("authorization", "a")]), Some("X-Amz-Algorithm=x")).0,
            ErrorCode::InvalidSignature
        );
    }
}
