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

    // A directory left open (an older server's, or a group-writable volume) is closed down.
    let old = root.path().join("old");
    std::fs::create_dir(&old)?;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o2775))?;
    std::fs::write(old.join("LOG.old"), b"records")?;
    std::fs::set_permissions(old.join("LOG.old"), std::fs::Permissions::from_mode(0o644))?;
    let server = Server::start_at_dir(&old, &[])?;
    create_active_stream(&server.client(), "secret", 1).await?;
    assert_eq!(std::fs::metadata(&old)?.permissions().mode() & 0o777, 0o700);
    assert_eq!(shared_entries(&old)?, Vec::<String>::new());
    Ok(())
}
