//! `shardline-nodes` (`make nodes`): the kube tests' real Kubernetes — control plane,
//! controllers and three nodes in zones a, b and c, with the shard-server and operator images
//! loaded — kept running for a person to try the chart and the examples by hand. Prints how to
//! reach it; Ctrl-C (or SIGTERM) tears it all down.

use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = shardline_tests::kube::Cluster::start().await?;
    let kubeconfig = cluster.kubeconfig_path();
    println!("three nodes Ready (zone-a, zone-b, zone-c); apiserver {}", cluster.plane.url);
    println!("export KUBECONFIG={}", kubeconfig.display());
    println!(
        "images: {} and {}",
        shardline_tests::kube::Cluster::shard_server_image(),
        shardline_tests::kube::Cluster::operator_image()
    );
    println!(
        "in-cluster clients reach the apiserver at {}:{} (no kube-proxy): set KUBERNETES_SERVICE_HOST/PORT, e.g. with the chart's operator.env",
        shardline_tests::kube::nodes::APISERVER_ADDRESS,
        cluster.apiserver_port()?
    );
    println!("Ctrl-C tears the cluster down");
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(cluster);
    Ok(())
}
