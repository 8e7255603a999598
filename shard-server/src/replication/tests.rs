//! Three servers in one process, each with its own journal, meta engine and store loop, their
//! messages carried by an in-memory transport that can cut a server off. The journals are the
//! real ones (on the in-memory file system), so what is checked is what a server persists.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::*;
use crate::append::Entry as PutEntry;
use crate::clock::SystemClock;
use crate::journal::files::MemoryFiles;
use crate::journal::{Journal, JournalOptions};
use crate::shard::{self, ReadLimits};
use crate::store::{KvEngine, MemoryEngine};
use crate::stream::{Catalog, NewStream, Stream, StreamMode, DEFAULT_MAX_RECORD_SIZE_KIB};

/// Messages between the test's servers; a cut server neither sends nor receives.
#[derive(Default)]
struct Mesh {
    servers: RwLock<HashMap<u64, Arc<Replicator>>>,
    cut: Mutex<HashSet<u64>>,
}

impl Mesh {
    fn is_cut(&self, id: u64) -> bool {
        self.cut.lock().expect("cut").contains(&id)
    }
}

/// The transport of one server of the mesh.
struct MeshTransport {
    mesh: Arc<Mesh>,
    from: u64,
}

impl Transport for MeshTransport {
    fn send(&self, to: u64, envelopes: Vec<Envelope>) {
        if self.mesh.is_cut(self.from) || self.mesh.is_cut(to) {
            return;
        }
        if let Some(server) = self.mesh.servers.read().expect("servers").get(&to) {
            server.try_deliver(Sender { id: self.from, incarnation: 1 }, envelopes);
        }
    }
}

struct Server {
    id: u64,
    files: Arc<MemoryFiles>,
    engine: Arc<dyn KvEngine>,
    stream: Arc<Stream>,
    journal: Arc<Journal>,
    replicator: Arc<Replicator>,
}

const STREAM: &str = "orders";

fn group() -> GroupId {
    GroupId { stream: STREAM.into(), shard: 0 }
}

fn ids() -> Vec<u64> {
    ["server-a", "server-b", "server-c"].iter().map(|name| raft_id(name)).collect()
}

/// Opens (or reopens, on the same files and engine) server `id` and hosts the group founded
/// by [`ids`].
async fn open(mesh: &Arc<Mesh>, id: u64, files: Arc<MemoryFiles>, engine: Arc<dyn KvEngine>, campaign: bool) -> Server {
    open_with(mesh, id, files, engine, campaign, ids()).await
}

/// Opens server `id` and hosts the group founded by [`ids`] whose layout names `replicas`.
async fn open_with(
    mesh: &Arc<Mesh>,
    id: u64,
    files: Arc<MemoryFiles>,
    engine: Arc<dyn KvEngine>,
    campaign: bool,
    replicas: Vec<u64>,
) -> Server {
    let journal =
        Arc::new(Journal::open(files.clone(), Path::new("/journal"), JournalOptions::default()).expect("journal"));
    let catalog = Catalog::load(engine.clone(), journal.clone(), "123456789012".into(), "us-east-1".into(), 100)
        .expect("catalog");
    let stream = match catalog.get(STREAM) {
        Ok(stream) => stream,
        Err(_) => catalog
            .create(
                NewStream {
                    name: STREAM.into(),
                    shard_count: 1,
                    mode: StreamMode::Provisioned,
                    max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
                    tags: Default::default(),
                },
                0,
            )
            .expect("create"),
    };
    let transport = Arc::new(MeshTransport { mesh: mesh.clone(), from: id });
    let replicator = Arc::new(
        Replicator::start(id, journal.clone(), engine.clone(), Arc::new(SystemClock), transport).expect("start"),
    );
    mesh.servers.write().expect("servers").insert(id, replicator.clone());
    replicator.host(hosting(&stream, replicas, campaign)).await.expect("host");
    Server { id, files, engine, stream, journal, replicator }
}

fn hosting(stream: &Arc<Stream>, replicas: Vec<u64>, campaign: bool) -> Hosting {
    Hosting { id: group(), stream: stream.clone(), replicas, founders: ids(), campaign_if_new: campaign }
}

async fn cluster(mesh: &Arc<Mesh>) -> Vec<Server> {
    let mut servers = Vec::new();
    for (n, id) in ids().into_iter().enumerate() {
        let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
        servers.push(open(mesh, id, Arc::new(MemoryFiles::new()), engine, n == 0).await);
    }
    servers
}

/// The server whose replica leads, once one does (at most 10 s).
async fn leader(servers: &[Server], mesh: &Mesh) -> usize {
    for _ in 0..200 {
        for (n, server) in servers.iter().enumerate() {
            if mesh.is_cut(server.id) {
                continue;
            }
            let status = server.replicator.status().await.unwrap_or_default();
            if status.iter().any(|s| s.leader_here) {
                return n;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader within 10 s");
}

fn records(tag: &str, n: usize) -> Vec<PutEntry> {
    (0..n)
        .map(|i| PutEntry {
            shard: 0,
            hash: 0,
            partition_key: format!("{tag}-{i}"),
            data: format!("{tag}:{i}").into_bytes(),
        })
        .collect()
}

/// Every record a server publishes for the shard, as `(counter, data)`.
fn published(server: &Server) -> Vec<(u64, String)> {
    let log = server.stream.log(0).expect("log");
    let last = log.last_counter.load(Ordering::Acquire);
    let limits = ReadLimits { max_records: 100_000, max_bytes: usize::MAX, expired_before_ms: 0 };
    let slice = shard::read(&server.journal, &log.index, 1, last, limits).expect("read");
    slice.records.into_iter().map(|r| (r.counter, String::from_utf8(r.data).expect("utf8"))).collect()
}

/// Waits until every listed server publishes `count` records.
async fn converge(servers: &[&Server], count: u64) {
    for _ in 0..200 {
        if servers.iter().all(|s| s.stream.log(0).expect("log").last_counter.load(Ordering::Acquire) == count) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen: Vec<u64> =
        servers.iter().map(|s| s.stream.log(0).expect("log").last_counter.load(Ordering::Acquire)).collect();
    panic!("servers publish {seen:?}, not {count} each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_answered_once_a_majority_has_it_and_every_replica_reads_the_same_records() {
    let mesh = Arc::new(Mesh::default());
    let servers = cluster(&mesh).await;
    let lead = leader(&servers, &mesh).await;
    let mut counters = Vec::new();
    for round in 0..20 {
        let appended =
            servers[lead].replicator.propose(group(), 1, records(&format!("r{round}"), 10)).await.expect("put");
        counters.extend(appended.iter().map(|a| a.counter));
    }
    assert_eq!(counters, (1..=200).collect::<Vec<_>>(), "counters are consecutive from 1");
    converge(&servers.iter().collect::<Vec<_>>(), 200).await;
    let expected = published(&servers[lead]);
    assert_eq!(expected.len(), 200);
    assert_eq!(expected[0], (1, "r0:0".into()));
    for server in &servers {
        assert_eq!(published(server), expected, "server {} holds the same records", server.id);
    }
    // A follower refuses puts and names the leader.
    let follower = (lead + 1) % 3;
    let refused = servers[follower].replicator.propose(group(), 1, records("x", 1)).await;
    let message = refused.expect_err("a follower takes no puts").to_string();
    assert!(message.contains("does not lead"), "{message}");
    assert_eq!(servers[follower].replicator.leader_of(&group()), Some(servers[lead].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_continues_the_counters_and_a_cut_off_leader_never_acknowledges() {
    let mesh = Arc::new(Mesh::default());
    let servers = cluster(&mesh).await;
    let old = leader(&servers, &mesh).await;
    for round in 0..5 {
        servers[old].replicator.propose(group(), 1, records(&format!("a{round}"), 4)).await.expect("put");
    }
    converge(&servers.iter().collect::<Vec<_>>(), 20).await;

    // Cut the leader off: what it takes now is never committed.
    mesh.cut.lock().expect("cut").insert(servers[old].id);
    let isolated = {
        let replicator = servers[old].replicator.clone();
        tokio::spawn(async move { replicator.propose(group(), 1, records("lost", 3)).await })
    };
    let others: Vec<usize> = (0..3).filter(|&n| n != old).collect();
    let new = leader(&servers, &mesh).await;
    assert_ne!(new, old, "a majority elects a new leader");
    let appended = servers[new].replicator.propose(group(), 1, records("b", 5)).await.expect("put after the change");
    assert_eq!(appended.first().map(|a| a.counter), Some(21), "counters continue after the last committed record");
    converge(&others.iter().map(|&n| &servers[n]).collect::<Vec<_>>(), 25).await;
    assert!(!isolated.is_finished(), "a leader without a majority does not answer");
    assert_eq!(servers[old].stream.log(0).expect("log").last_counter.load(Ordering::Acquire), 20);

    // Heal: the old leader learns the new entries, its own put is refused, never acknowledged.
    mesh.cut.lock().expect("cut").clear();
    let answer = tokio::time::timeout(Duration::from_secs(10), isolated).await.expect("answered").expect("task");
    let message = answer.expect_err("the cut-off put is not acknowledged").to_string();
    assert!(message.contains("not committed"), "{message}");
    converge(&servers.iter().collect::<Vec<_>>(), 25).await;
    let expected = published(&servers[new]);
    assert!(expected.iter().all(|(_, data)| !data.starts_with("lost")), "the lost records are nowhere");
    for server in &servers {
        assert_eq!(published(server), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_publishes_only_committed_records_and_catches_up() {
    let mesh = Arc::new(Mesh::default());
    let mut servers = cluster(&mesh).await;
    let lead = leader(&servers, &mesh).await;
    servers[lead].replicator.propose(group(), 1, records("a", 10)).await.expect("put");
    converge(&servers.iter().collect::<Vec<_>>(), 10).await;

    // Stop a follower (its store loop and its place in the mesh), write more, start it again
    // on the same files: it publishes what it had committed, then catches up.
    let follower = (lead + 1) % 3;
    let stopped = servers.remove(follower);
    stopped.replicator.shutdown().await;
    mesh.servers.write().expect("servers").remove(&stopped.id);
    let leading = leader(&servers, &mesh).await;
    servers[leading].replicator.propose(group(), 1, records("b", 10)).await.expect("put with one follower down");
    let (id, files, engine) = (stopped.id, stopped.files.clone(), stopped.engine.clone());
    drop(stopped);
    let restarted = open(&mesh, id, files, engine, false).await;
    assert!(
        restarted.stream.log(0).expect("log").last_counter.load(Ordering::Acquire) <= 10,
        "nothing it had not seen committed is published at start"
    );
    servers.push(restarted);
    converge(&servers.iter().collect::<Vec<_>>(), 20).await;
    let expected = published(&servers[0]);
    for server in &servers {
        assert_eq!(published(server), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_group_sleeps_and_wakes_when_its_leaders_server_goes_silent() {
    let mesh = Arc::new(Mesh::default());
    let servers = cluster(&mesh).await;
    let old = leader(&servers, &mesh).await;
    servers[old].replicator.propose(group(), 1, records("a", 5)).await.expect("put");
    converge(&servers.iter().collect::<Vec<_>>(), 5).await;

    // Idle: leader and followers stop ticking (the servers still ping each other).
    let mut asleep = false;
    for _ in 0..100 {
        let mut awake = 0;
        for server in &servers {
            awake += server.replicator.status().await.expect("status").iter().filter(|s| s.awake).count();
        }
        if awake == 0 {
            asleep = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(asleep, "every replica of an idle group sleeps within 10 s");

    // A put wakes the sleeping group and commits.
    let appended = servers[old].replicator.propose(group(), 1, records("b", 1)).await.expect("put after sleeping");
    assert_eq!(appended[0].counter, 6);

    // The leader's server goes silent: its followers wake, elect, and take puts.
    mesh.cut.lock().expect("cut").insert(servers[old].id);
    let new = leader(&servers, &mesh).await;
    assert_ne!(new, old);
    let appended = servers[new].replicator.propose(group(), 1, records("c", 1)).await.expect("put on the new leader");
    assert_eq!(appended[0].counter, 7);
}

/// The voters and learners `server`'s replica has applied.
async fn configuration(server: &Server) -> (Vec<u64>, Vec<u64>) {
    let status = server.replicator.status().await.expect("status");
    let mine = status.into_iter().find(|s| s.id == group()).expect("hosted");
    let mut voters = mine.voters;
    voters.sort_unstable();
    (voters, mine.learners)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_set_is_carried_out_by_a_learner_caught_up_promoted_and_the_dropped_replica_removed() {
    let mesh = Arc::new(Mesh::default());
    let mut servers = cluster(&mesh).await;
    let lead = leader(&servers, &mesh).await;
    servers[lead].replicator.propose(group(), 1, records("a", 30)).await.expect("put");
    converge(&servers.iter().collect::<Vec<_>>(), 30).await;

    // A follower's server is lost for good; the layout replaces it with a new, empty server.
    let lost = (lead + 1) % 3;
    mesh.cut.lock().expect("cut").insert(servers[lost].id);
    let new_id = raft_id("server-d");
    let mut target: Vec<u64> = servers.iter().map(|s| s.id).filter(|&id| id != servers[lost].id).collect();
    target.push(new_id);
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
    let joined = open_with(&mesh, new_id, Arc::new(MemoryFiles::new()), engine, false, target.clone()).await;
    assert!(joined.stream.log(0).expect("log").last_counter.load(Ordering::Acquire) == 0, "it starts empty");

    // Puts go on while the leader adds it as a learner, catches it up, promotes it and removes
    // the lost one (joint consensus); every put is acknowledged.
    let writer = {
        let replicator = servers[lead].replicator.clone();
        tokio::spawn(async move {
            for round in 0..20 {
                replicator.propose(group(), 1, records(&format!("b{round}"), 5)).await.expect("put during the change");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for server in servers.iter().filter(|s| s.id != servers[lost].id) {
        server.replicator.host(hosting(&server.stream, target.clone(), false)).await.expect("new replica set");
    }
    writer.await.expect("writer");
    let mut expected_voters = target.clone();
    expected_voters.sort_unstable();
    let mut configured = false;
    for _ in 0..200 {
        if configuration(&servers[lead]).await == (expected_voters.clone(), Vec::new())
            && configuration(&joined).await == (expected_voters.clone(), Vec::new())
        {
            configured = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(configured, "leader and new replica apply the new voters: {:?}", configuration(&servers[lead]).await);
    servers.remove(lost);
    servers.push(joined);
    converge(&servers.iter().collect::<Vec<_>>(), 130).await;
    let expected = published(&servers[0]);
    assert_eq!(expected.len(), 130);
    for server in &servers {
        assert_eq!(published(server), expected, "server {} holds the same records", server.id);
    }

    // The new replica votes: with the old leader cut off, it and the other survivor elect a
    // leader and commit.
    let old_leader = leader(&servers, &mesh).await;
    mesh.cut.lock().expect("cut").insert(servers[old_leader].id);
    let new = leader(&servers, &mesh).await;
    assert_ne!(new, old_leader);
    let appended =
        servers[new].replicator.propose(group(), 1, records("c", 1)).await.expect("put without the old leader");
    assert_eq!(appended[0].counter, 131);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_hands_over_its_leadership_before_a_planned_stop() {
    let mesh = Arc::new(Mesh::default());
    let servers = cluster(&mesh).await;
    let old = leader(&servers, &mesh).await;
    servers[old].replicator.propose(group(), 1, records("a", 10)).await.expect("put");
    // Without a handover, nothing would move the leadership: every server stays connected.
    let still_led = servers[old].replicator.hand_over(Duration::from_secs(5)).await.expect("hand over");
    assert_eq!(still_led, 0, "the leadership moved within 5 s");
    let new = leader(&servers, &mesh).await;
    assert_ne!(new, old);
    let appended = servers[new].replicator.propose(group(), 1, records("b", 1)).await.expect("put on the new leader");
    assert_eq!(appended[0].counter, 11, "counters continue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_shard_reports_its_last_record_and_takes_no_put_of_that_epoch() {
    let mesh = Arc::new(Mesh::default());
    let servers = cluster(&mesh).await;
    let lead = leader(&servers, &mesh).await;
    servers[lead].replicator.propose(group(), 1, records("a", 7)).await.expect("put");
    let follower = (lead + 1) % 3;
    let refused = servers[follower].replicator.seal(group(), 1).await;
    assert!(refused.expect_err("only the leader seals").to_string().contains("does not lead"));
    let (last, _) = servers[lead].replicator.seal(group(), 1).await.expect("seal");
    assert_eq!(last, 7, "the last record before the seal");
    let after = servers[lead].replicator.propose(group(), 1, records("b", 1)).await;
    assert!(after.expect_err("sealed at epoch 1").to_string().contains("being resharded"));
    // A leader elected after the seal refuses too: the seal is in its log.
    mesh.cut.lock().expect("cut").insert(servers[lead].id);
    let new = leader(&servers, &mesh).await;
    let after = servers[new].replicator.propose(group(), 1, records("c", 1)).await;
    assert!(after.expect_err("sealed on the new leader").to_string().contains("being resharded"));
    // A put of a later epoch (the stream unfrozen) goes on.
    let appended = servers[new].replicator.propose(group(), 2, records("d", 1)).await.expect("a later epoch");
    assert_eq!(appended[0].counter, 8);
}
