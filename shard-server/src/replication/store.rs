//! The store loop: one thread per server drives every hosted replica (as TiKV's raftstore
//! drives its regions with the same library). Each round:
//!
//! 1. take everything queued: proposals, peers' messages, hosting orders;
//! 2. step them in; on a tick, tick every group;
//! 3. for each group with a ready state, send the leader's messages at once and stage new
//!    entries (one journal [`Group`] for all groups) and hard states (one meta batch);
//! 4. one journal commit (one fsync per retention class) and one meta write (synced only when
//!    a term or vote changed);
//! 5. only then send the messages that had to wait for persistence (votes, append answers),
//!    publish committed entries and answer their puts.
//!
//! Messages for one peer server are batched across all groups into one send per round.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft::prelude::{Message, MessageType};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{mpsc, oneshot};

use super::group::{Replica, SealedAt};
use super::{logging, GroupId, ReplicationError, Sender};
use crate::append::{Appended, Entry as PutEntry};
use crate::clock::Clock;
use crate::journal::{Group, Journal, ShardKey};
use crate::raft_log::JournalRaftLog;
use crate::store::{Durability, KvEngine, WriteBatch};
use crate::stream::Stream;

/// One Raft tick.
pub const TICK: Duration = Duration::from_millis(100);
/// Commands waiting for the loop before senders feel backpressure.
const QUEUE_DEPTH: usize = 4096;
/// Most commands taken into one round.
const MAX_ROUND_COMMANDS: usize = 4096;
/// A peer not heard from for this long (its pings come every tick) is taken for gone: the
/// sleeping groups it leads wake, and their followers elect a new leader.
pub const SILENT_AFTER: Duration = Duration::from_millis(1000);

/// A Raft message of one group.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The group.
    pub group: GroupId,
    /// The message (its `to` and `from` are Raft ids of servers).
    pub message: Message,
}

/// Carries messages to other servers.
pub trait Transport: Send + Sync + 'static {
    /// Sends `envelopes` to the server with Raft id `to`. Never blocks: what a peer cannot
    /// take now may be dropped (Raft sends it again).
    fn send(&self, to: u64, envelopes: Vec<Envelope>);
}

/// An order to host a replica of a group, or to carry a new replica set to a hosted one.
#[derive(Debug, Clone)]
pub struct Hosting {
    /// The group.
    pub id: GroupId,
    /// The stream the shard belongs to, as this server holds it.
    pub stream: Arc<Stream>,
    /// Raft ids of the replica set the layout names: the group's leader changes its
    /// configuration until its voters are these.
    pub replicas: Vec<u64>,
    /// Raft ids of the replicas the group was founded with (its first configuration).
    pub founders: Vec<u64>,
    /// Whether this replica stands for election at once when it founds the group (one founder
    /// does, so a leader exists without waiting for an election timeout).
    pub campaign_if_new: bool,
}

/// A replica's state, for routing and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub id: GroupId,
    /// True when this replica leads.
    pub leader_here: bool,
    /// The leader this replica knows of.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Voters.
    pub voters: Vec<u64>,
    /// Learners (replicas being caught up before they vote).
    pub learners: Vec<u64>,
    /// False while the group sleeps (no ticks, no heartbeats).
    pub awake: bool,
}

enum Command {
    Host(Hosting, oneshot::Sender<Result<(), ReplicationError>>),
    Propose {
        group: GroupId,
        entries: Vec<PutEntry>,
        epoch: u64,
        reply: oneshot::Sender<Result<Vec<Appended>, ReplicationError>>,
    },
    Seal {
        group: GroupId,
        epoch: u64,
        reply: oneshot::Sender<Result<SealedAt, ReplicationError>>,
    },
    Deliver(Sender, Vec<Envelope>),
    Unhost(String),
    Status(oneshot::Sender<Vec<GroupStatus>>),
    HandOver(oneshot::Sender<(usize, usize)>),
    Stop,
}

/// Handle to a server's store loop.
pub struct Replicator {
    me: u64,
    queue: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    leaders: Arc<RwLock<HashMap<GroupId, u64>>>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator").field("me", &self.me).finish()
    }
}

impl Replicator {
    /// Starts the store loop of the server with Raft id `me`.
    pub fn start(
        me: u64,
        journal: Arc<Journal>,
        engine: Arc<dyn KvEngine>,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
    ) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let leaders = Arc::new(RwLock::new(HashMap::new()));
        let store = StoreLoop {
            me,
            journal,
            engine,
            clock,
            transport,
            replicas: FxHashMap::default(),
            awake: FxHashSet::default(),
            peers: FxHashSet::default(),
            heard: FxHashMap::default(),
            silent: FxHashSet::default(),
            started: Instant::now(),
            known_leaders: leaders.clone(),
            logger: logging::logger(),
        };
        let thread = std::thread::Builder::new().name("shardline-raft".into()).spawn(move || {
            // raft-rs stops with a panic on a log that contradicts what it committed. Without the
            // loop this server would keep routing to replicas that no longer answer: it exits, to
            // be restarted (its durable state is intact).
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.run(receiver))).is_err() {
                tracing::error!("the replication loop panicked; the server exits");
                std::process::exit(70);
            }
        })?;
        Ok(Self { me, queue, thread: Mutex::new(Some(thread)), leaders })
    }

    /// This server's Raft id.
    pub fn me(&self) -> u64 {
        self.me
    }

    async fn send(&self, command: Command) -> Result<(), ReplicationError> {
        self.queue.send(command).await.map_err(|_| ReplicationError::Stopped)
    }

    /// Hosts a replica of `hosting.id` (a no-op when it is hosted already).
    pub async fn host(&self, hosting: Hosting) -> Result<(), ReplicationError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Host(hosting, reply)).await?;
        answer.await.map_err(|_| ReplicationError::Stopped)?
    }

    /// Appends `entries` to shard `group` as one batch, returning once a majority of its
    /// replicas has it durable. Only the leader's replica takes them, and only while the shard
    /// is not sealed at layout `epoch` (the epoch the put was routed under).
    pub async fn propose(
        &self,
        group: GroupId,
        epoch: u64,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<Appended>, ReplicationError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Propose { group, entries, epoch, reply }).await?;
        answer.await.map_err(|_| ReplicationError::Stopped)?
    }

    /// Seals shard `group` at layout `epoch` through its leader here, returning its last
    /// record once the seal is committed (see [`super::group::Replica::seal`]).
    pub async fn seal(&self, group: GroupId, epoch: u64) -> Result<SealedAt, ReplicationError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Seal { group, epoch, reply }).await?;
        answer.await.map_err(|_| ReplicationError::Stopped)?
    }

    /// Hands messages from server `from` to their groups (none: its ping).
    pub async fn deliver(&self, from: Sender, envelopes: Vec<Envelope>) -> Result<(), ReplicationError> {
        self.send(Command::Deliver(from, envelopes)).await
    }

    /// Hands messages from a peer to their groups without waiting: false when the loop's queue
    /// is full or the loop has stopped (the messages are dropped; Raft sends again).
    pub fn try_deliver(&self, from: Sender, envelopes: Vec<Envelope>) -> bool {
        self.queue.try_send(Command::Deliver(from, envelopes)).is_ok()
    }

    /// Stops hosting every group of stream `stream` (deleted or released); puts waiting on
    /// them are answered with a retryable error. Its frames stay in the journal until the
    /// stream's data is erased.
    pub async fn unhost(&self, stream: &str) -> Result<(), ReplicationError> {
        self.send(Command::Unhost(stream.to_owned())).await
    }

    /// The state of every hosted replica.
    pub async fn status(&self) -> Result<Vec<GroupStatus>, ReplicationError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Status(reply)).await?;
        answer.await.map_err(|_| ReplicationError::Stopped)
    }

    /// Hands the leadership of every group led here to another voter (before a planned stop,
    /// so the groups need not wait an election timeout) and waits for the puts this server
    /// proposed to be answered, at most `within` in all; returns how many groups this server
    /// still leads.
    pub async fn hand_over(&self, within: Duration) -> Result<usize, ReplicationError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut led = 0;
        let steps = async {
            loop {
                let (reply, answer) = oneshot::channel();
                self.send(Command::HandOver(reply)).await?;
                let (leading, waiting) = answer.await.map_err(|_| ReplicationError::Stopped)?;
                led = leading;
                if leading == 0 && waiting == 0 {
                    return Ok::<_, ReplicationError>(());
                }
                tokio::time::sleep(TICK).await;
            }
        };
        match tokio::time::timeout_at(deadline, steps).await {
            Ok(done) => done.map(|()| 0),
            Err(_) => Ok(led),
        }
    }

    /// The leader of `group` as this server last knew it.
    pub fn leader_of(&self, group: &GroupId) -> Option<u64> {
        self.leaders.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(group).copied()
    }

    /// Stops the loop: every waiting put is answered with a retryable error.
    pub async fn shutdown(&self) {
        let _ = self.queue.send(Command::Stop).await;
        let thread = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

struct Hosted {
    replica: Replica,
    /// The leader last published for routing.
    published_leader: Option<u64>,
    /// Id of the stream (on this server) the replica writes to.
    stream_id: u64,
}

struct StoreLoop {
    me: u64,
    journal: Arc<Journal>,
    engine: Arc<dyn KvEngine>,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    replicas: FxHashMap<GroupId, Hosted>,
    /// Groups that tick (the others sleep: see [`StoreLoop::may_sleep`]).
    awake: FxHashSet<GroupId>,
    /// Servers this one shares a group with.
    peers: FxHashSet<u64>,
    /// When each peer was last heard from (any batch, its pings included) and its incarnation.
    heard: FxHashMap<u64, (Instant, u64)>,
    /// Peers silent at the last tick (their groups were woken when they turned silent).
    silent: FxHashSet<u64>,
    /// When the loop started: a peer not heard from since is silent after [`SILENT_AFTER`].
    started: Instant,
    known_leaders: Arc<RwLock<HashMap<GroupId, u64>>>,
    logger: slog::Logger,
}

impl StoreLoop {
    fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(cause = %err, "the replication loop could not start");
                return;
            }
        };
        runtime.block_on(async move {
            let mut next_tick = tokio::time::Instant::now() + TICK;
            loop {
                let mut touched = FxHashSet::default();
                let mut stop = false;
                match tokio::time::timeout_at(next_tick, receiver.recv()).await {
                    Ok(Some(command)) => stop |= self.handle(command, &mut touched),
                    Ok(None) => stop = true,
                    Err(_) => {}
                }
                let mut taken = 1;
                while !stop && taken < MAX_ROUND_COMMANDS {
                    let Ok(command) = receiver.try_recv() else { break };
                    stop |= self.handle(command, &mut touched);
                    taken += 1;
                }
                // Whatever a command touched is awake: it ticks until it may sleep again.
                for id in &touched {
                    if let Some(hosted) = self.replicas.get_mut(id) {
                        if self.awake.insert(id.clone()) {
                            hosted.replica.wake();
                        }
                    }
                }
                let ticked = tokio::time::Instant::now() >= next_tick;
                if ticked {
                    next_tick = tokio::time::Instant::now() + TICK;
                    let now = Instant::now();
                    self.wake_groups_of_silent_peers(now);
                    self.awake.retain(|id| self.replicas.contains_key(id));
                    for id in &self.awake {
                        if let Some(hosted) = self.replicas.get_mut(id) {
                            hosted.replica.tick();
                            hosted.replica.expire_waiting(now);
                            hosted.replica.reconfigure();
                            touched.insert(id.clone());
                        }
                    }
                }
                if let Err(err) = self.round(&touched, ticked) {
                    tracing::error!(cause = %err, "a replicated write failed; this server stops replicating");
                    stop = true;
                }
                if stop {
                    for hosted in self.replicas.values_mut() {
                        hosted.replica.fail_waiting(|| ReplicationError::Stopped);
                    }
                    // Dropping the receiver fails every command still queued.
                    return;
                }
            }
        });
    }

    /// Takes one command in; true for [`Command::Stop`].
    fn handle(&mut self, command: Command, touched: &mut FxHashSet<GroupId>) -> bool {
        match command {
            Command::Host(hosting, reply) => {
                let id = hosting.id.clone();
                let _ = reply.send(self.host(hosting));
                touched.insert(id);
            }
            Command::Propose { group, entries, epoch, reply } => match self.replicas.get_mut(&group) {
                Some(hosted) => {
                    hosted.replica.propose(entries, epoch, self.clock.now_ms(), reply);
                    touched.insert(group);
                }
                None => {
                    let _ = reply.send(Err(ReplicationError::NotHosted(group)));
                }
            },
            Command::Seal { group, epoch, reply } => match self.replicas.get_mut(&group) {
                Some(hosted) => {
                    hosted.replica.seal(epoch, reply);
                    touched.insert(group);
                }
                None => {
                    let _ = reply.send(Err(ReplicationError::NotHosted(group)));
                }
            },
            Command::Deliver(from, envelopes) => {
                let before = self.heard.insert(from.id, (Instant::now(), from.incarnation));
                if before.is_some_and(|(_, incarnation)| incarnation != from.incarnation) {
                    // The peer restarted: its replicas lead nothing now.
                    self.wake_groups_led_by(&[from.id].into_iter().collect());
                }
                for envelope in envelopes {
                    // Only messages for this server, from the server that sent the batch, a
                    // voter of the group, are taken.
                    if envelope.message.to != self.me || envelope.message.from != from.id {
                        continue;
                    }
                    if let Some(hosted) = self.replicas.get_mut(&envelope.group) {
                        if hosted.replica.accepts_from(envelope.message.from) {
                            // The answer to a sleeping leader's last heartbeat leaves it asleep
                            // unless it has something to do about it (a follower behind).
                            let answer = envelope.message.get_msg_type() == MessageType::MsgHeartbeatResponse;
                            hosted.replica.step(envelope.message);
                            if !answer || self.awake.contains(&envelope.group) || hosted.replica.has_ready() {
                                touched.insert(envelope.group);
                            }
                        }
                    }
                }
            }
            Command::Unhost(stream) => {
                self.replicas.retain(|id, hosted| {
                    let keep = id.stream != stream;
                    if !keep {
                        hosted.replica.fail_waiting(|| ReplicationError::NotHosted(id.clone()));
                    }
                    keep
                });
                self.known_leaders.write().unwrap_or_else(|p| p.into_inner()).retain(|id, _| id.stream != stream);
            }
            Command::Status(reply) => {
                let status = self
                    .replicas
                    .values()
                    .map(|h| GroupStatus {
                        id: h.replica.id.clone(),
                        leader_here: h.replica.is_leader(),
                        leader: h.replica.leader(),
                        term: h.replica.term(),
                        voters: h.replica.voters(),
                        learners: h.replica.learners(),
                        awake: self.awake.contains(&h.replica.id),
                    })
                    .collect();
                let _ = reply.send(status);
            }
            Command::HandOver(reply) => {
                let (mut led, mut waiting) = (0, 0);
                for (id, hosted) in &mut self.replicas {
                    if hosted.replica.is_leader() {
                        led += 1;
                        if hosted.replica.hand_over() {
                            touched.insert(id.clone());
                        }
                    }
                    waiting += hosted.replica.waiting();
                }
                let _ = reply.send((led, waiting));
            }
            Command::Stop => return true,
        }
        false
    }

    fn host(&mut self, hosting: Hosting) -> Result<(), ReplicationError> {
        let member = hosting.replicas.contains(&self.me);
        self.peers.extend(hosting.replicas.iter().chain(&hosting.founders).copied().filter(|&id| id != self.me));
        match self.replicas.get_mut(&hosting.id) {
            Some(hosted) if hosted.stream_id == hosting.stream.id => {
                hosted.replica.set_target(&hosting.replicas);
                return Ok(());
            }
            // A stream of the same name created again: the old group goes.
            Some(hosted) => hosted.replica.fail_waiting(|| ReplicationError::NotHosted(hosting.id.clone())),
            None => {}
        }
        let shard = hosting.id.shard;
        let key = ShardKey { stream: hosting.stream.id, shard };
        let log = JournalRaftLog::open(
            self.journal.clone(),
            self.engine.clone(),
            self.clock.clone(),
            key,
            hosting.stream.retention_class(),
        )?;
        if !member && !super::group::stored_member(&log, self.me)? {
            // The layout names other servers, and this one is not in the group's stored
            // configuration either (a server restarted during its own removal still is, and
            // stays until the change completes).
            self.replicas.remove(&hosting.id);
            return Ok(());
        }
        let shard_log = hosting.stream.log(shard).ok_or_else(|| ReplicationError::NotHosted(hosting.id.clone()))?;
        let (mut replica, founded) = Replica::open(
            hosting.id.clone(),
            self.me,
            &hosting.founders,
            &hosting.replicas,
            Arc::new(log),
            shard_log,
            &self.logger,
        )?;
        if hosting.campaign_if_new && founded {
            replica.campaign()?;
        }

        self.replicas.insert(hosting.id, Hosted { replica, published_leader: None, stream_id: hosting.stream.id });
        Ok(())
    }

    /// True when `peer` was heard from within [`SILENT_AFTER`].
    fn is_heard(&self, peer: u64, now: Instant) -> bool {
        let last = self.heard.get(&peer).map_or(self.started, |(at, _)| *at);
        now.duration_since(last) < SILENT_AFTER
    }

    /// Wakes the sleeping groups led by a peer that has just gone silent (dead, stopped, cut
    /// off), so their followers tick and elect a new leader. Once per silence, not every tick.
    fn wake_groups_of_silent_peers(&mut self, now: Instant) {
        let silent: FxHashSet<u64> = self.peers.iter().copied().filter(|&p| !self.is_heard(p, now)).collect();
        let newly: FxHashSet<u64> = silent.difference(&self.silent).copied().collect();
        self.silent = silent;
        if !newly.is_empty() {
            self.wake_groups_led_by(&newly);
        }
    }

    /// Wakes every sleeping group whose leader is one of `leaders`.
    fn wake_groups_led_by(&mut self, leaders: &FxHashSet<u64>) {
        for (id, hosted) in &mut self.replicas {
            if hosted.replica.leader().is_some_and(|leader| leaders.contains(&leader)) && !self.awake.contains(id) {
                hosted.replica.wake();
                self.awake.insert(id.clone());
            }
        }
    }

    /// Persists and sends what the touched groups have ready (see the module docs); on a tick
    /// round, also pings every peer it sent nothing to and lets idle groups sleep.
    fn round(&mut self, touched: &FxHashSet<GroupId>, ticked: bool) -> Result<(), ReplicationError> {
        let mut journal = Group::new();
        let mut meta = WriteBatch::new();
        let mut sync_meta = false;
        let mut outbox: FxHashMap<u64, Vec<Envelope>> = FxHashMap::default();
        let mut persisting = Vec::new();
        for id in touched {
            let Some(hosted) = self.replicas.get_mut(id) else { continue };
            let mut send = |messages: Vec<Message>| route(&mut outbox, id, messages);
            if let Some(ready) = hosted.replica.stage(&mut journal, &mut meta, &mut sync_meta, &mut send)? {
                persisting.push((id, ready));
            }
        }
        if !journal.is_empty() {
            self.journal.commit(journal, self.clock.now_ms()).map_err(crate::raft_log::RaftLogError::from)?;
        }
        if !meta.is_empty() {
            let durability = if sync_meta { Durability::Sync } else { Durability::Buffered };
            self.engine.write(meta, durability).map_err(crate::raft_log::RaftLogError::from)?;
        }
        for (id, ready) in persisting {
            let Some(hosted) = self.replicas.get_mut(id) else { continue };
            let mut send = |messages: Vec<Message>| route(&mut outbox, id, messages);
            hosted.replica.persisted(ready, &mut send);
        }
        if ticked {
            for &peer in &self.peers {
                outbox.entry(peer).or_default();
            }
        }
        for (to, envelopes) in outbox {
            self.transport.send(to, envelopes);
        }
        self.publish_leaders(touched);
        self.drop_departed(touched);
        if ticked {
            let now = Instant::now();
            let asleep: Vec<GroupId> = self
                .awake
                .iter()
                .filter(|id| {
                    self.replicas.get(*id).is_some_and(|h| h.replica.may_sleep(&|leader| self.is_heard(leader, now)))
                })
                .cloned()
                .collect();
            for id in asleep {
                self.awake.remove(&id);
            }
        }
        Ok(())
    }

    /// Stops hosting the touched replicas that have left their group (a configuration that
    /// excludes them is applied and the layout no longer names them). Their frames stay in the
    /// journal until the stream's data is erased.
    fn drop_departed(&mut self, touched: &FxHashSet<GroupId>) {
        for id in touched {
            if self.replicas.get(id).is_some_and(|hosted| hosted.replica.departed()) {
                tracing::info!(group = %id, "replica left its group");
                if let Some(mut hosted) = self.replicas.remove(id) {
                    hosted.replica.fail_waiting(|| ReplicationError::NotHosted(id.clone()));
                }
                self.awake.remove(id);
                self.known_leaders.write().unwrap_or_else(|p| p.into_inner()).remove(id);
            }
        }
    }

    /// Publishes, for routing, the leaders of touched groups that changed.
    fn publish_leaders(&mut self, touched: &FxHashSet<GroupId>) {
        let mut changed = Vec::new();
        for id in touched {
            let Some(hosted) = self.replicas.get_mut(id) else { continue };
            let leader = hosted.replica.leader();
            if leader != hosted.published_leader {
                hosted.published_leader = leader;
                changed.push((id.clone(), leader));
            }
        }
        if changed.is_empty() {
            return;
        }
        let mut leaders = self.known_leaders.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (id, leader) in changed {
            match leader {
                Some(leader) => leaders.insert(id, leader),
                None => leaders.remove(&id),
            };
        }
    }
}

/// Queues `messages` of group `id` for their servers.
fn route(outbox: &mut FxHashMap<u64, Vec<Envelope>>, id: &GroupId, messages: Vec<Message>) {
    for message in messages {
        outbox.entry(message.to).or_default().push(Envelope { group: id.clone(), message });
    }
}
