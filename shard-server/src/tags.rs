//! Stream tags: AWS's limits (50 per stream, keys 1–128 and values 0–256 characters of a fixed
//! alphabet) and the changes AddTagsToStream/TagResource and RemoveTagsFromStream/UntagResource
//! make.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Most tags one stream may carry.
pub const MAX_TAGS_PER_STREAM: usize = 50;

/// True for the characters AWS allows in tag keys and values.
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-%@".contains(c)
}

/// Checks every key and value's characters.
pub fn check_characters<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<()> {
    if texts.into_iter().all(|t| t.chars().all(allowed)) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."
                .into(),
        ))
    }
}

/// Adds (or overwrites) `new` on `current`, refusing to pass [`MAX_TAGS_PER_STREAM`].
pub fn add(
    current: &mut BTreeMap<String, String>,
    new: BTreeMap<String, String>,
    stream: &str,
    account: &str,
) -> Result<()> {
    check_characters(new.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))?;
    let total = current.len() + new.keys().filter(|k| !current.contains_key(*k)).count();
    if total > MAX_TAGS_PER_STREAM {
        return Err(Error::LimitExceeded(format!(
            "Failed to add tags to stream {stream} under account {account} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it."
        )));
    }
    current.extend(new);
    Ok(())
}

/// Removes the tags with these keys; absent keys are ignored, as AWS does.
pub fn remove(current: &mut BTreeMap<String, String>, keys: &[String]) -> Result<()> {
    check_characters(keys.iter().map(String::as_str))?;
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
        assert!(matches!(add(&mut tags, batch(50, 51), "s", "1"), Err(Error::LimitExceeded(_))));
        remove(&mut tags, &["k0".into(), "absent".into()]).expect("remove");
        assert_eq!(tags.len(), 49);
        let bad = [("a#b".to_owned(), String::new())].into_iter().collect();
        assert!(matches!(add(&mut tags, bad, "s", "1"), Err(Error::InvalidArgument(_))));
    }
}
