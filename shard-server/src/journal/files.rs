//! The file system under the journal. [`DiskFiles`] is the real one; [`MemoryFiles`] keeps
//! files in memory and remembers, per file, how much of it was made durable, so a test can cut
//! the power: everything written after a file's last `sync` is dropped (or torn part-way), and
//! files created since their directory was last synced vanish.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// One open file of the journal: positional reads and writes, durable on [`SegmentFile::sync`].
pub trait SegmentFile: Send + Sync + std::fmt::Debug {
    /// Its current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `bytes` at `offset`.
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every byte written so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Lets the system drop its cached pages of the durable range `offset..offset + len`
    /// (`POSIX_FADV_DONTNEED`); later reads of it go to the device. Only a hint.
    fn evict(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

/// The directory operations the journal needs.
pub trait Files: Send + Sync + std::fmt::Debug {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The files directly in `dir` (not directories), by name.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The subdirectories directly in `dir`, by name.
    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens `path` for reading and writing, creating it when `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>>;
    /// Removes `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (files created or removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFiles;

#[derive(Debug)]
struct DiskFile(std::fs::File);

impl SegmentFile for DiskFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.sync_all()
    }
    fn evict(&self, offset: u64, len: u64) {
        if let Some(len) = std::num::NonZeroU64::new(len) {
            if let Err(err) = rustix::fs::fadvise(&self.0, offset, Some(len), rustix::fs::Advice::DontNeed) {
                tracing::debug!(cause = %err, "dropping cached journal pages failed");
            }
        }
    }
}

fn names(dir: &Path, dirs: bool) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() == dirs {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

impl Files for DiskFiles {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        names(dir, false)
    }
    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        names(dir, true)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(create).truncate(false).open(path)?;
        Ok(Arc::new(DiskFile(file)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// What a power cut does to the bytes written after a file's last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// They are all lost.
    DropUnsynced,
    /// The first `n` of them reach the disk, then the rest are lost.
    Torn(usize),
    /// They all reach the disk (the cut came just after the writes).
    KeepAll,
}

#[derive(Debug, Default)]
struct MemoryFile {
    data: Vec<u8>,
    /// Bytes known to be durable: a prefix of `data`.
    synced: usize,
    /// Byte ranges whose cached pages the journal let go, in order ([`SegmentFile::evict`]).
    evicted: Vec<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<PathBuf, Arc<Mutex<MemoryFile>>>,
    dirs: std::collections::BTreeSet<PathBuf>,
    /// Files created since their directory was last synced: they vanish in a power cut.
    unsynced_entries: std::collections::BTreeSet<PathBuf>,
}

/// An in-memory file system that can lose power. Cloning shares the same files.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    disk: Arc<Mutex<Disk>>,
    sync_fails: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct MemoryHandle {
    file: Arc<Mutex<MemoryFile>>,
    sync_fails: Arc<std::sync::atomic::AtomicBool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} does not exist", path.display()))
}

impl SegmentFile for MemoryHandle {
    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.file).data.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let file = lock(&self.file);
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let bytes = file.data.get(start..start + buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        let mut file = lock(&self.file);
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        if file.data.len() < start + bytes.len() {
            file.data.resize(start + bytes.len(), 0);
        }
        file.data[start..start + bytes.len()].copy_from_slice(bytes);
        file.synced = file.synced.min(start);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        if self.sync_fails.load(std::sync::atomic::Ordering::Acquire) {
            return Err(io::Error::other("the power is failing"));
        }
        let mut file = lock(&self.file);
        file.synced = file.data.len();
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut file = lock(&self.file);
        file.data.truncate(usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?);
        file.synced = file.data.len();
        Ok(())
    }
    fn evict(&self, offset: u64, len: u64) {
        lock(&self.file).evicted.push((offset, len));
    }
}

impl MemoryFiles {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a power cut: every file keeps its durable prefix plus what `cut` lets through,
    /// and files whose directory entry was never synced disappear.
    pub fn power_cut(&self, cut: Cut) {
        let mut disk = lock(&self.disk);
        let vanished: Vec<PathBuf> = std::mem::take(&mut disk.unsynced_entries).into_iter().collect();
        for path in vanished {
            disk.files.remove(&path);
        }
        for file in disk.files.values() {
            let mut file = lock(file);
            let keep = match cut {
                Cut::DropUnsynced => file.synced,
                Cut::Torn(n) => (file.synced + n).min(file.data.len()),
                Cut::KeepAll => file.data.len(),
            };
            file.data.truncate(keep);
            file.synced = keep;
        }
    }

    /// Makes every file sync fail (the power failing during an fsync) until called with
    /// `false`.
    pub fn fail_syncs(&self, fail: bool) {
        self.sync_fails.store(fail, std::sync::atomic::Ordering::Release);
    }

    /// The ranges of `path` given up by [`SegmentFile::evict`], in order.
    pub fn evicted(&self, path: &Path) -> Vec<(u64, u64)> {
        let file = lock(&self.disk).files.get(path).cloned();
        file.map(|file| lock(&file).evicted.clone()).unwrap_or_default()
    }

    /// The bytes of `path`, for tests that damage files.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = lock(&self.disk);
        disk.files.get(path).map(|file| lock(file).data.clone())
    }

    /// Replaces the bytes of `path` (durably), for tests that damage files.
    pub fn set_contents(&self, path: &Path, data: Vec<u8>) {
        let disk = lock(&self.disk);
        if let Some(file) = disk.files.get(path) {
            let mut file = lock(file);
            file.synced = data.len();
            file.data = data;
        }
    }

    /// Every file, by path.
    pub fn paths(&self) -> Vec<PathBuf> {
        lock(&self.disk).files.keys().cloned().collect()
    }
}

/// The names among `paths` directly in `dir`.
fn children<'a>(disk: &Disk, dir: &Path, paths: impl Iterator<Item = &'a PathBuf>) -> io::Result<Vec<String>> {
    if !disk.dirs.contains(dir) {
        return Err(not_found(dir));
    }
    Ok(paths
        .filter(|path| path.parent() == Some(dir))
        .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
        .collect())
}

impl Files for MemoryFiles {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        for ancestor in dir.ancestors() {
            disk.dirs.insert(ancestor.to_owned());
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = lock(&self.disk);
        children(&disk, dir, disk.files.keys())
    }
    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = lock(&self.disk);
        children(&disk, dir, disk.dirs.iter())
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let mut disk = lock(&self.disk);
        let file = match disk.files.get(path) {
            Some(file) => file.clone(),
            None if create => {
                let parent = path.parent().unwrap_or(Path::new("/"));
                if !disk.dirs.contains(parent) {
                    return Err(not_found(parent));
                }
                let file = Arc::new(Mutex::new(MemoryFile::default()));
                disk.files.insert(path.to_owned(), file.clone());
                disk.unsynced_entries.insert(path.to_owned());
                file
            }
            None => return Err(not_found(path)),
        };
        Ok(Arc::new(MemoryHandle { file, sync_fails: self.sync_fails.clone() }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        disk.unsynced_entries.remove(path);
        disk.files.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        disk.unsynced_entries.retain(|path| path.parent() != Some(dir));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_cut_keeps_only_what_was_synced() {
        let files = MemoryFiles::new();
        let dir = Path::new("/j");
        files.create_dir_all(dir).expect("mkdir");
        let a = files.open(&dir.join("a"), true).expect("open");
        a.write_at(b"durable", 0).expect("write");
        a.sync().expect("sync");
        files.sync_dir(dir).expect("sync dir");
        a.write_at(b"-lost", 7).expect("write");
        let b = files.open(&dir.join("b"), true).expect("open");
        b.write_at(b"x", 0).expect("write");
        b.sync().expect("sync");
        files.power_cut(Cut::DropUnsynced);
        assert_eq!(files.contents(&dir.join("a")).expect("a"), b"durable");
        assert!(files.contents(&dir.join("b")).is_none(), "its directory entry was never synced");

        a.write_at(b"-torn", 7).expect("write");
        files.power_cut(Cut::Torn(2));
        assert_eq!(files.contents(&dir.join("a")).expect("a"), b"durable-t");
    }
}
