//! Planning a change of shard count as Kinesis allows it: each UpdateShardCount step may at
//! most double or halve the open shards, so a larger change is a chain of steps. Pure: the
//! reconciler records the plan's progress in the status and runs one step at a time, so an
//! operator restarted mid-plan resumes where it was.

/// The targets of each UpdateShardCount call taking `current` open shards to `target`.
pub fn plan(current: u32, target: u32) -> Vec<u32> {
    let mut steps = Vec::new();
    let (mut at, target) = (current.max(1), target.max(1));
    while at != target {
        at = if target > at { target.min(at.saturating_mul(2)) } else { target.max(at.div_ceil(2)) };
        steps.push(at);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_double_or_halve_at_most_per_step() {
        assert_eq!(plan(4, 8), vec![8]);
        assert_eq!(plan(8, 3), vec![4, 3]);
        assert_eq!(plan(1, 10), vec![2, 4, 8, 10]);
        assert_eq!(plan(3, 1), vec![2, 1]);
        assert_eq!(plan(5, 5), Vec::<u32>::new());
        for (from, to) in [(1, 1000), (1000, 1), (7, 13), (13, 7)] {
            let mut at = from;
            for step in plan(from, to) {
                assert!(step <= at * 2 && step * 2 >= at, "{at} -> {step}");
                at = step;
            }
            assert_eq!(at, to);
        }
    }
}
