//! The data directory holds every record and the server's secrets: the server makes it and
//! everything in it private to its user, an existing shared one included.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use shardline_tests::{create_active_stream, Server};

/// Every entry under `dir` whose mode lets its group or others in.
fn shared_entries(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut shared = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.permissions().mode() & 0o077 != 0 {
            shared.push(format!("{} {:o}", entry.path().display(), meta.permissions().mode()));
        }
        if meta.is_dir() {
            shared.extend(shared_entries(&entry.path())?);
        }
    }
    Ok(shared)
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_private() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let fresh = root.path().join("fresh");
    let server = Server::start_at_dir(&fresh, &[])?;
    create_active_stream(&server.client(), "secret", 1).await?;
    server
        .client()
        .put_record()
        .stream_name("secret")
        .partition_key("k")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send()
        .await?;
    assert_eq!(std::fs::metadata(&fresh)?.permissions().mode() & 0o777, 0o700);
    assert_eq!(shared_entries(&fresh)?, Vec::<String>::new());
    drop(server);

    // A directory left open (a group-writable volume, or a copy made with another umask) is
    // closed down.
    let old = root.path().join("old");
    std::fs::create_dir(&old)?;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o2775))?;
    std::fs::write(old.join("FORMAT"), std::fs::read(fresh.join("FORMAT"))?)?;
    std::fs::set_permissions(old.join("FORMAT"), std::fs::Permissions::from_mode(0o644))?;
    let server = Server::start_at_dir(&old, &[])?;
    create_active_stream(&server.client(), "secret", 1).await?;
    assert_eq!(std::fs::metadata(&old)?.permissions().mode() & 0o777, 0o700);
    assert_eq!(shared_entries(&old)?, Vec::<String>::new());
    Ok(())
}

/// A data directory written in the earlier storage format (records in RocksDB at its top) is
/// refused at start with a message saying so, and left untouched.
#[test]
fn a_data_directory_of_the_earlier_format_is_refused() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let old = root.path().join("old");
    std::fs::create_dir(&old)?;
    std::fs::write(old.join("CURRENT"), b"MANIFEST-000012\n")?;
    std::fs::write(old.join("000011.log"), b"records")?;
    let out = std::process::Command::new(shardline_tests::server_binary()?)
        .args(["--standalone", "--listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&old)
        .output()?;
    assert!(!out.status.success(), "the server must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another storage format"), "stderr: {stderr}");
    assert!(stderr.contains("start with an empty data directory"), "stderr: {stderr}");
    let mut left: Vec<_> = std::fs::read_dir(&old)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    left.sort();
    assert_eq!(left, vec!["000011.log", "CURRENT"], "nothing written into it");
    Ok(())
}
