//! Segments: the journal's files. A class's segments are `<class dir>/<id>.seg`, numbered in
//! write order. When a segment is sealed (the writer moves on to the next), its index is
//! written beside it as `<id>.idx` so that opening the journal reads the index instead of the
//! segment. The newest segment of a class has no index file; opening scans it.

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::files::{Files, SegmentFile};
use super::frame::{self, FrameError, Kind};
use super::index::{IndexEntry, Location};
use super::{JournalError, ShardKey, ShardSet};

const INDEX_MAGIC: u32 = u32::from_le_bytes(*b"SHLX");
const INDEX_VERSION: u32 = 1;
/// Bytes of one entry in an index file.
const INDEX_ENTRY_LEN: usize = 69;

/// A frame of some shard, where it lies and in which group write it was made.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    /// Its shard.
    pub key: ShardKey,
    /// The journal-wide number of the group write that made it (orders frames across classes).
    pub group: u64,
    /// The entry, with its location. For a [`Kind::Truncate`] frame, `index` is the first
    /// index removed.
    pub entry: IndexEntry,
}

/// What a segment holds, as far as retention needs to know.
#[derive(Debug, Default)]
pub struct Summary {
    /// Per stream, the newest arrival time of its frames here.
    pub newest: FxHashMap<u64, u64>,
    /// Shards with frames here.
    pub shards: ShardSet,
    /// Every frame, kept while the segment is active to write its index file when sealed.
    pub frames: Vec<Located>,
}

impl Summary {
    /// Takes note of a frame written at `written_ms`.
    pub fn add(&mut self, located: Located, written_ms: u64, keep_frame: bool) {
        let time = if located.entry.kind == Kind::Records { located.entry.arrival_ms } else { written_ms };
        let newest = self.newest.entry(located.key.stream).or_default();
        *newest = (*newest).max(time);
        self.shards.insert(located.key);
        if keep_frame {
            self.frames.push(located);
        }
    }
}

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Retention class.
    pub class: u8,
    /// Id within the class.
    pub id: u64,
    /// Its path.
    pub path: PathBuf,
    /// The open file (readers share it; an unlinked file stays readable through it).
    pub file: Arc<dyn SegmentFile>,
    /// What it holds.
    pub summary: Mutex<Summary>,
}

impl Segment {
    /// Path of the segment `id` in `class_dir`.
    pub fn path_in(class_dir: &Path, id: u64) -> PathBuf {
        class_dir.join(format!("{id:020}.seg"))
    }

    /// Path of its index file.
    pub fn index_path(&self) -> PathBuf {
        self.path.with_extension("idx")
    }
}

/// Writes the index file of a sealed segment `len` bytes long, durably.
pub fn write_index(files: &dyn Files, segment: &Segment, len: u64, summary: &Summary) -> Result<(), JournalError> {
    let mut buf = Vec::with_capacity(24 + summary.frames.len() * INDEX_ENTRY_LEN + summary.newest.len() * 16);
    buf.extend_from_slice(&INDEX_MAGIC.to_le_bytes());
    buf.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&u32::try_from(summary.frames.len()).unwrap_or(u32::MAX).to_le_bytes());
    for located in &summary.frames {
        let e = &located.entry;
        buf.extend_from_slice(&located.key.stream.to_le_bytes());
        buf.extend_from_slice(&located.key.shard.to_le_bytes());
        buf.push(e.kind as u8);
        buf.extend_from_slice(&located.group.to_le_bytes());
        buf.extend_from_slice(&e.term.to_le_bytes());
        buf.extend_from_slice(&e.index.to_le_bytes());
        buf.extend_from_slice(&e.location.offset.to_le_bytes());
        buf.extend_from_slice(&e.location.len.to_le_bytes());
        buf.extend_from_slice(&e.first_counter.to_le_bytes());
        buf.extend_from_slice(&e.count.to_le_bytes());
        buf.extend_from_slice(&e.arrival_ms.to_le_bytes());
    }
    buf.extend_from_slice(&u32::try_from(summary.newest.len()).unwrap_or(u32::MAX).to_le_bytes());
    for (stream, newest) in &summary.newest {
        buf.extend_from_slice(&stream.to_le_bytes());
        buf.extend_from_slice(&newest.to_le_bytes());
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let path = segment.index_path();
    let io = |source| JournalError::Io { path: path.clone(), source };
    let file = files.open(&path, true).map_err(io)?;
    file.truncate(0).map_err(io)?;
    file.write_at(&buf, 0).map_err(io)?;
    file.sync().map_err(io)
}

/// Reads the index file of a segment `len` bytes long; `None` when it is missing, damaged or
/// written for another length (then the segment is scanned instead).
pub fn read_index(files: &dyn Files, segment: &Segment, len: u64) -> Option<Summary> {
    let file = files.open(&segment.index_path(), false).ok()?;
    let size = usize::try_from(file.size().ok()?).ok()?;
    let mut buf = vec![0; size];
    file.read_at(&mut buf, 0).ok()?;
    let (body, crc) = buf.split_at_checked(size.checked_sub(4)?)?;
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let mut reader = Reader { rest: body };
    if reader.u32()? != INDEX_MAGIC || reader.u32()? != INDEX_VERSION || reader.u64()? != len {
        return None;
    }
    let mut summary = Summary::default();
    for _ in 0..reader.u32()? {
        let key = ShardKey { stream: reader.u64()?, shard: reader.u32()? };
        let kind = match reader.u8()? {
            1 => Kind::Records,
            2 => Kind::Truncate,
            4 => Kind::Entry,
            _ => return None,
        };
        let group = reader.u64()?;
        let term = reader.u64()?;
        let index = reader.u64()?;
        let offset = reader.u64()?;
        let frame_len = reader.u32()?;
        let entry = IndexEntry {
            term,
            index,
            kind,
            location: Location { class: segment.class, segment: segment.id, offset, len: frame_len },
            first_counter: reader.u64()?,
            count: reader.u32()?,
            arrival_ms: reader.u64()?,
        };
        summary.frames.push(Located { key, group, entry });
        summary.shards.insert(key);
    }
    for _ in 0..reader.u32()? {
        summary.newest.insert(reader.u64()?, reader.u64()?);
    }
    Some(summary)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.rest.split_at_checked(N)?;
        self.rest = tail;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

/// What scanning a segment found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Its frames and summary.
    pub summary: Summary,
    /// Bytes of whole frames from the start.
    pub valid_len: u64,
    /// The length found; more than `valid_len` when a torn tail was found.
    pub file_len: u64,
}

/// Scans a segment frame by frame. In a sealed segment (`active` false) every byte was made
/// durable before the next segment was begun, so any bad frame is damage. In the active
/// segment, a bad frame past the durable length stated by the last marker is the torn tail
/// of a write that was never acknowledged; before it, damage.
pub fn scan(segment: &Segment, active: bool) -> Result<Scan, JournalError> {
    let io = |source| JournalError::Io { path: segment.path.clone(), source };
    let file_len = segment.file.size().map_err(io)?;
    let mut data =
        vec![0; usize::try_from(file_len).map_err(|_| JournalError::corrupt(&segment.path, 0, "too large"))?];
    segment.file.read_at(&mut data, 0).map_err(io)?;
    let mut scan = Scan { file_len, ..Scan::default() };
    let (mut at, mut durable, mut group, mut written_ms) = (0usize, 0u64, 0u64, 0u64);
    while at < data.len() {
        let (header, payload, len) = match frame::parse(&data[at..]) {
            Ok(parsed) => parsed,
            Err(err) => {
                if !active || (at as u64) < durable.max(later_marker(&data, at + 1)) {
                    return Err(JournalError::corrupt(&segment.path, at as u64, &err.to_string()));
                }
                tracing::warn!(
                    path = %segment.path.display(),
                    offset = at,
                    dropped = data.len() - at,
                    cause = %err,
                    "cutting the torn tail of an unacknowledged write"
                );
                break;
            }
        };
        let location = Location {
            class: segment.class,
            segment: segment.id,
            offset: at as u64,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        let damage = |err: FrameError| JournalError::corrupt(&segment.path, at as u64, &err.to_string());
        match header.kind {
            Kind::Marker => {
                let (stated, number, time) = frame::marker(payload).map_err(damage)?;
                if stated != at as u64 {
                    return Err(damage(FrameError::Malformed("marker at the wrong offset")));
                }
                durable = stated;
                group = number;
                written_ms = time;
            }
            kind => {
                let (first_counter, count, arrival_ms) = match kind {
                    Kind::Records => frame::batch_header(payload).map_err(damage)?,
                    _ => (0, 0, 0),
                };
                let entry = IndexEntry {
                    term: header.term,
                    index: header.index,
                    kind,
                    location,
                    first_counter,
                    count,
                    arrival_ms,
                };
                let key = ShardKey { stream: header.stream, shard: header.shard };
                scan.summary.add(Located { key, group, entry }, written_ms, true);
            }
        }
        at += len;
    }
    scan.valid_len = at as u64;
    Ok(scan)
}

/// The offset of the last genuine marker after `from`, or 0. A marker states the length
/// durable before its write, which is its own offset; one found past damage proves the damage
/// lies in bytes that were durable, not in a torn tail.
fn later_marker(data: &[u8], from: usize) -> u64 {
    let magic = frame::MAGIC.to_le_bytes();
    let mut found = 0;
    let mut at = from;
    while let Some(step) = data.get(at..).and_then(|rest| rest.windows(4).position(|w| w == magic)) {
        at += step;
        if let Ok((header, payload, _)) = frame::parse(&data[at..]) {
            let genuine =
                header.kind == Kind::Marker && frame::marker(payload).is_ok_and(|(stated, _, _)| stated == at as u64);
            if genuine {
                found = at as u64;
            }
        }
        at += 1;
    }
    found
}
