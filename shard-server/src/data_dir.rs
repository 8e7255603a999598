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
