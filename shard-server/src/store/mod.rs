//! The key-value seam for everything but records (they live in the journal, see
//! [`crate::journal`]): a small key-value interface with column families, atomic write
//! batches, range deletes and an explicit durability flag. `rocks` is the production engine
//! (feature `rocksdb`, on by default; the fuzz targets build without it), `memory` the
//! reference engine; both pass the `conformance` suite. Nothing outside `store/`
//! names an engine's own types.

pub mod keys;
pub mod memory;
#[cfg(feature = "rocksdb")]
pub mod rocks;

#[cfg(all(test, feature = "rocksdb"))]
mod conformance;

pub use memory::MemoryEngine;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksEngine;

/// Storage failures. Every engine reports through this one type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine could not be opened at the given path.
    #[error("cannot open the store at {path}: {message}")]
    Open {
        /// The data directory.
        path: String,
        /// The engine's explanation.
        message: String,
    },
    /// A read, write or maintenance call failed inside the engine.
    #[error("storage engine failure: {0}")]
    Engine(String),
    /// A stored value could not be decoded.
    #[error("corrupt value under key {key}: {reason}")]
    Corrupt {
        /// The key, hex encoded.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// Result alias for storage calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A column family: one independent, ordered key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Stream definitions (the catalog).
    Catalog,
    /// Server metadata: secrets, id allocators, sequence counters.
    Meta,
    /// Consumer applications' leases and checkpoints.
    Leases,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 3] = [Cf::Catalog, Cf::Meta, Cf::Leases];

    /// The on-disk name of the column family.
    pub const fn name(self) -> &'static str {
        match self {
            Cf::Catalog => "catalog",
            Cf::Meta => "meta",
            Cf::Leases => "leases",
        }
    }
}

/// One mutation inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Set `key` to `value`.
    Put {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
    },
    /// Remove every key in `[start, end)`.
    DeleteRange {
        /// Column family.
        cf: Cf,
        /// First key removed.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// An ordered list of mutations that an engine applies atomically: all or none.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    mutations: Vec<Mutation>,
    bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += key.len() + value.len();
        self.mutations.push(Mutation::Put { cf, key, value });
    }

    /// Adds a point delete.
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.bytes += key.len();
        self.mutations.push(Mutation::Delete { cf, key });
    }

    /// Adds a range delete of `[start, end)`.
    pub fn delete_range(&mut self, cf: Cf, start: Vec<u8>, end: Vec<u8>) {
        self.bytes += start.len() + end.len();
        self.mutations.push(Mutation::DeleteRange { cf, start, end });
    }

    /// Moves every mutation of `other` to the end of this batch.
    pub fn append(&mut self, other: WriteBatch) {
        self.bytes += other.bytes;
        self.mutations.extend(other.mutations);
    }

    /// Number of mutations.
    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    /// True when the batch holds no mutation.
    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// Approximate payload size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// The mutations, in order.
    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }

    /// Consumes the batch into its mutations.
    pub fn into_mutations(self) -> Vec<Mutation> {
        self.mutations
    }
}

/// Whether a write must reach stable storage before the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Fsync the write-ahead log before returning: the write survives a crash.
    Sync,
    /// Return once the write is in the engine; a crash may lose it.
    Buffered,
}

/// The operations Shardline needs from a key-value engine.
pub trait KvEngine: Send + Sync + std::fmt::Debug + 'static {
    /// Reads one key.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits keys in `[start, end)` in ascending order until `visit` returns `false`.
    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;

    /// Applies `batch` atomically.
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()>;

    /// Asks the engine to reclaim the space of deleted keys in `[start, end)`.
    fn compact_range(&self, cf: Cf, start: &[u8], end: &[u8]) -> Result<()>;
}

impl<E: KvEngine + ?Sized> KvEngine for std::sync::Arc<E> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(cf, key)
    }
    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        (**self).scan(cf, start, end, visit)
    }
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        (**self).write(batch, durability)
    }
    fn compact_range(&self, cf: Cf, start: &[u8], end: &[u8]) -> Result<()> {
        (**self).compact_range(cf, start, end)
    }
}
