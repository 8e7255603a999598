//! Stream tags: AWS's limits (50 per stream, keys 1–128 and values 0–256 characters of
//! letters, digits, spaces and `_ . : / = + - @`) and the changes AddTagsToStream/TagResource
//! and RemoveTagsFromStream/UntagResource make.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Most tags one stream may carry.
pub const MAX_TAGS_PER_STREAM: usize = 50;

/// True for the characters Kinesis lets through its first check of tag keys and values
/// (`%` among them, which its second check refuses).
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || "_.:/=+-@% ".contains(c)
}

/// What a tag change does, for the messages.
#[derive(Debug, Clone, Copy)]
enum Change {
    Add,
    Remove,
}

/// Checks every key and value's characters as Kinesis does, in its two steps and words.
fn check_characters<'a>(
    texts: impl IntoIterator<Item = &'a str> + Clone,
    change: Change,
    stream: &str,
    account: &str,
) -> Result<()> {
    if !texts.clone().into_iter().all(|t| t.chars().all(allowed)) {
        return Err(Error::InvalidArgument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."
                .into(),
        ));
    }
    if texts.into_iter().any(|t| t.contains('%')) {
        let what = match change {
            Change::Add => "add tags to",
            Change::Remove => "remove tags from",
        };
        return Err(Error::InvalidArgument(format!(
            "Failed to {what} stream {stream} under account {account} because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'."
        )));
    }
    Ok(())
}

/// Adds (or overwrites) `new` on `current`, refusing to pass [`MAX_TAGS_PER_STREAM`].
pub fn add(
    current: &mut BTreeMap<String, String>,
    new: BTreeMap<String, String>,
    stream: &str,
    account: &str,
) -> Result<()> {
    check_characters(new.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]), Change::Add, stream, account)?;
    let total = current.len() + new.keys().filter(|k| !current.contains_key(*k)).count();
    if total > MAX_TAGS_PER_STREAM {
        return Err(Error::InvalidArgument(format!(
            "Failed to add tags to stream {stream} under account {account} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it."
        )));
    }
    current.extend(new);
    Ok(())
}

/// Removes the tags with these keys; absent keys are ignored, as AWS does.
pub fn remove(current: &mut BTreeMap<String, String>, keys: &[String], stream: &str, account: &str) -> Result<()> {
    check_characters(keys.iter().map(String::as_str), Change::Remove, stream, account)?;
    for key in keys {
        current.remove(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_fifty_tags_and_only_allowed_characters() {
        let mut tags = BTreeMap::new();
        let batch = |from: usize, to: usize| (from..to).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        add(&mut tags, batch(0, 50), "s", "1").expect("50 fit");
        add(&mut tags, batch(0, 10), "s", "1").expect("overwriting adds none");
        assert!(matches!(add(&mut tags, batch(50, 51), "s", "1"), Err(Error::InvalidArgument(_))));
        remove(&mut tags, &["k0".into(), "absent".into()], "s", "1").expect("remove");
        assert_eq!(tags.len(), 49);
        for bad in ["a#b", "a\tb", "a\nb", "a,b", "a%b"] {
            let bad = [(bad.to_owned(), String::new())].into_iter().collect();
            assert!(matches!(add(&mut tags, bad, "s", "1"), Err(Error::InvalidArgument(_))));
        }
        let fine = [("aws:created-by/app_1.x=y+z@ é".to_owned(), String::new())].into_iter().collect();
        add(&mut tags, fine, "s", "1").expect("allowed characters");
    }
}
