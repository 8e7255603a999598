//! The RocksDB engine for the catalog, leases, counters and server metadata (records live in
//! the journal). One column family per [`Cf`]. Durable writes fsync the WAL before returning,
//! and RocksDB's own write group joins concurrent writers into one fsync.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, DBCompressionType, Options, WriteOptions, DB};

use super::{Cf, Durability, Error, KvEngine, Mutation, Result, WriteBatch};

/// RocksDB behind the [`KvEngine`] interface.
pub struct RocksEngine {
    db: DB,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine").field("path", &self.db.path()).finish()
    }
}

fn engine_error(err: rocksdb::Error) -> Error {
    Error::Engine(err.into_string())
}

fn family_options(_cf: Cf) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    opts
}

impl RocksEngine {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(4);
        opts.set_bytes_per_sync(1 << 20);
        opts.set_max_total_wal_size(2 << 30);
        // Reusing WAL files lets each fsync skip the file-size metadata update.
        opts.set_recycle_log_file_num(4);
        let families = Cf::ALL.iter().map(|cf| ColumnFamilyDescriptor::new(cf.name(), family_options(*cf)));
        let db = DB::open_cf_descriptors(&opts, path, families)
            .map_err(|err| Error::Open { path: path.display().to_string(), message: err.into_string() })?;
        Ok(Self { db })
    }

    fn handle(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(cf.name()).ok_or_else(|| Error::Engine(format!("column family {} is missing", cf.name())))
    }
}

impl KvEngine for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.handle(cf)?, key).map_err(engine_error)
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let mut read_opts = rocksdb::ReadOptions::default();
        read_opts.set_iterate_upper_bound(end.to_vec());
        let mut iter = self.db.raw_iterator_cf_opt(self.handle(cf)?, read_opts);
        iter.seek(start);
        while iter.valid() {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                break;
            };
            if !visit(key, value) {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(engine_error)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for mutation in batch.mutations() {
            match mutation {
                Mutation::Put { cf, key, value } => rocks_batch.put_cf(self.handle(*cf)?, key, value),
                Mutation::Delete { cf, key } => rocks_batch.delete_cf(self.handle(*cf)?, key),
                Mutation::DeleteRange { cf, start, end } => {
                    if start < end {
                        rocks_batch.delete_range_cf(self.handle(*cf)?, start, end)
                    }
                }
            }
        }
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(durability == Durability::Sync);
        self.db.write_opt(rocks_batch, &write_opts).map_err(engine_error)
    }

    fn compact_range(&self, cf: Cf, start: &[u8], end: &[u8]) -> Result<()> {
        self.db.compact_range_cf(self.handle(cf)?, Some(start), Some(end));
        Ok(())
    }
}
