//! What raft-rs (TiKV's Raft library, the one the replication design drives) costs on this
//! machine, measured for `docs/replication.md`: three servers in one process, each holding a
//! replica of every group, messages handed over in memory (no network, no disk), so the figures
//! are the library's own CPU and memory.
//!
//! - memory per replica of 10,000 three-replica groups;
//! - the CPU of ticking every group (what a design without quiescent groups pays at idle);
//! - one busy group's throughput, 1 KiB entries proposed in batches;
//! - election time after a leader stops, in ticks (times the tick interval is wall time).
//!
//! `raft_spike [--groups N] [--tick-ms MS]` (defaults 10,000 and 100).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use raft::prelude::{ConfState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

const SERVERS: usize = 3;

/// Every replica of every group: `replicas[server][group]`.
struct Cluster {
    replicas: Vec<Vec<RawNode<MemStorage>>>,
    /// Servers whose replicas neither tick nor receive (a stopped process).
    stopped: Vec<bool>,
    committed: u64,
}

/// A message bound for one replica.
struct Envelope {
    server: usize,
    group: usize,
    message: Message,
}

fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 2,
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Config::default()
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()).unwrap_or(0) * 4096
}

impl Cluster {
    fn new(groups: usize) -> anyhow::Result<Self> {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters: Vec<u64> = (1..=SERVERS as u64).collect();
        let mut replicas = Vec::new();
        for server in 0..SERVERS {
            let mut of_server = Vec::with_capacity(groups);
            for _ in 0..groups {
                let storage = MemStorage::new_with_conf_state(ConfState::from((voters.clone(), vec![])));
                of_server.push(RawNode::new(&config(server as u64 + 1), storage, &logger)?);
            }
            replicas.push(of_server);
        }
        Ok(Self { replicas, stopped: vec![false; SERVERS], committed: 0 })
    }

    /// Persists (in memory) and sends what one replica has ready.
    fn handle_ready(&mut self, server: usize, group: usize, out: &mut Vec<Envelope>) {
        let node = &mut self.replicas[server][group];
        if !node.has_ready() {
            return;
        }
        let mut ready = node.ready();
        let route = |messages: Vec<Message>, out: &mut Vec<Envelope>| {
            for message in messages {
                out.push(Envelope { server: message.to as usize - 1, group, message });
            }
        };
        route(ready.take_messages(), out);
        let committed = ready.take_committed_entries();
        self.committed += committed.iter().filter(|e| !e.data.is_empty()).count() as u64;
        if !ready.entries().is_empty() {
            let _ = node.mut_store().wl().append(ready.entries());
        }
        if let Some(hard_state) = ready.hs() {
            node.mut_store().wl().set_hardstate(hard_state.clone());
        }
        route(ready.take_persisted_messages(), out);
        let mut light = node.advance(ready);
        if let Some(commit) = light.commit_index() {
            node.mut_store().wl().mut_hard_state().set_commit(commit);
        }
        route(light.take_messages(), out);
        self.committed += light.take_committed_entries().iter().filter(|e| !e.data.is_empty()).count() as u64;
        node.advance_apply();
    }

    /// Delivers messages and handles readies until nothing moves.
    fn settle(&mut self, groups: impl Iterator<Item = usize> + Clone) {
        let mut out = Vec::new();
        loop {
            for server in 0..SERVERS {
                if self.stopped[server] {
                    continue;
                }
                for group in groups.clone() {
                    self.handle_ready(server, group, &mut out);
                }
            }
            if out.is_empty() {
                return;
            }
            for envelope in out.drain(..) {
                if !self.stopped[envelope.server] {
                    let _ = self.replicas[envelope.server][envelope.group].step(envelope.message);
                }
            }
        }
    }

    fn tick(&mut self, groups: impl Iterator<Item = usize> + Clone) {
        for server in 0..SERVERS {
            if self.stopped[server] {
                continue;
            }
            for group in groups.clone() {
                self.replicas[server][group].tick();
            }
        }
        self.settle(groups);
    }

    fn leader(&self, group: usize) -> Option<usize> {
        (0..SERVERS).find(|&s| !self.stopped[s] && self.replicas[s][group].raft.state == StateRole::Leader)
    }
}

fn main() -> anyhow::Result<()> {
    let (mut groups, mut tick_ms) = (10_000usize, 100u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--groups" => groups = args.next().context("--groups needs a number")?.parse()?,
            "--tick-ms" => tick_ms = args.next().context("--tick-ms needs a number")?.parse()?,
            other => bail!("unknown argument {other}; usage: raft_spike [--groups N] [--tick-ms MS]"),
        }
    }
    let before = resident_bytes();
    let started = Instant::now();
    let mut cluster = Cluster::new(groups)?;
    let built = started.elapsed();
    let after = resident_bytes();
    println!(
        "{groups} groups x {SERVERS} replicas built in {:.2} s; resident {:.1} MB, {:.0} bytes per replica",
        built.as_secs_f64(),
        after.saturating_sub(before) as f64 / 1e6,
        after.saturating_sub(before) as f64 / (groups * SERVERS) as f64
    );

    // Leaders: every group campaigns on server (group % 3), so leaders are balanced.
    let started = Instant::now();
    for group in 0..groups {
        cluster.replicas[group % SERVERS][group].campaign()?;
    }
    cluster.settle(0..groups);
    let elected = (0..groups).filter(|&g| cluster.leader(g).is_some()).count();
    println!("{elected} of {groups} leaders elected in {:.2} s", started.elapsed().as_secs_f64());
    let after_election = resident_bytes();
    println!(
        "resident after election {:.1} MB ({:.0} bytes per replica)",
        after_election.saturating_sub(before) as f64 / 1e6,
        after_election.saturating_sub(before) as f64 / (groups * SERVERS) as f64
    );

    // Every group ticking (no quiescence): CPU per tick round of all replicas of all servers.
    let rounds = 50;
    let cpu = cpu_seconds();
    for _ in 0..rounds {
        cluster.tick(0..groups);
    }
    let per_round = (cpu_seconds() - cpu) / f64::from(rounds);
    println!(
        "ticking all {} replicas: {:.2} ms CPU per round; at one tick per {tick_ms} ms that is {:.1} % of a core per server",
        groups * SERVERS,
        per_round * 1e3,
        per_round / SERVERS as f64 / (tick_ms as f64 / 1e3) * 100.0
    );

    // One busy group: batches of 64 x 1 KiB proposed at its leader, settled after each batch.
    let group = 0;
    let leader = cluster.leader(group).context("group 0 has a leader")?;
    let payload = vec![7u8; 1024];
    cluster.committed = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..64 {
            cluster.replicas[leader][group].propose(vec![], payload.clone())?;
        }
        cluster.settle(group..group + 1);
    }
    let secs = started.elapsed().as_secs_f64();
    let entries = cluster.committed as f64 / SERVERS as f64;
    println!(
        "one busy group: {:.0} entries/s committed and applied on all replicas, {:.1} MB/s of 1 KiB entries (CPU only, no disk)",
        entries / secs,
        entries * 1024.0 / secs / 1e6
    );

    // Election time: stop the leader's server, tick the rest until a new leader exists.
    let mut ticks_needed = Vec::new();
    for trial in 0..30 {
        let group = 1 + trial;
        let Some(old) = cluster.leader(group) else { continue };
        cluster.stopped[old] = true;
        let mut ticks = 0u64;
        while cluster.leader(group).is_none() && ticks < 1000 {
            cluster.tick(group..group + 1);
            ticks += 1;
        }
        ticks_needed.push(ticks);
        cluster.stopped[old] = false;
        // Let the old leader rejoin as a follower before the next trial.
        for _ in 0..30 {
            cluster.tick(group..group + 1);
        }
    }
    ticks_needed.sort_unstable();
    if let (Some(first), Some(last)) = (ticks_needed.first(), ticks_needed.last()) {
        let median = ticks_needed[ticks_needed.len() / 2];
        println!(
            "election after the leader stops: ticks min {first}, p50 {median}, max {last}; at {tick_ms} ms a tick: p50 {:.1} s, max {:.1} s",
            median as f64 * tick_ms as f64 / 1e3,
            *last as f64 * tick_ms as f64 / 1e3
        );
    }
    Ok(())
}

/// CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12 (clock ticks of 10 ms).
    (ticks(11) + ticks(12)) / 100.0
}
