//! Records on the node: routing and durable appends (PutRecord/PutRecords), shard iterators,
//! and reads (GetRecords), with throughput limits and metrics.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{
    next_hop, replicas_of, Hop, Node, PutEntry, PutResult, RecordsPage, StartingPosition, MAX_GET_RECORDS_BYTES,
};
use crate::append::Entry;
use crate::error::{Error, Result};
use crate::hash_range::hash_key;
use crate::iterator::{IteratorError, ShardIterator};
use crate::metrics::Read;
use crate::sequence::{self, Layout, Position};
use crate::shard::{self, ReadLimits};
use crate::stream::{parse_shard_id, shard_id, Stream, StreamStatus};

impl Node {
    /// A stream whose records can be put (ACTIVE or UPDATING); Kinesis reports any other
    /// stream as not found.
    fn writable_stream(&self, name: &str) -> Result<Arc<Stream>> {
        let stream = self.catalog.get(name)?;
        if !stream.def().status.is_serving() || stream.is_deleted() {
            return Err(self.catalog.not_found(name));
        }
        Ok(stream)
    }

    /// A stream whose records can be read (anything but CREATING).
    pub(crate) fn readable_stream(&self, name: &str) -> Result<Arc<Stream>> {
        let stream = self.catalog.get(name)?;
        if stream.def().status == StreamStatus::Creating || stream.is_deleted() {
            return Err(self.catalog.not_found(name));
        }
        Ok(stream)
    }

    /// Routes and appends records durably; results are in input order. With throughput limits
    /// on, a record over its shard's limit is refused on its own
    /// ([`Error::ThroughputExceeded`]) and the others are still stored. In cluster mode the
    /// records of shards held by other servers are sent on to them.
    pub async fn put(&self, stream_name: &str, entries: Vec<PutEntry>) -> Result<Vec<Result<PutResult>>> {
        self.put_from(stream_name, entries, Hop::Client).await
    }

    /// [`Node::put`] for a request that came from `hop`: a forwarded request is never sent on
    /// again; its records for shards this server does not hold fail with a retryable error.
    pub async fn put_from(
        &self,
        stream_name: &str,
        entries: Vec<PutEntry>,
        hop: Hop,
    ) -> Result<Vec<Result<PutResult>>> {
        let stream = self.writable_stream(stream_name)?;
        let now = self.now_ms();
        // One answer per record in request order; `None` until the local append or the owner
        // the record was sent to answers.
        let mut answers: Vec<Option<Result<PutResult>>> = Vec::with_capacity(entries.len());
        let mut remote: BTreeMap<String, Vec<(usize, u128, PutEntry)>> = BTreeMap::new();
        // Records of replicated shards led here, by shard, with their request positions.
        let mut replicated: BTreeMap<u32, Vec<(usize, Entry)>> = BTreeMap::new();
        // With the records, the layout epoch they are routed under (replicated puts carry it).
        let (staged, routed_epoch) = {
            let def = stream.def();
            let limited = def.throughput_limits.unwrap_or(self.config.throughput_limits);
            let limit = def.max_record_bytes();
            let router = def.router();
            let mut staged = Vec::with_capacity(entries.len());
            for (position, entry) in entries.into_iter().enumerate() {
                let size = entry.partition_key.len() + entry.data.len();
                if size > limit {
                    return Err(Error::InvalidArgument(format!(
                        "Record size ({size} bytes of partition key and data) exceeds the maximum record size of {} KiB for stream {}.",
                        def.max_record_size_kib,
                        def.name
                    )));
                }
                let hash = entry.explicit_hash_key.unwrap_or_else(|| hash_key(&entry.partition_key));
                let shard = router.route(hash).ok_or_else(|| {
                    Error::InvalidArgument(format!("No open shard of stream {} owns hash key {hash}.", def.name))
                })?;
                match next_hop(self.route_in(&def, shard.index), hop) {
                    Ok(None) => {}
                    Ok(Some(address)) => {
                        answers.push(None);
                        remote.entry(address).or_default().push((position, hash, entry));
                        continue;
                    }
                    Err(refused) => {
                        answers.push(Some(Err(refused)));
                        continue;
                    }
                }
                let admitted =
                    !limited || stream.log(shard.index).is_none_or(|log| log.throttle.admit_write(size, now));
                if !admitted {
                    self.metrics.shard_write_throttled(&def.name, &shard.id(), &def.shard_level_metrics);
                    answers.push(Some(Err(Error::ThroughputExceeded(format!(
                        "Rate exceeded for shard {} in stream {} under account {}.",
                        shard.id(),
                        def.name,
                        self.config.account_id
                    )))));
                    continue;
                }
                let entry = Entry { shard: shard.index, hash, partition_key: entry.partition_key, data: entry.data };
                answers.push(None);
                if replicas_of(&def, shard.index).is_some() {
                    replicated.entry(shard.index).or_default().push((position, entry));
                } else {
                    staged.push(entry);
                }
            }
            (staged, def.placement.as_ref().map_or(0, |p| p.epoch))
        };
        let enabled = stream.def().shard_level_metrics.clone();
        let sizes: Vec<u64> =
            if enabled.is_empty() { Vec::new() } else { staged.iter().map(|e| e.size() as u64).collect() };
        let name = stream.name.clone();
        let local = async {
            if staged.is_empty() {
                Ok(Vec::new())
            } else {
                self.appender.append(stream.clone(), staged).await
            }
        };
        let forwarded = futures_util::future::join_all(remote.into_iter().map(|(address, group)| async move {
            let positions: Vec<usize> = group.iter().map(|(p, _, _)| *p).collect();
            let entries = group.into_iter().map(|(_, hash, entry)| (hash, entry)).collect();
            (positions, self.peers.put(&address, stream_name, entries).await)
        }));
        let proposed = futures_util::future::join_all(replicated.into_iter().map(|(shard, group)| {
            let stream = stream.clone();
            async move {
                let (positions, entries): (Vec<usize>, Vec<Entry>) = group.into_iter().unzip();
                let sizes: Vec<u64> = entries.iter().map(|e| e.size() as u64).collect();
                (positions, sizes, self.put_replicated(&stream, shard, routed_epoch, entries).await)
            }
        }));
        let (appended, forwarded, proposed) = tokio::join!(local, forwarded, proposed);
        for (positions, sizes, outcome) in proposed {
            let def = stream.def();
            match outcome {
                Ok(appended) => {
                    for ((position, a), bytes) in positions.into_iter().zip(appended).zip(sizes) {
                        if !enabled.is_empty() {
                            self.metrics.shard_incoming(&name, &shard_id(a.shard), 1, bytes, &enabled);
                        }
                        if let (Some(answer), Some(shard)) = (answers.get_mut(position), def.shard(a.shard)) {
                            let sequence_number = shard.sequence(a.counter, a.arrival_ms);
                            *answer = Some(Ok(PutResult { shard_id: shard.id(), sequence_number }));
                        }
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    for position in positions {
                        if let Some(answer) = answers.get_mut(position) {
                            *answer = Some(Err(Error::Unavailable(message.clone())));
                        }
                    }
                }
            }
        }
        // With records stored on other servers, a local failure fails only the local records:
        // failing the whole call would make clients put the stored ones again.
        let (appended, local_failure) = match appended {
            Ok(appended) => (appended, None),
            Err(err) if !forwarded.is_empty() => (Vec::new(), Some(err.to_string())),
            Err(err) => return Err(err),
        };
        if !enabled.is_empty() {
            // The appender may have routed a record again after a reshard; count where it landed.
            for (a, bytes) in appended.iter().zip(&sizes) {
                self.metrics.shard_incoming(&name, &shard_id(a.shard), 1, *bytes, &enabled);
            }
        }
        for (positions, results) in forwarded {
            for (position, result) in positions.into_iter().zip(results) {
                if let Some(answer) = answers.get_mut(position) {
                    *answer = Some(result);
                }
            }
        }
        // Numbered off the writer: a shard's creation time never changes once it exists.
        let def = stream.def();
        let mut appended = appended.into_iter();
        Ok(answers
            .into_iter()
            .map(|answer| match answer {
                Some(done) => done,
                None if local_failure.is_some() => Err(Error::Unavailable(local_failure.clone().unwrap_or_default())),
                None => appended
                    .next()
                    .ok_or(Error::WritePathClosed("the appender answered fewer records than it was given"))
                    .and_then(|a| {
                        let shard = def.shard(a.shard).ok_or(Error::WritePathClosed("a record landed in no shard"))?;
                        Ok(PutResult { shard_id: shard.id(), sequence_number: shard.sequence(a.counter, a.arrival_ms) })
                    }),
            })
            .collect())
    }

    /// The index of shard `shard` of stream `stream_name`, which must exist.
    pub fn shard_index(&self, stream_name: &str, shard: &str) -> Result<u32> {
        let index = self.resolve_shard_id(stream_name, shard)?;
        let stream = self.catalog.get(stream_name)?;
        let exists = stream.def().shard(index).is_some();
        exists.then_some(index).ok_or_else(|| self.shard_not_found(stream_name, index))
    }

    /// The index a shard id names, as Kinesis reads it (see [`parse_shard_id`]).
    pub fn resolve_shard_id(&self, stream_name: &str, shard: &str) -> Result<u32> {
        parse_shard_id(shard).ok_or_else(|| Error::CouldNotFindShard {
            shard_id: shard.to_owned(),
            stream: stream_name.to_owned(),
            account: self.config.account_id.clone(),
        })
    }

    /// Shard `index` of `stream_name` does not exist.
    pub fn shard_not_found(&self, stream_name: &str, index: u32) -> Error {
        Error::ShardNotFound {
            shard_id: shard_id(index),
            stream: stream_name.to_owned(),
            account: self.config.account_id.clone(),
        }
    }

    /// The readable stream that has shard `index`; Kinesis names the shard when its stream is
    /// missing too.
    pub fn readable_shard(&self, stream_name: &str, index: u32) -> Result<Arc<Stream>> {
        let stream = self.readable_stream(stream_name).map_err(|err| match err {
            Error::StreamNotFound { .. } => self.shard_not_found(stream_name, index),
            other => other,
        })?;
        let exists = stream.def().shard(index).is_some();
        if exists {
            Ok(stream)
        } else {
            Err(self.shard_not_found(stream_name, index))
        }
    }

    /// Issues a shard iterator.
    pub fn shard_iterator(&self, stream_name: &str, shard: &str, start: StartingPosition) -> Result<String> {
        let index = self.resolve_shard_id(stream_name, shard)?;
        let stream = self.readable_shard(stream_name, index)?;
        let (index, position) = self.resolve_start(&stream, shard, start)?;
        Ok(self.iterators.encode(&ShardIterator {
            stream_id: stream.id,
            stream_name: stream.name.clone(),
            shard: index,
            position,
            issued_at_ms: self.now_ms(),
        }))
    }

    /// The shard index and first counter a starting position means.
    pub(crate) fn resolve_start(&self, stream: &Stream, shard: &str, start: StartingPosition) -> Result<(u32, u64)> {
        let stream_name = stream.name.as_str();
        let index = self.resolve_shard_id(stream_name, shard)?;
        let not_found = || self.shard_not_found(stream_name, index);
        let shard_def = stream.def().shard(index).cloned().ok_or_else(not_found)?;
        let log = stream.log(index).ok_or_else(not_found)?;
        let now = self.now_ms();
        let last = log.last_counter.load(Ordering::Acquire);
        let check_shard = |seq: &Position| {
            if seq.shard != i64::from(index) {
                return Err(Error::InvalidArgument(format!(
                    "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                    sequence::shard_name(seq.shard),
                    shard_def.id()
                )));
            }
            // A number of this shard's index from another shard (of a deleted and re-created
            // stream, or another stream) is told by the creation time it encodes; numbers of
            // Kinesis' older layouts come from no shard here (Kinesis answers version 0 with an
            // internal failure).
            match seq.layout {
                Layout::Current { shard_created_secs, .. } if shard_created_secs != shard_def.created_at_ms / 1000 => {
                    Err(Error::ForeignSequenceNumber)
                }
                Layout::Version1 { .. } => Err(Error::ForeignSequenceNumber),
                Layout::Version0 => Err(Error::OldestSequenceLayout),
                Layout::Current { .. } | Layout::Earlier => Ok(()),
            }
        };
        let position = match start {
            StartingPosition::TrimHorizon => 1,
            StartingPosition::Latest => last + 1,
            StartingPosition::AtSequenceNumber(seq) => {
                check_shard(&seq)?;
                seq.counter
            }
            StartingPosition::AfterSequenceNumber(seq) => {
                check_shard(&seq)?;
                seq.counter.saturating_add(1)
            }
            StartingPosition::AtTimestamp(at_ms) => {
                if at_ms > now {
                    return Err(Error::InvalidArgument(format!(
                        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {at_ms}, currentTimestampInMillis: {now}"
                    )));
                }
                shard::seek_time(&log.index, at_ms).unwrap_or(last + 1)
            }
        };
        Ok((index, position))
    }

    /// Reads records at an iterator. Blocking: call it off the async workers.
    pub fn get_records(&self, token: &str, limit: usize) -> Result<RecordsPage> {
        let started = std::time::Instant::now();
        let now = self.now_ms();
        let iterator = self.iterators.decode(token, now).map_err(|err| match err {
            IteratorError::Invalid => Error::InvalidArgument(err.to_string()),
            IteratorError::Expired { .. } => Error::ExpiredIterator(err.to_string()),
        })?;
        let shard_missing = || Error::ShardNotFound {
            shard_id: shard_id(iterator.shard),
            stream: iterator.stream_name.clone(),
            account: self.config.account_id.clone(),
        };
        let stream = self.readable_stream(&iterator.stream_name).map_err(|_| shard_missing())?;
        if stream.id != iterator.stream_id {
            return Err(shard_missing());
        }
        let log = stream.log(iterator.shard).ok_or_else(shard_missing)?;
        let (retention_ms, shard_def, limited) = {
            let def = stream.def();
            let limited = def.throughput_limits.unwrap_or(self.config.throughput_limits);
            (def.retention_ms(), def.shard(iterator.shard).cloned().ok_or_else(shard_missing)?, limited)
        };
        let ending_counter = shard_def.ending_counter;
        let enabled = stream.def().shard_level_metrics.clone();
        if limited && !log.throttle.admit_read(now) {
            let shard_text = shard_id(iterator.shard);
            let per_shard = enabled.contains("ReadProvisionedThroughputExceeded");
            self.metrics.read_throttled(&stream.name, per_shard.then_some(shard_text.as_str()));
            return Err(Error::ThroughputExceeded(format!(
                "Rate exceeded for shard {} in stream {} under account {}.",
                shard_id(iterator.shard),
                stream.name,
                self.config.account_id
            )));
        }
        let last = log.last_counter.load(Ordering::Acquire);
        let slice = shard::read(
            self.catalog.journal(),
            &log.index,
            iterator.position,
            last,
            ReadLimits {
                max_records: limit,
                max_bytes: MAX_GET_RECORDS_BYTES,
                expired_before_ms: now.saturating_sub(retention_ms),
            },
        )?;
        let millis_behind_latest = match slice.next_arrival_ms {
            Some(arrival) if slice.next_position <= last => now.saturating_sub(arrival),
            _ => 0,
        };
        let bytes: usize = slice.records.iter().map(|r| r.data.len() + r.partition_key.len()).sum();
        if limited {
            log.throttle.charge_read(bytes, now);
        }
        let records = slice.records.len() as u64;
        self.metrics.get(&stream.name, records, bytes as u64, millis_behind_latest, started.elapsed(), true);
        let read = Read { records, bytes: bytes as u64, iterator_age_ms: millis_behind_latest };
        self.metrics.shard_outgoing(&stream.name, &shard_id(iterator.shard), read, &enabled);
        let at_end = ending_counter.is_some_and(|end| slice.next_position > end);
        let (next_iterator, child_shards) = if at_end {
            (None, stream.def().children(iterator.shard).cloned().collect())
        } else {
            let next = ShardIterator { position: slice.next_position, issued_at_ms: now, ..iterator.clone() };
            (Some(self.iterators.encode(&next)), Vec::new())
        };
        Ok(RecordsPage {
            continuation: shard_def.sequence(
                slice.next_position.saturating_sub(1),
                slice.records.last().map_or(shard_def.created_at_ms, |r| r.arrival_ms),
            ),
            records: slice.records.into_iter().map(|r| (shard_def.sequence(r.counter, r.arrival_ms), r)).collect(),
            next_iterator,
            millis_behind_latest,
            child_shards,
        })
    }
}
