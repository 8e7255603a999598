//! Where shards live: servers are spread over zones, and shards over servers so that every
//! server (and so every zone) carries an even share. Pure: the reconciler applies the result.

use std::collections::{BTreeMap, HashMap};

/// A shard-server pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Server {
    /// Pod name.
    pub name: String,
    /// Zone it runs in ("" without zones).
    pub zone: String,
}

/// The servers of a stream: `servers_per_zone` in each zone, named `<stream>-<zone index>-<n>`
/// (one StatefulSet per zone), listed zone by zone interleaved so that consecutive servers sit
/// in different zones.
pub fn servers(stream: &str, zones: &[String], servers_per_zone: u32) -> Vec<Server> {
    let zones: Vec<String> = if zones.is_empty() { vec![String::new()] } else { zones.to_vec() };
    let mut out = Vec::new();
    for ordinal in 0..servers_per_zone.max(1) {
        for (index, zone) in zones.iter().enumerate() {
            out.push(Server { name: format!("{stream}-{index}-{ordinal}"), zone: zone.clone() });
        }
    }
    out
}

/// Assigns every shard a server. Shards keep a server they already have while it exists;
/// the others go one by one to the least-loaded server, ties broken by the least-loaded zone
/// and then by the server order of [`servers`].
pub fn place(shards: &[String], servers: &[Server], existing: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut placed = BTreeMap::new();
    if servers.is_empty() {
        return placed;
    }
    let mut load: HashMap<&str, usize> = servers.iter().map(|s| (s.name.as_str(), 0)).collect();
    let mut zone_load: HashMap<&str, usize> = servers.iter().map(|s| (s.zone.as_str(), 0)).collect();
    let zone_of: HashMap<&str, &str> = servers.iter().map(|s| (s.name.as_str(), s.zone.as_str())).collect();
    for shard in shards {
        if let Some(server) = existing.get(shard).filter(|s| load.contains_key(s.as_str())) {
            *load.entry(server.as_str()).or_default() += 1;
            *zone_load.entry(zone_of[server.as_str()]).or_default() += 1;
            placed.insert(shard.clone(), server.clone());
        }
    }
    for shard in shards {
        if placed.contains_key(shard) {
            continue;
        }
        let best = servers
            .iter()
            .enumerate()
            .min_by_key(|(order, s)| (load[s.name.as_str()], zone_load[s.zone.as_str()], *order))
            .map(|(_, s)| s);
        if let Some(server) = best {
            *load.entry(server.name.as_str()).or_default() += 1;
            *zone_load.entry(server.zone.as_str()).or_default() += 1;
            placed.insert(shard.clone(), server.name.clone());
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("shardId-{i:012}")).collect()
    }

    #[test]
    fn shards_spread_evenly_over_servers_and_zones() {
        let zones = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let servers = servers("orders", &zones, 2);
        assert_eq!(servers.len(), 6);
        assert_eq!(servers[0].zone, "a");
        assert_eq!(servers[1].zone, "b");
        let placed = place(&ids(8), &servers, &BTreeMap::new());
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        let mut per_server: BTreeMap<&str, usize> = BTreeMap::new();
        for server in placed.values() {
            *per_server.entry(server).or_default() += 1;
            let zone = servers.iter().find(|s| &s.name == server).map(|s| s.zone.as_str()).unwrap_or_default();
            *per_zone.entry(zone).or_default() += 1;
        }
        assert!(per_server.values().all(|&n| (1..=2).contains(&n)), "{per_server:?}");
        assert!(per_zone.values().all(|&n| (2..=3).contains(&n)), "{per_zone:?}");
    }

    #[test]
    fn existing_assignments_stay_and_new_shards_fill_the_gaps() {
        let servers = servers("s", &[], 2);
        let first = place(&ids(2), &servers, &BTreeMap::new());
        let mut grown = ids(4);
        grown.rotate_left(1);
        let second = place(&grown, &servers, &first);
        for (shard, server) in &first {
            assert_eq!(second.get(shard), Some(server), "{shard} kept its server");
        }
        let on_first = second.values().filter(|s| *s == &servers[0].name).count();
        assert_eq!(on_first, 2);
        // A server that is gone loses its shards to the others.
        let fewer = &servers[..1];
        assert!(place(&ids(4), fewer, &second).values().all(|s| s == &servers[0].name));
    }
}
