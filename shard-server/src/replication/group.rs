//! One replica of one shard's Raft group: its `RawNode`, the puts waiting for their entry to
//! commit, and the shard's published state (high watermark) it moves as entries commit.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::prelude::{Entry, EntryType, Message};
use raft::{Config, RawNode, StateRole};
use tokio::sync::oneshot;

use super::storage::{self, GroupStorage};
use super::{GroupId, ReplicationError};
use crate::append::{Appended, Entry as PutEntry};
use crate::journal::{frame, read_index, Group};
use crate::raft_log::{JournalRaftLog, RaftLog};
use crate::store::WriteBatch;
use crate::stream::ShardLog;

/// Ticks without a heartbeat before a follower stands for election (randomized up to twice
/// that by raft-rs).
pub const ELECTION_TICKS: usize = 8;
/// Ticks between a leader's heartbeats.
pub const HEARTBEAT_TICKS: usize = 2;
/// Ticks a leader goes without a proposal, everything committed and every follower matched,
/// before its group sleeps (no ticks, no heartbeats): followers have had the last commit
/// index in several heartbeats by then.
const LEADER_SLEEP_TICKS: u32 = 20;
/// Ticks a follower goes without a message before it sleeps too, while its leader's server is
/// heard from (fewer than the election timeout's ticks, so it never stands for election on the
/// way to sleep).
const FOLLOWER_SLEEP_TICKS: u32 = 3;
/// Most bytes of entries in one append message.
const MAX_MESSAGE_BYTES: u64 = 1 << 20;
/// Append messages in flight to one follower.
const MAX_INFLIGHT: usize = 256;
/// Bytes proposed and not yet committed before the leader refuses more (backpressure on a
/// group whose followers do not keep up).
const MAX_UNCOMMITTED_BYTES: u64 = 256 << 20;
/// How long a put waits for its entry to commit before it is answered with a retryable error
/// (a leader cut off from its followers steps down after an election timeout; this bounds the
/// wait of puts it took before it noticed).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A put waiting for its entry.
struct Waiting {
    index: u64,
    term: u64,
    since: Instant,
    results: Vec<Appended>,
    reply: oneshot::Sender<Result<Vec<Appended>, ReplicationError>>,
}

/// What a round leaves to do once the journal commit is durable.
pub struct Persisting {
    ready: raft::Ready,
}

/// One hosted replica.
pub struct Replica {
    pub(super) id: GroupId,
    node: RawNode<GroupStorage>,
    shard_log: Arc<ShardLog>,
    waiting: VecDeque<Waiting>,
    /// `(last counter, arrival)` of the newest batch proposed this round, not yet in the index.
    proposed: Option<(u64, u64)>,
    /// The commit index last staged for the meta family.
    stored_commit: u64,
    /// Term and vote last staged for the meta family.
    stored_vote: (u64, u64),
    /// A commit index to store with the next round's writes.
    commit_to_store: Option<u64>,
    /// Ticks since the last message from a peer.
    quiet_ticks: u32,
    /// Ticks this replica has led without a proposal.
    idle_leader_ticks: u32,
    /// Whether the last message came from the leader this replica follows (a follower woken by
    /// anyone else, a candidate's pre-vote say, stays awake until its leader is heard again).
    last_from_leader: bool,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("id", &self.id).field("role", &self.node.raft.state).finish()
    }
}

impl Replica {
    /// The replica `me` of group `id` over `log`, among `voters`. The shard's published high
    /// watermark is set back to its last committed record: entries past the stored commit
    /// index may yet be replaced by a leader.
    pub fn open(
        id: GroupId,
        me: u64,
        voters: Vec<u64>,
        log: Arc<JournalRaftLog>,
        shard_log: Arc<ShardLog>,
        logger: &slog::Logger,
    ) -> Result<Self, ReplicationError> {
        let hard_state = log.hard_state()?;
        let commit = hard_state.commit.min(log.last_index());
        publish_up_to(&log, &shard_log, commit);
        let config = Config {
            id: me,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied: commit,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: MAX_MESSAGE_BYTES,
            max_inflight_msgs: MAX_INFLIGHT,
            max_uncommitted_size: MAX_UNCOMMITTED_BYTES,
            ..Config::default()
        };
        let storage = GroupStorage::new(log, voters);
        let logger = logger.new(slog::o!("group" => id.to_string()));
        let node = RawNode::new(&config, storage, &logger)?;
        Ok(Self {
            id,
            node,
            shard_log,
            waiting: VecDeque::new(),
            proposed: None,
            stored_commit: hard_state.commit,
            stored_vote: (hard_state.term, hard_state.vote),
            commit_to_store: None,
            quiet_ticks: 0,
            idle_leader_ticks: 0,
            last_from_leader: false,
        })
    }

    /// True when Raft has something for the store loop to do (persist, send, apply).
    pub fn has_ready(&self) -> bool {
        self.node.has_ready()
    }

    /// True when `id` is a voter of the group.
    pub fn has_voter(&self, id: u64) -> bool {
        self.node.raft.prs().conf().voters().contains(id)
    }

    /// True when this replica leads its group.
    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// The leader this replica knows of.
    pub fn leader(&self) -> Option<u64> {
        Some(self.node.raft.leader_id).filter(|&id| id != raft::INVALID_ID)
    }

    /// Its current term.
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The voters of the group.
    pub fn voters(&self) -> Vec<u64> {
        self.node.raft.prs().conf().to_conf_state().voters
    }

    /// True when this replica has never voted nor logged anything (a group just created).
    pub fn is_blank(&self) -> bool {
        self.node.raft.term == 0 && self.node.raft.raft_log.last_index() == 0
    }

    /// Stands for election.
    pub fn campaign(&mut self) -> Result<(), ReplicationError> {
        Ok(self.node.campaign()?)
    }

    /// Advances the group's logical clock one tick.
    pub fn tick(&mut self) {
        self.node.tick();
        self.quiet_ticks = self.quiet_ticks.saturating_add(1);
        self.idle_leader_ticks = if self.is_leader() { self.idle_leader_ticks.saturating_add(1) } else { 0 };
    }

    /// True when the group may stop ticking: nothing waits, nothing is ready, and either this
    /// replica leads, has been idle [`LEADER_SLEEP_TICKS`], everything is committed and every
    /// follower has it all; or it follows a leader whose server `heard` says is up and has had
    /// no message for [`FOLLOWER_SLEEP_TICKS`]. A message for the group, a proposal, or its
    /// leader's server going silent wakes it again.
    pub fn may_sleep(&self, heard: &dyn Fn(u64) -> bool) -> bool {
        if !self.waiting.is_empty() || self.node.has_ready() {
            return false;
        }
        let raft = &self.node.raft;
        let last = raft.raft_log.last_index();
        match raft.state {
            // Every follower that is up has every entry and knows the commit index (a follower
            // that is down catches up when it returns: its campaign wakes the group), and no
            // leadership transfer is under way.
            StateRole::Leader => {
                let committed = raft.raft_log.committed;
                self.idle_leader_ticks >= LEADER_SLEEP_TICKS
                    && committed == last
                    && raft.lead_transferee.is_none()
                    && raft.prs().iter().all(|(&id, progress)| {
                        id == raft.id
                            || !heard(id)
                            || (progress.matched == last && progress.committed_index >= committed)
                    })
            }
            StateRole::Follower => {
                self.quiet_ticks >= FOLLOWER_SLEEP_TICKS && self.last_from_leader && self.leader().is_some_and(heard)
            }
            StateRole::Candidate | StateRole::PreCandidate => false,
        }
    }

    /// The group was asleep and wakes: a leader heartbeats at once and stays awake at least
    /// [`LEADER_SLEEP_TICKS`], so whoever woke it hears from it.
    pub fn wake(&mut self) {
        self.idle_leader_ticks = 0;
        self.quiet_ticks = 0;
        if self.is_leader() {
            self.node.ping();
        }
    }

    /// Steps a message from a peer in.
    pub fn step(&mut self, message: Message) {
        self.quiet_ticks = 0;
        let from = message.from;
        if let Err(err) = self.node.step(message) {
            tracing::debug!(group = %self.id, cause = %err, "raft message refused");
        }
        self.last_from_leader = self.leader() == Some(from);
    }

    /// Proposes `entries` as one record batch, answering `reply` once it is committed. Only
    /// the leader proposes; any other replica answers [`ReplicationError::NotLeader`].
    pub fn propose(
        &mut self,
        entries: Vec<PutEntry>,
        now_ms: u64,
        reply: oneshot::Sender<Result<Vec<Appended>, ReplicationError>>,
    ) {
        if !self.is_leader() {
            let err = ReplicationError::NotLeader { group: self.id.clone(), leader: self.leader() };
            let _ = reply.send(Err(err));
            return;
        }
        let (last_counter, last_arrival) = self.proposed.unwrap_or_else(|| self.last_in_log());
        let arrival_ms = now_ms.max(last_arrival);
        let first_counter = last_counter + 1;
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let bytes: usize = entries.iter().map(PutEntry::size).sum();
        let mut payload = Vec::with_capacity(frame::BATCH_HEADER_LEN + entries.len() * frame::RECORD_OVERHEAD + bytes);
        frame::begin_batch(&mut payload, first_counter, count, arrival_ms);
        let mut results = Vec::with_capacity(entries.len());
        for (n, entry) in entries.iter().enumerate() {
            frame::push_record(&mut payload, entry.partition_key.as_bytes(), &entry.data);
            results.push(Appended { shard: self.id.shard, counter: first_counter + n as u64, arrival_ms });
        }
        self.idle_leader_ticks = 0;
        if let Err(err) = self.node.propose(Vec::new(), payload) {
            let _ = reply.send(Err(ReplicationError::from(err)));
            return;
        }
        let index = self.node.raft.raft_log.last_index();
        let term = self.node.raft.term;
        // Puts still waiting at this index or above had their entries replaced (this leader's
        // log was cut back while it followed): they will never commit.
        while self.waiting.back().is_some_and(|w| w.index >= index) {
            if let Some(replaced) = self.waiting.pop_back() {
                let err = ReplicationError::NotCommitted(self.id.clone(), "a new leader replaced the entry");
                let _ = replaced.reply.send(Err(err));
            }
        }
        self.proposed = Some((first_counter + u64::from(count) - 1, arrival_ms));
        self.waiting.push_back(Waiting { index, term, since: Instant::now(), results, reply });
    }

    /// `(counter, arrival)` of the last record in this replica's log (persisted: everything
    /// proposed in earlier rounds is), never below what is already published.
    fn last_in_log(&self) -> (u64, u64) {
        let published = (
            self.shard_log.last_counter.load(Ordering::Acquire),
            self.shard_log.last_arrival_ms.load(Ordering::Acquire),
        );
        let logged = read_index(self.node.store().log().index()).last_record();
        logged.map_or(published, |logged| logged.max(published))
    }

    /// Answers, with a retryable error, puts that waited longer than [`COMMIT_TIMEOUT`].
    pub fn expire_waiting(&mut self, now: Instant) {
        while self.waiting.front().is_some_and(|w| now.duration_since(w.since) > COMMIT_TIMEOUT) {
            if let Some(waiting) = self.waiting.pop_front() {
                let err = ReplicationError::Unknown(self.id.clone());
                let _ = waiting.reply.send(Err(err));
            }
        }
    }

    /// Takes the group's ready state, if any: sends what may go before persistence, stages
    /// new entries into `journal` and the hard state into `meta`, and sets `sync_meta` when
    /// the term or vote changed (they must be durable before any vote or answer goes out; a
    /// commit index alone may be lost and learnt again). The caller makes both durable, then
    /// calls [`Replica::persisted`].
    pub fn stage(
        &mut self,
        journal: &mut Group,
        meta: &mut WriteBatch,
        sync_meta: &mut bool,
        send: &mut dyn FnMut(Vec<Message>),
    ) -> Result<Option<Persisting>, ReplicationError> {
        if let Some(commit) = self.commit_to_store.take() {
            self.stage_commit(meta, commit);
        }
        if !self.node.has_ready() {
            return Ok(None);
        }
        let mut ready = self.node.ready();
        send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            // Advancing past it would tell raft-rs the log holds what it does not.
            return Err(ReplicationError::Unsupported(format!("a snapshot for shard {} arrived", self.id)));
        }
        // raft-rs hands out only committed entries this replica has already persisted: they are
        // applied (published, their puts answered) now, not after this round's fsync of newer
        // entries.
        self.apply(ready.take_committed_entries());
        let log = self.node.store().log().clone();
        if !ready.entries().is_empty() {
            let entries: Vec<_> = ready.entries().iter().map(storage::to_log_entry).collect::<Result<_, _>>()?;
            log.stage(journal, &entries)?;
        }
        if let Some(hard_state) = ready.hs() {
            log.stage_hard_state(meta, &storage::from_raft_hard_state(hard_state));
            self.stored_commit = hard_state.commit;
            if (hard_state.term, hard_state.vote) != self.stored_vote {
                self.stored_vote = (hard_state.term, hard_state.vote);
                *sync_meta = true;
            }
        }
        Ok(Some(Persisting { ready }))
    }

    fn stage_commit(&mut self, meta: &mut WriteBatch, commit: u64) {
        if commit <= self.stored_commit {
            return;
        }
        let mut state = storage::from_raft_hard_state(&self.node.raft.hard_state());
        state.commit = commit;
        self.node.store().log().stage_hard_state(meta, &state);
        self.stored_commit = commit;
    }

    /// After the round's writes are durable: sends the messages that had to wait for them,
    /// advances, and applies what that commits (publishing the watermark, answering puts).
    pub fn persisted(&mut self, persisting: Persisting, send: &mut dyn FnMut(Vec<Message>)) {
        let Persisting { mut ready } = persisting;
        self.proposed = None;
        send(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.commit_to_store = Some(commit);
        }
        send(light.take_messages());
        self.apply(light.take_committed_entries());
        self.node.advance_apply();
    }

    /// Publishes committed entries and answers the puts waiting for them.
    fn apply(&mut self, committed: Vec<Entry>) {
        for entry in committed {
            if entry.get_entry_type() == EntryType::EntryNormal {
                if let Ok((first, count, arrival_ms)) = frame::batch_header(&entry.data) {
                    if count > 0 {
                        self.shard_log.last_arrival_ms.store(arrival_ms, Ordering::Release);
                        self.shard_log.last_counter.store(first + u64::from(count) - 1, Ordering::Release);
                        let bytes = entry.data.len().saturating_sub(frame::BATCH_HEADER_LEN);
                        self.shard_log.appended_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                        self.shard_log.appended.notify_waiters();
                    }
                }
            }
            while self.waiting.front().is_some_and(|w| w.index <= entry.index) {
                let Some(waiting) = self.waiting.pop_front() else { break };
                if waiting.index == entry.index && waiting.term == entry.term {
                    let _ = waiting.reply.send(Ok(waiting.results));
                } else {
                    let err = ReplicationError::NotCommitted(self.id.clone(), "a new leader replaced the entry");
                    let _ = waiting.reply.send(Err(err));
                }
            }
        }
    }

    /// Answers every waiting put with `err` (the loop is stopping).
    pub fn fail_waiting(&mut self, err: impl Fn() -> ReplicationError) {
        for waiting in self.waiting.drain(..) {
            let _ = waiting.reply.send(Err(err()));
        }
    }
}

/// Sets the published watermark of a replicated shard to its last committed record, as its
/// stored hard state says: what a server holds past that may yet be replaced by a leader. Run
/// when the server opens, before it serves.
pub fn publish_committed(log: &JournalRaftLog, shard_log: &ShardLog) -> Result<(), ReplicationError> {
    let commit = log.hard_state()?.commit.min(log.last_index());
    publish_up_to(log, shard_log, commit);
    Ok(())
}

/// Sets the shard's published watermark to its last record at or below Raft index `commit`:
/// records past it may yet be replaced by a leader.
fn publish_up_to(log: &JournalRaftLog, shard_log: &ShardLog, commit: u64) {
    let index = read_index(log.index());
    if let Some(entry) = index.last_batch_through(commit) {
        shard_log.last_counter.store(entry.end_counter() - 1, Ordering::Release);
        shard_log.last_arrival_ms.store(entry.arrival_ms, Ordering::Release);
    } else if let Some(entry) = index.first_batch_after(commit) {
        // Only uncommitted records are logged (the committed ones, if any, went with
        // retention): publish nothing of them.
        let before = entry.first_counter.saturating_sub(1);
        if shard_log.last_counter.load(Ordering::Acquire) > before {
            shard_log.last_counter.store(before, Ordering::Release);
        }
    }
}
