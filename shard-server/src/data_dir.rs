//! The data directory's layout: `FORMAT` (the storage format, checked at start), `meta/`
//! (RocksDB: catalog, leases, counters, secrets) and `log/` (the journal of records).
//!
//! The data directory holds every record and the server's secrets (the iterator key, the
//! internal token): only the server's user may read it. The process's umask is set to 077, so
//! everything RocksDB creates is 0600 (0700 for directories); a directory that is open to its
//! group or others (an older server's, or a volume mounted group-writable for `fsGroup`) is
//! closed down on open, and the server refuses to start if it cannot be.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// It cannot be created or inspected.
    #[error("data directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is readable by others and its mode cannot be changed.
    #[error(
        "data directory {path} is open to other users (mode {mode:o}) and cannot be made private: {source}; \
         chmod it to 0700 and its files to 0600, as the server's user"
    )]
    Exposed {
        /// The path.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// Why chmod failed.
        #[source]
        source: std::io::Error,
    },
    /// It was written in another storage format.
    #[error(
        "data directory {path} was written in another storage format ({found}); this server stores \
         records in a journal (format {}) and cannot read it: start with an empty data directory",
        FORMAT.trim()
    )]
    Format {
        /// The path.
        path: PathBuf,
        /// What it holds.
        found: String,
    },
}

/// The storage format this server writes, as `FORMAT` states it.
pub const FORMAT: &str = "shardline-data 2\n";

/// Where the parts of a data directory live.
#[derive(Debug, Clone)]
pub struct Layout {
    /// RocksDB's directory.
    pub meta: PathBuf,
    /// The journal's directory.
    pub log: PathBuf,
}

/// Checks that `dir` (already prepared) is empty or of this server's storage format, and
/// marks a new one with it.
pub fn check_format(dir: &Path) -> Result<Layout, DataDirError> {
    let layout = Layout { meta: dir.join("meta"), log: dir.join("log") };
    let format = dir.join("FORMAT");
    match std::fs::read_to_string(&format) {
        Ok(found) if found == FORMAT => return Ok(layout),
        Ok(found) => {
            return Err(DataDirError::Format { path: dir.to_owned(), found: found.trim().chars().take(64).collect() })
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(DataDirError::Io { path: format, source: err }),
    }
    // A freshly formatted volume holds only `lost+found`.
    let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
    let occupied = entries.any(|entry| entry.map_or(true, |e| e.file_name() != "lost+found"));
    if occupied {
        return Err(DataDirError::Format { path: dir.to_owned(), found: "an earlier format (no FORMAT file)".into() });
    }
    let temporary = dir.join("FORMAT.new");
    std::fs::write(&temporary, FORMAT).map_err(io(&temporary))?;
    std::fs::File::open(&temporary).and_then(|f| f.sync_all()).map_err(io(&temporary))?;
    std::fs::rename(&temporary, &format).map_err(io(&format))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(layout)
}

/// Permission bits of the group and others.
const SHARED: u32 = 0o077;

/// Creates `dir` (0700) if needed and makes it and everything in it private to this user.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(SHARED));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    let mode = std::fs::metadata(dir).map_err(io(dir))?.permissions().mode();
    if mode & SHARED != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|source| DataDirError::Exposed { path: dir.to_owned(), mode: mode & 0o7777, source })?;
        tracing::warn!(path = %dir.display(), mode = format!("{:o}", mode & 0o7777), "data directory was open to other users: now 0700");
    }
    close_down(dir)
}

/// Wraps an I/O failure on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError {
    let path = path.to_owned();
    move |source| DataDirError::Io { path, source }
}

/// Removes group and other permissions from every entry under `dir`.
fn close_down(dir: &Path) -> Result<(), DataDirError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & SHARED != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(|source| DataDirError::Exposed { path: path.clone(), mode: mode & 0o7777, source })?;
        }
        if meta.is_dir() {
            close_down(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_format_is_refused_and_a_new_directory_is_marked() {
        let root = tempfile::tempdir().expect("tempdir");
        let fresh = root.path().join("fresh");
        prepare(&fresh).expect("prepare");
        std::fs::create_dir(fresh.join("lost+found")).expect("mkdir");
        let layout = check_format(&fresh).expect("a new directory (a fresh volume) is accepted");
        assert_eq!(layout.log, fresh.join("log"));
        assert_eq!(std::fs::read_to_string(fresh.join("FORMAT")).expect("format"), FORMAT);
        check_format(&fresh).expect("and accepted again");

        // What the earlier format left: RocksDB's files at the top.
        let old = root.path().join("old");
        std::fs::create_dir(&old).expect("mkdir");
        std::fs::write(old.join("CURRENT"), b"MANIFEST-000005\n").expect("write");
        let err = check_format(&old).expect_err("refused");
        assert!(err.to_string().contains("another storage format"), "{err}");
        assert!(!old.join("FORMAT").exists(), "nothing is written into it");

        std::fs::write(fresh.join("FORMAT"), b"shardline-data 9\n").expect("write");
        assert!(check_format(&fresh).is_err());
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o7777
    }

    #[test]
    fn a_shared_directory_and_its_files_are_made_private() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2775)).expect("chmod");
        std::fs::write(dir.join("000001.log"), b"records").expect("write");
        std::fs::set_permissions(dir.join("000001.log"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        prepare(&dir).expect("prepared");
        assert_eq!(mode(&dir) & 0o777, 0o700);
        assert_eq!(mode(&dir.join("000001.log")), 0o600);
        let fresh = root.path().join("fresh/nested");
        prepare(&fresh).expect("created");
        assert_eq!(mode(&fresh), 0o700);
        std::fs::write(fresh.join("new"), b"x").expect("write");
        assert_eq!(mode(&fresh.join("new")), 0o600, "the umask keeps new files private");
    }
}
