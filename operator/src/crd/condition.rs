//! Status conditions (Ready, Resharding, Degraded), a list keyed by `type` whose
//! `lastTransitionTime` moves only when a condition's status flips.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Resharding or Degraded.
    #[serde(rename = "type")]
    pub kind: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// A PascalCase reason.
    pub reason: String,
    /// A human sentence.
    pub message: String,
    /// When the status last flipped (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Sets a condition in `conditions`, keeping `lastTransitionTime` unless the status flips.
pub fn set(conditions: &mut Vec<Condition>, mut next: Condition) {
    match conditions.iter_mut().find(|c| c.kind == next.kind) {
        Some(current) => {
            if current.status == next.status {
                next.last_transition_time = current.last_transition_time.clone();
            }
            *current = next;
        }
        None => conditions.push(next),
    }
}

/// The schema of a condition list: a map keyed by `type` for server-side apply.
pub fn list_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &str, at: &str) -> Condition {
        Condition {
            kind: "Ready".into(),
            status: status.into(),
            reason: "Reason".into(),
            message: String::new(),
            last_transition_time: at.into(),
            observed_generation: None,
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = vec![ready("True", "t1")];
        set(&mut conditions, ready("True", "t2"));
        assert_eq!(conditions[0].last_transition_time, "t1");
        set(&mut conditions, ready("False", "t3"));
        assert_eq!(conditions[0].last_transition_time, "t3");
        assert_eq!(conditions.len(), 1);
    }
}
