//! One replica of one shard's Raft group: its `RawNode`, the puts waiting for their entry to
//! commit, the shard's published state (high watermark) it moves as entries commit, and, when
//! it leads, the configuration changes that take the group to the replica set the layout names.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    Message, MessageType,
};
use raft::{Config, RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;

use super::storage::{self, is_member, GroupStorage, FOUNDING_INDEX, FOUNDING_TERM};
use super::{GroupId, ReplicationError};
use crate::append::{Appended, Entry as PutEntry};
use crate::journal::frame::{self, Kind};
use crate::journal::{read_index, Group};
use crate::raft_log::{self, JournalRaftLog, RaftLog, RaftLogError};
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
/// Entries a learner may still lack of the leader's log when it is promoted to voter (under
/// load a log never stands still; promotion waits for a learner this close).
const PROMOTE_LAG: u64 = 64;
/// Ticks a replica the layout no longer names waits without hearing a leader before it takes
/// itself for removed.
const DEPART_AFTER_TICKS: u32 = 300;

/// The context of a seal entry: a normal entry that ends the shard's records at a layout
/// epoch (see [`Replica::seal`]); its data is the epoch.
const SEAL_CONTEXT: &[u8] = b"seal";

/// `(counter, arrival)` of a sealed shard's last record.
pub type SealedAt = (u64, u64);

/// Who waits for an entry to commit, and what they are told.
enum Answer {
    /// A put: its records' places.
    Put(Vec<Appended>, oneshot::Sender<Result<Vec<Appended>, ReplicationError>>),
    /// A seal: the shard's last record before it.
    Seal(oneshot::Sender<Result<SealedAt, ReplicationError>>),
}

impl Answer {
    fn fail(self, err: ReplicationError) {
        match self {
            Self::Put(_, reply) => {
                let _ = reply.send(Err(err));
            }
            Self::Seal(reply) => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

/// A put or seal waiting for its entry.
struct Waiting {
    index: u64,
    term: u64,
    since: Instant,
    answer: Answer,
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
    /// The replica set the layout names (Raft ids): the leader changes the group's
    /// configuration until it is this.
    target: BTreeSet<u64>,
    /// The membership to store with the next round's writes, as of an applied entry.
    membership_to_store: Option<(u64, Vec<u8>)>,
    /// Followers sent the founding snapshot, to report to raft-rs in the next round.
    snapshot_sent: Vec<u64>,
    /// Ticks since the last message from the leader (or as leader).
    leaderless_ticks: u32,
    /// The highest layout epoch a seal entry in this replica's log was proposed at: puts routed
    /// under that epoch or an older one are refused (the shard's last record for the reshard
    /// was reported).
    sealed_epoch: u64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("id", &self.id).field("role", &self.node.raft.state).finish()
    }
}

impl Replica {
    /// The replica `me` of group `id` over `log`, its layout's replica set `target`. A replica
    /// with nothing stored founds the group when `me` is one of `founders` (writing the founding
    /// snapshot with their configuration) and otherwise starts empty, to be caught up by the
    /// leader once it adds it. The shard's published high watermark is set back to its last
    /// committed record: entries past the stored commit index may yet be replaced by a leader.
    /// Returns the replica and whether it founded the group just now.
    pub fn open(
        id: GroupId,
        me: u64,
        founders: &[u64],
        target: &[u64],
        log: Arc<JournalRaftLog>,
        shard_log: Arc<ShardLog>,
        logger: &slog::Logger,
    ) -> Result<(Self, bool), ReplicationError> {
        let (conf_state, conf_index, founded) = membership_at_open(&log, me, founders)?;
        let hard_state = log.hard_state()?;
        let commit = hard_state.commit.min(log.last_index()).max(log.first_index() - 1);
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
        let storage = GroupStorage::new(log.clone(), conf_state);
        let logger = logger.new(slog::o!("group" => id.to_string()));
        let node = RawNode::new(&config, storage, &logger)?;
        let mut replica = Self {
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
            target: target.iter().copied().collect(),
            membership_to_store: None,
            snapshot_sent: Vec::new(),
            leaderless_ticks: 0,
            sealed_epoch: 0,
        };
        replica.replay_membership(conf_index, commit)?;
        replica.recall_seals()?;
        Ok((replica, founded))
    }

    /// Applies the configuration changes committed after the stored membership (`conf_index`)
    /// up to `commit`: a crash may have stored the commit index before the membership it led
    /// to. What they lead to is stored at once.
    fn replay_membership(&mut self, conf_index: u64, commit: u64) -> Result<(), ReplicationError> {
        if commit <= conf_index {
            return Ok(());
        }
        let log = self.node.store().log().clone();
        let opaque = read_index(log.index()).indexes_of_kind(conf_index + 1, commit + 1, Kind::Entry);
        let mut changed = None;
        for index in opaque {
            for stored in log.entries(index, index + 1, usize::MAX)? {
                let entry = storage::from_log_entry(stored)?;
                if let Some(conf_state) = self.apply_conf_change(&entry) {
                    changed = Some((entry.index, conf_state));
                }
            }
        }
        if let Some((index, conf_state)) = changed {
            log.set_membership(index, &encode_conf_state(&conf_state)?)?;
        }
        Ok(())
    }

    /// Notes the seals this replica's log holds (a leader must refuse puts of a sealed epoch
    /// after a restart too).
    fn recall_seals(&mut self) -> Result<(), ReplicationError> {
        let log = self.node.store().log().clone();
        let (first, last) = (log.first_index(), log.last_index());
        for index in read_index(log.index()).indexes_of_kind(first, last + 1, Kind::Entry) {
            let entries = log.entries(index, index + 1, usize::MAX)?;
            let entries: Vec<Entry> = entries.into_iter().map(storage::from_log_entry).collect::<Result<_, _>>()?;
            self.note_seals(&entries);
        }
        Ok(())
    }

    /// True when Raft has something for the store loop to do (persist, send, apply).
    pub fn has_ready(&self) -> bool {
        self.node.has_ready()
    }

    /// True when messages from server `id` are taken: a member of the group's configuration
    /// (voter, outgoing voter or learner) or of the replica set the layout names (a replica
    /// that joins knows no configuration until the leader's first messages bring it).
    pub fn accepts_from(&self, id: u64) -> bool {
        self.target.contains(&id) || is_member(&self.conf_state(), id)
    }

    /// The group's configuration as this replica has applied it.
    pub fn conf_state(&self) -> ConfState {
        self.node.raft.prs().conf().to_conf_state()
    }

    /// Sets the replica set the layout names (Raft ids).
    pub fn set_target(&mut self, target: &[u64]) {
        self.target = target.iter().copied().collect();
    }

    /// True when the group's configuration is the layout's replica set: its voters, with no
    /// learner and no joint configuration.
    pub fn configured(&self) -> bool {
        let conf = self.conf_state();
        self.target.is_empty()
            || (conf.voters_outgoing.is_empty()
                && conf.learners.is_empty()
                && conf.voters.iter().copied().collect::<BTreeSet<_>>() == self.target)
    }

    /// True when this replica has left the group: the layout no longer names it, and either
    /// the configuration it applied does not name it at all (its removal, joint configuration
    /// left, is committed; or it never was added) or it has heard no leader for
    /// [`DEPART_AFTER_TICKS`] (the change that removed it committed without it: a removed
    /// replica is not told).
    pub fn departed(&self) -> bool {
        let me = self.node.raft.id;
        !self.target.contains(&me)
            && (!is_member(&self.conf_state(), me) || self.leaderless_ticks >= DEPART_AFTER_TICKS)
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
        self.conf_state().voters
    }

    /// The learners of the group (replicas being caught up before they vote).
    pub fn learners(&self) -> Vec<u64> {
        self.conf_state().learners
    }

    /// Stands for election.
    pub fn campaign(&mut self) -> Result<(), ReplicationError> {
        Ok(self.node.campaign()?)
    }

    /// Advances the group's logical clock one tick.
    pub fn tick(&mut self) {
        self.node.tick();
        self.quiet_ticks = self.quiet_ticks.saturating_add(1);
        self.leaderless_ticks = if self.is_leader() { 0 } else { self.leaderless_ticks.saturating_add(1) };
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
                    && self.configured()
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
        if self.last_from_leader {
            self.leaderless_ticks = 0;
        }
    }

    /// Proposes `entries` as one record batch, answering `reply` once it is committed. Only
    /// the leader proposes; any other replica answers [`ReplicationError::NotLeader`]. Puts
    /// routed under layout `epoch` are refused once the shard is sealed at that epoch.
    pub fn propose(
        &mut self,
        entries: Vec<PutEntry>,
        epoch: u64,
        now_ms: u64,
        reply: oneshot::Sender<Result<Vec<Appended>, ReplicationError>>,
    ) {
        if !self.is_leader() {
            let err = ReplicationError::NotLeader { group: self.id.clone(), leader: self.leader() };
            let _ = reply.send(Err(err));
            return;
        }
        if epoch <= self.sealed_epoch {
            let _ = reply.send(Err(ReplicationError::Sealed(self.id.clone())));
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
        self.proposed = Some((first_counter + u64::from(count) - 1, arrival_ms));
        self.wait_for_last(Answer::Put(results, reply));
    }

    /// Ends the shard's records at layout `epoch`: proposes a seal entry (puts routed under
    /// `epoch` or before are refused from now on, here and on any replica that logs it) and
    /// answers `reply`, once it is committed, with the shard's last record before it — every
    /// record there will ever be under that epoch: entries before a committed one are
    /// committed, and none follows it. Only the leader seals.
    pub fn seal(&mut self, epoch: u64, reply: oneshot::Sender<Result<SealedAt, ReplicationError>>) {
        if !self.is_leader() {
            let err = ReplicationError::NotLeader { group: self.id.clone(), leader: self.leader() };
            let _ = reply.send(Err(err));
            return;
        }
        self.sealed_epoch = self.sealed_epoch.max(epoch);
        self.idle_leader_ticks = 0;
        if let Err(err) = self.node.propose(SEAL_CONTEXT.to_vec(), epoch.to_le_bytes().to_vec()) {
            let _ = reply.send(Err(ReplicationError::from(err)));
            return;
        }
        self.wait_for_last(Answer::Seal(reply));
    }

    /// Notes a seal among `entries` (logged or committed here): puts under its epoch stop. A
    /// seal logged but later replaced still counts: puts of that epoch wait for the next one,
    /// which the operator's next Freeze or unfreeze brings.
    fn note_seals(&mut self, entries: &[Entry]) {
        for entry in entries {
            if entry.get_entry_type() == EntryType::EntryNormal && entry.context.as_ref() == SEAL_CONTEXT {
                if let Ok(epoch) = <[u8; 8]>::try_from(entry.data.as_ref()) {
                    self.sealed_epoch = self.sealed_epoch.max(u64::from_le_bytes(epoch));
                }
            }
        }
    }

    /// Waits for the entry just proposed (the last of the log) to commit.
    fn wait_for_last(&mut self, answer: Answer) {
        let index = self.node.raft.raft_log.last_index();
        let term = self.node.raft.term;
        // Puts still waiting at this index or above had their entries replaced (this leader's
        // log was cut back while it followed): they will never commit.
        while self.waiting.back().is_some_and(|w| w.index >= index) {
            if let Some(replaced) = self.waiting.pop_back() {
                replaced
                    .answer
                    .fail(ReplicationError::NotCommitted(self.id.clone(), "a new leader replaced the entry"));
            }
        }
        self.waiting.push_back(Waiting { index, term, since: Instant::now(), answer });
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
                waiting.answer.fail(ReplicationError::Unknown(self.id.clone()));
            }
        }
    }

    /// When this replica leads, asks the most caught-up other voter to take over (raft-rs
    /// sends it the log it lacks, then tells it to stand for election at once); true when it
    /// led and there is one to hand over to.
    pub fn hand_over(&mut self) -> bool {
        if !self.is_leader() {
            return false;
        }
        let raft = &self.node.raft;
        if raft.lead_transferee.is_some() {
            return true;
        }
        let me = raft.id;
        // Only to a voter heard from lately (a dead one would hold the group leaderless for an
        // election timeout), the most caught-up first.
        let progress = |id: u64| raft.prs().get(id).filter(|p| p.recent_active).map(|p| p.matched);
        let next = self
            .conf_state()
            .voters
            .into_iter()
            .filter(|&id| id != me)
            .filter_map(|id| progress(id).map(|matched| (matched, id)))
            .max()
            .map(|(_, id)| id);
        match next {
            Some(next) => {
                self.node.transfer_leader(next);
                true
            }
            None => false,
        }
    }

    /// When this replica leads, takes the next step from the group's configuration towards the
    /// layout's replica set, one at a time (each waits for the previous one to be applied):
    /// leave a joint configuration left behind by an earlier leader; add each new replica as a
    /// learner; once every learner is caught up, promote them and remove the voters the layout
    /// drops (this one excepted) in one joint change, left automatically once applied; remove
    /// learners the layout dropped; and when the layout drops this replica, hand leadership to
    /// a voter that stays once one is caught up, for it to remove this one.
    pub fn reconfigure(&mut self) {
        if !self.is_leader() || self.configured() || !self.founded() {
            return;
        }
        let raft = &self.node.raft;
        if raft.has_pending_conf() || raft.lead_transferee.is_some() {
            return;
        }
        let me = raft.id;
        let last = raft.raft_log.last_index();
        let progress = |id: u64| raft.prs().get(id).map_or((0, false), |p| (p.matched, p.recent_active));
        let conf = self.conf_state();
        let voters: BTreeSet<u64> = conf.voters.iter().copied().collect();
        let learners: BTreeSet<u64> = conf.learners.iter().copied().collect();
        let promote: Vec<u64> = learners.intersection(&self.target).copied().collect();
        let remove: Vec<u64> = voters.difference(&self.target).copied().filter(|&id| id != me).collect();
        let change = if !conf.voters_outgoing.is_empty() {
            Some(ConfChangeV2::default())
        } else if let Some(&new) = self.target.iter().find(|&&id| !voters.contains(&id) && !learners.contains(&id)) {
            Some(conf_change(&[(ConfChangeType::AddLearnerNode, new)]))
        } else if !promote.is_empty() || !remove.is_empty() {
            let caught_up = promote.iter().all(|&id| progress(id).0 + PROMOTE_LAG >= last);
            caught_up.then(|| {
                let steps: Vec<_> = promote
                    .iter()
                    .map(|&id| (ConfChangeType::AddNode, id))
                    .chain(remove.iter().map(|&id| (ConfChangeType::RemoveNode, id)))
                    .collect();
                conf_change(&steps)
            })
        } else if let Some(&gone) = learners.difference(&self.target).next() {
            Some(conf_change(&[(ConfChangeType::RemoveNode, gone)]))
        } else {
            // Only this replica is left to go: to a voter that stays, active and caught up.
            let next = voters.intersection(&self.target).copied().filter(|&id| progress(id) == (last, true)).max();
            if let Some(next) = next {
                tracing::info!(group = %self.id, to = next, "leadership handed over: the layout drops this replica");
                self.node.transfer_leader(next);
            }
            None
        };
        if let Some(change) = change {
            tracing::info!(group = %self.id, change = ?change.changes, leave_joint = change.leave_joint(), "configuration change proposed");
            self.idle_leader_ticks = 0;
            if let Err(err) = self.node.propose_conf_change(Vec::new(), change) {
                tracing::debug!(group = %self.id, cause = %err, "configuration change not proposed");
            }
        }
    }

    /// True when the group began at a founding snapshot (groups logged before founding
    /// snapshots existed cannot take a joining replica, and are not reconfigured).
    fn founded(&self) -> bool {
        let log = self.node.store().log();
        log.first_index() > FOUNDING_INDEX || log.snapshot().ok().flatten().is_some()
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
        self.stage_membership(meta, sync_meta);
        // The founding snapshot is tiny and sent whole: the follower answers it like an append.
        // Were it lost, the follower's refusal of the next append brings it again.
        for to in std::mem::take(&mut self.snapshot_sent) {
            self.node.report_snapshot(to, SnapshotStatus::Finish);
        }
        if !self.node.has_ready() {
            return Ok(None);
        }
        let mut ready = self.node.ready();
        self.send(ready.take_messages(), send);
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot())?;
        }
        // raft-rs hands out only committed entries this replica has already persisted: they are
        // applied (published, their puts answered) now, not after this round's fsync of newer
        // entries.
        self.apply(ready.take_committed_entries());
        self.stage_membership(meta, sync_meta);
        let log = self.node.store().log().clone();
        if !ready.entries().is_empty() {
            self.note_seals(ready.entries());
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

    /// Hands `messages` to `send`, noting the snapshots among them (reported to raft-rs as
    /// sent at the start of the next round).
    fn send(&mut self, messages: Vec<Message>, send: &mut dyn FnMut(Vec<Message>)) {
        self.snapshot_sent
            .extend(messages.iter().filter(|m| m.get_msg_type() == MessageType::MsgSnapshot).map(|m| m.to));
        send(messages);
    }

    /// Adds the membership applied since the last round to `meta`, to be synced: a replica
    /// must not restart with a configuration older than the one it acted on.
    fn stage_membership(&mut self, meta: &mut WriteBatch, sync_meta: &mut bool) {
        if let Some((index, membership)) = self.membership_to_store.take() {
            self.node.store().log().stage_membership(meta, index, &membership);
            *sync_meta = true;
        }
    }

    /// Stores the founding snapshot a joining replica received (its log starts after it) and
    /// the configuration it carries.
    fn install_snapshot(&mut self, snapshot: &raft::prelude::Snapshot) -> Result<(), ReplicationError> {
        let metadata = snapshot.get_metadata();
        if metadata.index != FOUNDING_INDEX {
            // Only founding snapshots exist; raft-rs has taken this one already, so the log
            // cannot be kept consistent with it: the loop stops rather than guess.
            return Err(ReplicationError::Unsupported(format!(
                "a snapshot at index {} for shard {}",
                metadata.index, self.id
            )));
        }
        let log = self.node.store().log().clone();
        tracing::info!(group = %self.id, index = metadata.index, "joining the group from its founding snapshot");
        let stored = raft_log::Snapshot { index: metadata.index, term: metadata.term, data: snapshot.data.to_vec() };
        if log.last_index() > metadata.index {
            log.truncate_suffix(metadata.index + 1)?;
        }
        // Snapshot, membership and a hard state committed to it in one durable write: a
        // restart finds all three or none.
        let raft = &self.node.raft;
        let state = raft_log::HardState { term: raft.term.max(metadata.term), vote: raft.vote, commit: metadata.index };
        log.found(&stored, &state, &encode_conf_state(metadata.get_conf_state())?)?;
        self.stored_commit = self.stored_commit.max(metadata.index);
        Ok(())
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
        self.send(ready.take_persisted_messages(), send);
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.commit_to_store = Some(commit);
        }
        self.send(light.take_messages(), send);
        self.apply(light.take_committed_entries());
        self.node.advance_apply();
    }

    /// Publishes committed entries and answers the puts waiting for them.
    fn apply(&mut self, committed: Vec<Entry>) {
        self.note_seals(&committed);
        for entry in committed {
            if let Some(conf_state) = self.apply_conf_change(&entry) {
                match encode_conf_state(&conf_state) {
                    Ok(encoded) => self.membership_to_store = Some((entry.index, encoded)),
                    Err(err) => tracing::error!(group = %self.id, cause = %err, "membership not stored"),
                }
            }
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
                if waiting.index != entry.index || waiting.term != entry.term {
                    let err = ReplicationError::NotCommitted(self.id.clone(), "a new leader replaced the entry");
                    waiting.answer.fail(err);
                    continue;
                }
                match waiting.answer {
                    Answer::Put(results, reply) => {
                        let _ = reply.send(Ok(results));
                    }
                    Answer::Seal(reply) => {
                        let _ = reply.send(Ok((
                            self.shard_log.last_counter.load(Ordering::Acquire),
                            self.shard_log.last_arrival_ms.load(Ordering::Acquire),
                        )));
                    }
                }
            }
        }
    }

    /// Applies `entry` when it is a configuration change, returning the configuration it leads
    /// to. A change Raft refuses is refused alike by every replica (they apply the same
    /// changes in the same order), so it is logged and skipped.
    fn apply_conf_change(&mut self, entry: &Entry) -> Option<ConfState> {
        let applied = match entry.get_entry_type() {
            EntryType::EntryNormal => return None,
            EntryType::EntryConfChange => ConfChange::parse_from_bytes(&entry.data)
                .map_err(|err| err.to_string())
                .and_then(|change| self.node.apply_conf_change(&change).map_err(|err| err.to_string())),
            EntryType::EntryConfChangeV2 => ConfChangeV2::parse_from_bytes(&entry.data)
                .map_err(|err| err.to_string())
                .and_then(|change| self.node.apply_conf_change(&change).map_err(|err| err.to_string())),
        };
        match applied {
            Ok(conf_state) => {
                tracing::info!(group = %self.id, index = entry.index, voters = ?conf_state.voters, learners = ?conf_state.learners, outgoing = ?conf_state.voters_outgoing, "configuration applied");
                Some(conf_state)
            }
            Err(err) => {
                tracing::warn!(group = %self.id, index = entry.index, cause = %err, "configuration change skipped");
                None
            }
        }
    }

    /// Puts and seals waiting for their entries.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Answers every waiting put with `err` (the loop is stopping).
    pub fn fail_waiting(&mut self, err: impl Fn() -> ReplicationError) {
        for waiting in self.waiting.drain(..) {
            waiting.answer.fail(err());
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

/// A configuration change of `steps` (one: a simple change; more: a joint one, left
/// automatically once applied).
fn conf_change(steps: &[(ConfChangeType, u64)]) -> ConfChangeV2 {
    let mut change = ConfChangeV2::default();
    change.set_transition(ConfChangeTransition::Auto);
    change.changes = steps
        .iter()
        .map(|&(kind, node_id)| {
            let mut single = ConfChangeSingle::default();
            single.set_change_type(kind);
            single.node_id = node_id;
            single
        })
        .collect();
    change
}

/// The stored form of a configuration.
fn encode_conf_state(conf_state: &ConfState) -> Result<Vec<u8>, ReplicationError> {
    conf_state.write_to_bytes().map_err(|err| ReplicationError::Log(RaftLogError::Malformed(err.to_string())))
}

/// The membership stored in `log`, decoded, with the index it is as of.
fn stored_membership(log: &JournalRaftLog) -> Result<Option<(u64, ConfState)>, ReplicationError> {
    let Some((index, encoded)) = log.membership()? else { return Ok(None) };
    let conf_state = ConfState::parse_from_bytes(&encoded)
        .map_err(|err| ReplicationError::Log(RaftLogError::Malformed(format!("stored membership: {err}"))))?;
    Ok(Some((index, conf_state)))
}

/// True when the membership stored in `log` names `me` (as a voter or a learner).
pub fn stored_member(log: &JournalRaftLog, me: u64) -> Result<bool, ReplicationError> {
    Ok(stored_membership(log)?.is_some_and(|(_, conf_state)| is_member(&conf_state, me)))
}

/// The configuration replica `me` opens with, the index it is as of, and whether `me` founded
/// the group now: the stored membership; with nothing stored, the founders' (written with the
/// founding snapshot when `me` is a founder and nothing at all is stored; otherwise it joins,
/// and the leader's founding snapshot brings the rest).
fn membership_at_open(
    log: &JournalRaftLog,
    me: u64,
    founders: &[u64],
) -> Result<(ConfState, u64, bool), ReplicationError> {
    if let Some((index, conf_state)) = stored_membership(log)? {
        return Ok((conf_state, index, false));
    }
    let founders_conf = ConfState { voters: founders.to_vec(), ..ConfState::default() };
    let blank =
        log.last_index() == 0 && log.hard_state()? == raft_log::HardState::default() && log.snapshot()?.is_none();
    if !blank {
        return Ok((founders_conf, 0, false));
    }
    if !founders.contains(&me) {
        // It joins: the founders' configuration (without it) until the founding snapshot
        // arrives; replaying the log from index 1 works on it too, for a log written before
        // founding snapshots existed.
        return Ok((founders_conf, 0, false));
    }
    let encoded = encode_conf_state(&founders_conf)?;
    let snapshot = raft_log::Snapshot { index: FOUNDING_INDEX, term: FOUNDING_TERM, data: encoded.clone() };
    let state = raft_log::HardState { term: FOUNDING_TERM, vote: 0, commit: FOUNDING_INDEX };
    log.found(&snapshot, &state, &encoded)?;
    Ok((founders_conf, FOUNDING_INDEX, true))
}
