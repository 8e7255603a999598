//! Field validation with Kinesis' messages: every violated constraint is collected and
//! reported in one `ValidationException`, worded as AWS words it, e.g.
//! `1 validation error detected: Value 'a b' at 'streamName' failed to satisfy constraint:
//! Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+`.

use super::error::{ApiError, ErrorCode};

/// Kinesis' stream name pattern.
pub const STREAM_NAME_PATTERN: &str = "[a-zA-Z0-9_.-]+";
/// Kinesis' stream ARN pattern.
pub const STREAM_ARN_PATTERN: &str = "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+";
/// Kinesis' hash key pattern.
pub const HASH_KEY_PATTERN: &str = "0|([1-9]\\d{0,38})";
/// Kinesis' consumer ARN pattern.
pub const CONSUMER_ARN_PATTERN: &str =
    "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+";
/// Kinesis' sequence number pattern.
pub const SEQUENCE_NUMBER_PATTERN: &str = "0|([1-9]\\d{0,128})";
/// AWS reports at most this many violations.
const MAX_REPORTED: usize = 10;
/// Longest value quoted in full in a violation (longer ones are cut, so that a huge field
/// cannot make a larger message); every model limit on a quoted string is below it.
const MAX_QUOTED_BYTES: usize = 64 << 10;

/// Collects constraint violations for one request.
#[derive(Debug, Default)]
pub struct Violations {
    errors: Vec<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// True when `text` matches [`STREAM_NAME_PATTERN`] (also used for shard ids).
pub fn is_stream_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_name_char)
}

/// True when `text` matches [`HASH_KEY_PATTERN`].
pub fn is_hash_key(text: &str) -> bool {
    match text.as_bytes() {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.len() <= 38 && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    }
}

/// The `(region, account, stream name)` of a stream ARN matching [`STREAM_ARN_PATTERN`].
pub fn parse_stream_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (arn_tag, partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let name = resource.strip_prefix("stream/")?;
    let ok = arn_tag == "arn"
        && partition.starts_with("aws")
        && service == "kinesis"
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.chars().any(char::is_whitespace);
    ok.then_some((region, account, name))
}

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, value: Option<&str>, field: &str, constraint: &str) {
        if self.errors.len() >= MAX_REPORTED {
            return;
        }
        let value = match value {
            Some(v) if v.len() > MAX_QUOTED_BYTES => {
                let cut = (0..=MAX_QUOTED_BYTES).rev().find(|&i| v.is_char_boundary(i)).unwrap_or(0);
                format!("'{}…'", &v[..cut])
            }
            Some(v) => format!("'{v}'"),
            None => "null".to_owned(),
        };
        self.errors.push(format!("Value {value} at '{field}' failed to satisfy constraint: {constraint}"));
    }

    /// Records a violation with a custom constraint text.
    pub fn violation(&mut self, value: Option<&str>, field: &str, constraint: &str) {
        self.push(value, field, constraint);
    }

    /// True when nothing has been violated so far.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The field must be present.
    pub fn required<T: ?Sized>(&mut self, field: &str, value: Option<&T>) {
        if value.is_none() {
            self.push(None, field, "Member must not be null");
        }
    }

    /// A string's length in characters must lie in `min..=max`.
    pub fn length(&mut self, field: &str, value: Option<&str>, min: usize, max: usize) {
        let Some(text) = value else { return };
        let len = text.chars().count();
        if len < min {
            self.push(Some(text), field, &format!("Member must have length greater than or equal to {min}"));
        }
        if len > max {
            self.push(Some(text), field, &format!("Member must have length less than or equal to {max}"));
        }
    }

    /// A number must lie in `min..=max`.
    pub fn range(&mut self, field: &str, value: Option<i64>, min: i64, max: i64) {
        let Some(number) = value else { return };
        if number < min {
            self.push(
                Some(&number.to_string()),
                field,
                &format!("Member must have value greater than or equal to {min}"),
            );
        }
        if number > max {
            self.push(Some(&number.to_string()), field, &format!("Member must have value less than or equal to {max}"));
        }
    }

    /// A string must match `pattern`, decided by `matches`.
    pub fn pattern(&mut self, field: &str, value: Option<&str>, matches: fn(&str) -> bool, pattern: &str) {
        if let Some(text) = value {
            if !matches(text) {
                self.push(Some(text), field, &format!("Member must satisfy regular expression pattern: {pattern}"));
            }
        }
    }

    /// A string must be one of `allowed`.
    pub fn one_of(&mut self, field: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(text) = value {
            if !allowed.contains(&text) {
                self.push(Some(text), field, &format!("Member must satisfy enum value set: [{}]", allowed.join(", ")));
            }
        }
    }

    /// A list's length must lie in `min..=max` and each member's in `member_min..=member_max`;
    /// the list is shown as Kinesis shows it, `[a, b]`.
    pub fn string_list(
        &mut self,
        field: &str,
        value: Option<&[String]>,
        (min, max): (usize, usize),
        (member_min, member_max): (usize, usize),
    ) {
        let Some(list) = value else { return };
        let shown = format!("[{}]", list.join(", "));
        self.count(field, &shown, list.len(), min, max);
        if list.iter().any(|m| !(member_min..=member_max).contains(&m.chars().count())) {
            self.push(
                Some(&shown),
                field,
                &format!(
                    "Member must satisfy constraint: [Member must have length less than or equal to {member_max}, Member must have length greater than or equal to {member_min}]"
                ),
            );
        }
    }

    /// A tag map: its size in `min..=max`, keys of 1–128 and values of 0–256 characters;
    /// the map is shown as Kinesis shows it, `{key=value, …}`.
    pub fn tag_map(&mut self, field: &str, value: Option<&std::collections::BTreeMap<String, String>>, max: usize) {
        let Some(map) = value else { return };
        let shown = format!("{{{}}}", map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "));
        self.count(field, &shown, map.len(), 1, max);
        if map.keys().any(|k| !(1..=128).contains(&k.chars().count())) {
            self.push(
                Some(&shown),
                field,
                "Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]",
            );
        }
        if map.values().any(|v| v.chars().count() > 256) {
            self.push(
                Some(&shown),
                field,
                "Map value must satisfy constraint: [Member must have length less than or equal to 256, Member must have length greater than or equal to 0]",
            );
        }
    }

    /// A collection's size must lie in `min..=max`; `shown` is how Kinesis shows it.
    pub fn count(&mut self, field: &str, shown: &str, len: usize, min: usize, max: usize) {
        if len < min {
            self.push(Some(shown), field, &format!("Member must have length greater than or equal to {min}"));
        }
        if len > max {
            self.push(Some(shown), field, &format!("Member must have length less than or equal to {max}"));
        }
    }

    /// A stream name: 1..128 characters of `[a-zA-Z0-9_.-]`.
    pub fn stream_name(&mut self, field: &str, value: Option<&str>) {
        self.pattern(field, value, is_stream_name, STREAM_NAME_PATTERN);
        self.length(field, value, 1, 128);
    }

    /// A shard id: same shape as a stream name.
    pub fn shard_id(&mut self, field: &str, value: Option<&str>) {
        self.stream_name(field, value);
    }

    /// A stream ARN.
    pub fn stream_arn(&mut self, field: &str, value: Option<&str>) {
        self.pattern(field, value, |arn| parse_stream_arn(arn).is_some(), STREAM_ARN_PATTERN);
        self.length(field, value, 1, 2048);
    }

    /// A consumer ARN (`…:stream/NAME/consumer/NAME:SECONDS`).
    pub fn consumer_arn(&mut self, field: &str, value: Option<&str>) {
        self.pattern(
            field,
            value,
            |arn| crate::consumer::parse_arn(arn).is_some_and(|(stream, _, _)| parse_stream_arn(stream).is_some()),
            CONSUMER_ARN_PATTERN,
        );
        self.length(field, value, 1, 2048);
    }

    /// A sequence number.
    pub fn sequence_number(&mut self, field: &str, value: Option<&str>) {
        self.pattern(field, value, crate::sequence::is_well_formed, SEQUENCE_NUMBER_PATTERN);
    }

    /// A consumer name.
    pub fn consumer_name(&mut self, field: &str, value: Option<&str>) {
        self.stream_name(field, value);
    }

    /// Turns the collected violations into a `ValidationException`, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.errors.len() {
            0 => Ok(()),
            n => Err(ApiError::new(
                ErrorCode::Validation,
                format!("{n} validation error{} detected: {}", if n == 1 { "" } else { "s" }, self.errors.join("; ")),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_aws() {
        let mut v = Violations::new();
        v.stream_name("streamName", Some("a b"));
        v.required::<String>("partitionKey", None);
        let err = v.finish().expect_err("violations");
        assert_eq!(err.code, ErrorCode::Validation);
        assert_eq!(
            err.message,
            "2 validation errors detected: Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value null at 'partitionKey' failed to satisfy constraint: Member must not be null"
        );
        let mut v = Violations::new();
        v.range("shardCount", Some(0), 1, 100);
        assert_eq!(
            v.finish().expect_err("violation").message,
            "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        assert!(Violations::new().finish().is_ok());
    }

    #[test]
    fn names_hash_keys_and_arns() {
        assert!(is_stream_name("Orders_2024.v1-a"));
        assert!(!is_stream_name("orders/2024"));
        assert!(!is_stream_name(""));
        assert!(is_hash_key("0") && is_hash_key(&u128::MAX.to_string()));
        assert!(!is_hash_key("01") && !is_hash_key("-1") && !is_hash_key(&"9".repeat(40)));
        assert_eq!(
            parse_stream_arn("arn:aws:kinesis:us-east-1:123456789012:stream/orders"),
            Some(("us-east-1", "123456789012", "orders"))
        );
        assert_eq!(parse_stream_arn("arn:aws:kinesis:us-east-1:1234:stream/orders"), None);
        assert_eq!(parse_stream_arn("arn:aws:s3:us-east-1:123456789012:stream/orders"), None);
        assert_eq!(parse_stream_arn("arn:aws:kinesis:us-east-1:123456789012:stream/"), None);
    }

    #[test]
    fn caps_at_ten_violations() {
        let mut v = Violations::new();
        for _ in 0..15 {
            v.required::<String>("x", None);
        }
        assert!(v.finish().expect_err("violations").message.starts_with("10 validation errors detected"));
    }
}
