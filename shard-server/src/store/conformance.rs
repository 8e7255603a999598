//! One behavioural suite that every engine must pass, run against each of them.

use super::{Cf, Durability, KvEngine, MemoryEngine, RocksEngine, WriteBatch};

fn collect(engine: &dyn KvEngine, cf: Cf, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    engine
        .scan(cf, start, end, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })
        .expect("scan");
    out
}

fn suite(engine: &dyn KvEngine) {
    // Batches apply atomically and in order.
    let mut batch = WriteBatch::new();
    for i in 0u8..10 {
        batch.put(Cf::Meta, vec![b'k', i], vec![i]);
    }
    batch.put(Cf::Leases, b"x".to_vec(), b"meta".to_vec());
    batch.delete(Cf::Meta, vec![b'k', 9]);
    engine.write(batch, Durability::Sync).expect("write");
    assert_eq!(engine.get(Cf::Meta, &[b'k', 3]).expect("get"), Some(vec![3]));
    assert_eq!(engine.get(Cf::Meta, &[b'k', 9]).expect("get"), None);
    // Column families are independent key spaces.
    assert_eq!(engine.get(Cf::Meta, b"x").expect("get"), None);
    assert_eq!(engine.get(Cf::Leases, b"x").expect("get"), Some(b"meta".to_vec()));

    // Scans are ordered, half-open, and stop when asked.
    let all = collect(engine, Cf::Meta, &[b'k', 2], &[b'k', 5]);
    assert_eq!(all.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(), vec![2, 3, 4]);
    let mut seen = 0;
    engine
        .scan(Cf::Meta, b"k", b"l", &mut |_, _| {
            seen += 1;
            seen < 2
        })
        .expect("scan");
    assert_eq!(seen, 2);
    assert!(collect(engine, Cf::Meta, &[b'k', 5], &[b'k', 5]).is_empty());

    // Range deletes remove exactly [start, end).
    let mut batch = WriteBatch::new();
    batch.delete_range(Cf::Meta, vec![b'k', 1], vec![b'k', 4]);
    engine.write(batch, Durability::Buffered).expect("write");
    engine.compact_range(Cf::Meta, b"k", b"l").expect("compact");
    let left = collect(engine, Cf::Meta, b"k", b"l");
    assert_eq!(left.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(), vec![0, 4, 5, 6, 7, 8]);
}

#[test]
fn memory_engine_conforms() {
    suite(&MemoryEngine::new());
}

#[test]
fn rocks_engine_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite(&RocksEngine::open(dir.path()).expect("open"));
}

#[test]
fn rocks_engine_keeps_synced_writes_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let engine = RocksEngine::open(dir.path()).expect("open");
        let mut batch = WriteBatch::new();
        batch.put(Cf::Catalog, b"stream".to_vec(), b"v1".to_vec());
        engine.write(batch, Durability::Sync).expect("write");
    }
    let engine = RocksEngine::open(dir.path()).expect("reopen");
    assert_eq!(engine.get(Cf::Catalog, b"stream").expect("get"), Some(b"v1".to_vec()));
}
