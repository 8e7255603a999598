//! The end-to-end cases on one real three-zone cluster (`shardline_tests::kube::Cluster`),
//! one after another: the chart installs the operator (two replicas), then a Stream's whole
//! life, then an on-demand Stream and a leader failover.

use anyhow::Result;
use shardline_tests::kube::Cluster;

#[tokio::test]
async fn on_real_nodes_the_chart_runs_streams_across_zones() -> Result<()> {
    let cluster = Cluster::start().await?;
    images_match_the_dockerfile()?;
    cluster.install_chart(2).await?;
    super::operator::stream_lifecycle(&cluster).await?;
    super::on_demand::on_demand(&cluster).await?;
    Ok(())
}

/// USER, ENTRYPOINT, CMD, EXPOSE and VOLUME of one stage of `images/Dockerfile`, as an OCI
/// image config states them.
fn dockerfile_stage(stage: &str) -> Result<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/Dockerfile");
    let text = std::fs::read_to_string(path)?;
    let mut inside = false;
    let mut config = serde_json::json!({});
    for line in text.lines().map(str::trim) {
        let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => inside = rest.to_ascii_lowercase().ends_with(&format!(" as {stage}")),
            "USER" if inside => config["User"] = rest.into(),
            "ENTRYPOINT" if inside => config["Entrypoint"] = serde_json::from_str(rest)?,
            "CMD" if inside => config["Cmd"] = serde_json::from_str(rest)?,
            "EXPOSE" if inside => {
                config["ExposedPorts"] =
                    rest.split_whitespace().map(|p| (format!("{p}/tcp"), serde_json::json!({}))).collect();
            }
            "VOLUME" if inside => config["Volumes"] = serde_json::json!({ rest: {} }),
            _ => {}
        }
    }
    anyhow::ensure!(config.get("Entrypoint").is_some(), "no stage {stage} in images/Dockerfile");
    Ok(config)
}

/// The same settings of an image buildah built.
fn built_config(image: &str) -> Result<serde_json::Value> {
    let output = std::process::Command::new("buildah").args(["inspect", "--type", "image", image]).output()?;
    anyhow::ensure!(output.status.success(), "buildah inspect {image}: {}", String::from_utf8_lossy(&output.stderr));
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let full = &inspected["OCIv1"]["config"];
    let mut config = serde_json::json!({});
    for key in ["User", "Entrypoint", "Cmd", "ExposedPorts", "Volumes"] {
        if let Some(value) = full.get(key).filter(|v| !v.is_null()) {
            config[key] = value.clone();
        }
    }
    Ok(config)
}

/// The images the nodes run declare what `images/Dockerfile` declares.
fn images_match_the_dockerfile() -> Result<()> {
    for (stage, image) in [("shard-server", Cluster::shard_server_image()), ("operator", Cluster::operator_image())] {
        assert_eq!(built_config(&image)?, dockerfile_stage(stage)?, "{image} and the Dockerfile's {stage} stage");
    }
    Ok(())
}
