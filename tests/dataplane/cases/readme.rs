//! README's "Try it with the AWS CLI" commands, run as written (with the AWS CLI on this
//! machine, v1 or v2) against a real standalone server: a newcomer's first steps must work
//! every time, with no race between creating the stream and writing to it.

use std::process::Command;

use shardline_tests::Server;

/// The first `sh` block under README's heading `title`.
fn readme_block(title: &str) -> anyhow::Result<String> {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))?;
    let section = readme.split(&format!("## {title}\n")).nth(1).ok_or_else(|| anyhow::anyhow!("no section {title}"))?;
    let block = section.split("```sh\n").nth(1).and_then(|b| b.split("```").next());
    block.map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no sh block under {title}"))
}

#[test]
fn readme_aws_cli_example_works_as_written() -> anyhow::Result<()> {
    let version = match Command::new("aws").arg("--version").output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
        }
        _ => {
            eprintln!("skipped: no AWS CLI on this machine");
            return Ok(());
        }
    };
    let mut script = readme_block("Try it with the AWS CLI")?;
    // As README says: AWS CLI v1 has no --cli-binary-format (and sends --data as given).
    if version.starts_with("aws-cli/1.") {
        script = script.replace(" --cli-binary-format raw-in-base64-out", "");
    }
    for attempt in 0..3 {
        let dir = tempfile::tempdir()?;
        let server = Server::start(&dir, &["--stream-transition-ms", "500"])?;
        let script = script.replace("E=http://127.0.0.1:4567", &format!("E={}", server.endpoint));
        let output = Command::new("bash").args(["-euo", "pipefail", "-c", &script]).output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "attempt {attempt}: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
        // get-records prints the record's data base64-encoded: "hello".
        assert!(stdout.contains("aGVsbG8="), "attempt {attempt}: no record read back:\n{stdout}");
    }
    Ok(())
}
