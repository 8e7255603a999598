//! Three `shard-server --cluster` processes holding replicated streams, set up through the
//! Cluster calls exactly as the operator sets them up: every shard a Raft group with a replica
//! on each server, preferred leaders rotated over the servers. Used by the data-plane
//! replication test and the `replicated-cluster` benchmark program.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use shardline_proto::v1 as pb;
use shardline_proto::v1::cluster_client::ClusterClient;

use crate::netns::Network;
use crate::Server;

/// Servers in a replicated test cluster.
pub const SERVERS: usize = 3;

/// The server ids of the cluster.
pub fn server_ids(prefix: &str) -> Vec<String> {
    (0..SERVERS).map(|n| format!("{prefix}-{n}-0")).collect()
}

/// A free port on 127.0.0.1 (free when asked; bound again by a server right after).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The cluster's servers, on fixed ports so a restarted one comes back at the same addresses
/// (as a pod does behind its stable name).
#[derive(Debug)]
pub struct ReplicatedCluster {
    /// The servers, in id order.
    pub servers: Vec<Server>,
    /// Their ids.
    pub ids: Vec<String>,
    /// The cluster as layouts name it.
    pub members: Vec<pb::ClusterServer>,
}

impl ReplicatedCluster {
    /// Starts the servers with data directories under `base` (`{id}` each), ids
    /// `{prefix}-N-0`, each given `extra_args`.
    pub fn start(base: &Path, prefix: &str, extra_args: &[&str]) -> anyhow::Result<Self> {
        let mut cluster = Self { servers: Vec::new(), ids: Vec::new(), members: Vec::new() };
        for id in server_ids(prefix) {
            cluster.add_server(base, &id, extra_args)?;
        }
        Ok(cluster)
    }

    /// Starts the servers each on its own host of `network` (a network namespace, at the
    /// host's address), data directories under `base`, ids `{prefix}-N-0`.
    pub fn start_on(network: &Network, base: &Path, prefix: &str) -> anyhow::Result<Self> {
        let mut cluster = Self { servers: Vec::new(), ids: Vec::new(), members: Vec::new() };
        for (id, host) in server_ids(prefix).into_iter().zip(&network.hosts) {
            let internal = format!("{}:4569", host.address);
            let listen = format!("{}:4567", host.address);
            cluster.add(Some(&host.namespace), base, &id, &listen, &internal, &[])?;
        }
        Ok(cluster)
    }

    /// Starts one more server, `id`, with its data directory at `base/{id}`, and adds it to
    /// the members later layouts name; returns its position.
    pub fn add_server(&mut self, base: &Path, id: &str, extra_args: &[&str]) -> anyhow::Result<usize> {
        let internal = format!("127.0.0.1:{}", free_port()?);
        let listen = format!("127.0.0.1:{}", free_port()?);
        self.add(None, base, id, &listen, &internal, extra_args)
    }

    fn add(
        &mut self,
        namespace: Option<&str>,
        base: &Path,
        id: &str,
        listen: &str,
        internal: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<usize> {
        let mut args = vec!["--internal-listen", internal];
        args.extend_from_slice(extra_args);
        let server = Server::start_cluster_in(namespace, &base.join(id), id, listen, &args)?;
        self.members.push(pb::ClusterServer {
            id: id.to_owned(),
            address: server.address().to_owned(),
            internal_address: internal.to_owned(),
        });
        self.servers.push(server);
        self.ids.push(id.to_owned());
        Ok(self.servers.len() - 1)
    }

    /// The layout of stream `name` with `shards` shards over even hash ranges, each replicated
    /// on every server, shard `i`'s preferred leader server `i % 3`.
    pub fn layout(&self, name: &str, shards: u32) -> pb::StreamLayout {
        let step = u128::MAX / u128::from(shards);
        let shards = (0..shards)
            .map(|i| {
                let start = step * u128::from(i);
                let end = if i + 1 == shards { u128::MAX } else { step * u128::from(i + 1) - 1 };
                let replicas = (0..SERVERS).map(|k| self.ids[(i as usize + k) % SERVERS].clone()).collect();
                pb::ShardLayout {
                    index: i,
                    starting_hash_key: start.to_string(),
                    ending_hash_key: end.to_string(),
                    replicas,
                    ..Default::default()
                }
            })
            .collect();
        pb::StreamLayout {
            stream_name: name.into(),
            epoch: 1,
            servers: self.members.clone(),
            shards,
            retention_hours: 24,
            ..Default::default()
        }
    }

    /// Assigns `layout` to every running server, as the operator does.
    pub async fn assign(&self, layout: &pb::StreamLayout) -> anyhow::Result<()> {
        for server in self.servers.iter().filter(|s| s.is_running()) {
            let mut cluster = ClusterClient::new(server.internal().await?);
            cluster
                .assign(pb::AssignRequest { layout: Some(layout.clone()) })
                .await
                .with_context(|| format!("assigning {} to {}", layout.stream_name, server.endpoint))?;
        }
        Ok(())
    }

    /// Waits until every shard of stream `name` has a leader every running server agrees on.
    pub async fn wait_for_leaders(&self, name: &str, shards: u32, within: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let mut led = 0;
            for server in self.servers.iter().filter(|s| s.is_running()) {
                let mut cluster = ClusterClient::new(server.internal().await?);
                let state = cluster.state(pb::ClusterStateRequest { stream_name: name.into() }).await?.into_inner();
                led += state.replicas.iter().filter(|r| !r.leader.is_empty()).count();
            }
            let running = self.servers.iter().filter(|s| s.is_running()).count();
            if led >= running * shards as usize {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{led} of {} replicas know a leader",
                running * shards as usize
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The replica states of stream `name` on server `position`.
    pub async fn replicas(&self, name: &str, position: usize) -> anyhow::Result<Vec<pb::ReplicaState>> {
        let mut cluster = ClusterClient::new(self.servers[position].internal().await?);
        let state = cluster.state(pb::ClusterStateRequest { stream_name: name.into() }).await?.into_inner();
        Ok(state.replicas)
    }

    /// The server leading shard `index` of `name` as every server at `positions` reports it,
    /// when they agree on one.
    pub async fn leader_among(&self, name: &str, index: u32, positions: &[usize]) -> anyhow::Result<Option<usize>> {
        let mut named = Vec::new();
        for &position in positions {
            let Ok(channel) = self.servers[position].internal().await else { return Ok(None) };
            let request = pb::ClusterStateRequest { stream_name: name.into() };
            let Ok(state) = ClusterClient::new(channel).state(request).await else { return Ok(None) };
            let leader = state.into_inner().replicas.into_iter().find(|r| r.index == index).map(|r| r.leader);
            named.push(leader.unwrap_or_default());
        }
        let agreed = named.first().filter(|first| !first.is_empty() && named.iter().all(|n| n == *first));
        Ok(agreed.and_then(|id| self.ids.iter().position(|i| i == id)))
    }

    /// The server leading shard `index` of `name`, as at least two running servers report it.
    pub async fn leader(&self, name: &str, index: u32, within: Duration) -> anyhow::Result<usize> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let mut votes: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
            for server in self.servers.iter().filter(|s| s.is_running()) {
                let Ok(channel) = server.internal().await else { continue };
                let request = pb::ClusterStateRequest { stream_name: name.into() };
                let Ok(state) = ClusterClient::new(channel).state(request).await else { continue };
                for replica in state.into_inner().replicas.into_iter().filter(|r| r.index == index) {
                    if !replica.leader.is_empty() {
                        *votes.entry(replica.leader).or_default() += 1;
                    }
                }
            }
            let agreed = votes.into_iter().find(|(_, n)| *n >= 2).map(|(id, _)| id);
            if let Some(position) = agreed.and_then(|id| self.ids.iter().position(|i| *i == id)) {
                if self.servers[position].is_running() {
                    return Ok(position);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("no agreed leader of shard {index} of {name} within {within:?}")
    }
}
