//! The set-up scripts README's commands run: `scripts/install-deps.sh --check` finds libclang
//! exactly where clang-sys (RocksDB's bindgen) would load it from, and not a different
//! library with a similar name (Debian 12 ships `libclang-cpp.so.14` without `libclang`).

use std::path::Path;
use std::process::Command;

/// Runs the check against a fake root holding `files`; whether it found libclang.
fn check(files: &[&str]) -> anyhow::Result<(bool, String)> {
    let root = tempfile::tempdir()?;
    for file in files {
        let path = root.path().join(file.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().ok_or_else(|| anyhow::anyhow!("no parent"))?)?;
        std::fs::write(&path, b"")?;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-deps.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg("--check")
        .env("SHARDLINE_LIBCLANG_ROOT", root.path())
        .env_remove("LIBCLANG_PATH")
        .output()?;
    Ok((output.status.success(), String::from_utf8_lossy(&output.stdout).trim().to_owned()))
}

#[test]
fn the_libclang_check_matches_what_clang_sys_loads() -> anyhow::Result<()> {
    // A fresh Debian 12: only libclang-cpp, which is not libclang.
    let (found, said) =
        check(&["/usr/lib/llvm-14/lib/libclang-cpp.so.14", "/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"])?;
    assert!(!found, "libclang-cpp is not libclang: {said}");
    assert_eq!(said, "libclang: missing");
    // What libclang-dev and its runtime install, in each naming clang-sys accepts.
    for file in [
        "/usr/lib/llvm-14/lib/libclang.so",
        "/usr/lib/llvm-14/lib/libclang-14.so.1",
        "/usr/lib/x86_64-linux-gnu/libclang-14.so.14",
        "/usr/lib/x86_64-linux-gnu/libclang.so.1",
        "/usr/local/lib/libclang-15.so",
    ] {
        let (found, said) = check(&["/usr/lib/llvm-14/lib/libclang-cpp.so.14", file])?;
        assert!(found, "{file} is libclang: {said}");
        assert!(said.ends_with(file), "{said}");
    }
    Ok(())
}
