//! The Helm chart: it lints, renders with default and non-default values, and what it renders
//! is accepted by the real apiserver (server-side dry run); bad values fail at install with the
//! field named; the CRDs it installs are `crds/` itself. (That its RBAC allows every call the
//! operator makes is proven by the operator test, which runs the operator as the chart's
//! ServiceAccount.)

use anyhow::Result;
use shardline_tests::kube::{chart_dir, helm, kubectl, ControlPlane};

fn custom_values() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kube/chart/custom-values.yaml").display().to_string()
}

#[tokio::test]
async fn the_chart_lints_renders_and_is_accepted_by_the_apiserver() -> Result<()> {
    let chart = chart_dir().display().to_string();
    let values = custom_values();
    helm(&["lint", "--strict", &chart])?;
    helm(&["lint", "--strict", &chart, "-f", &values])?;

    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    kubectl(&plane, &["create", "namespace", "streams"], "")?;

    // Defaults, CRDs included: every object accepted as it would be installed.
    let defaults = helm(&["template", "shardline", &chart, "--namespace", "streams", "--include-crds"])?;
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ConfigMap",
    ] {
        assert!(defaults.contains(&format!("kind: {kind}\n")), "no {kind} rendered");
    }
    kubectl(&plane, &["apply", "--server-side", "--dry-run=server", "-f", "-"], &defaults)?;
    // Restricted pod security: non-root, no privilege escalation, no capabilities, read-only root.
    for field in [
        "runAsNonRoot: true",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        "type: RuntimeDefault",
        "drop: [ALL]",
    ] {
        assert!(defaults.contains(field), "the operator pod lacks {field}");
    }

    // Non-default values reach the objects, and are accepted too.
    let custom = helm(&["template", "shardline", &chart, "--namespace", "streams", "-f", &values])?;
    for expected in [
        "image: \"registry.example.com/shardline/operator:1.2.3\"",
        "--image=registry.example.com/shardline/shard-server:1.2.3",
        "--default-zones=eu-west-1a,eu-west-1b,eu-west-1c",
        "--default-storage-class=fast-ssd",
        "--metrics-listen=0.0.0.0:9090",
        "replicas: 2",
        "name: streams-operator",
        "dedicated",
        "value: \"shardline_operator=debug\"",
        "name: KUBERNETES_SERVICE_HOST",
    ] {
        assert!(custom.contains(expected), "custom values lack {expected}:\n{custom}");
    }
    assert!(!custom.contains("kind: ConfigMap"), "dashboard disabled");
    kubectl(&plane, &["apply", "--server-side", "--dry-run=server", "-f", "-"], &custom)?;
    let monitored = helm(&["template", "shardline", &chart, "--set", "metrics.serviceMonitor.enabled=true"])?;
    assert_eq!(monitored.matches("kind: ServiceMonitor").count(), 2, "the operator's and the shard-servers'");

    // values.schema.json refuses bad values, naming them.
    for (set, field) in [
        ("operator.replicas=9", "/operator/replicas"),
        ("metrics.port=80", "/metrics/port"),
        ("operator.image.pullPolicy=Sometimes", "/operator/image/pullPolicy"),
        ("streamDefaults.zones=a", "/streamDefaults/zones"),
        ("unknown=1", "unknown"),
    ] {
        let err = helm(&["template", "shardline", &chart, "--set", set]).expect_err(set);
        assert!(err.to_string().contains(field), "{set}: {err}");
    }

    // The chart's CRDs are crds/ itself, never a copy.
    let shown = helm(&["show", "crds", &chart])?;
    for entry in std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds"))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(path)?;
        assert!(shown.contains(text.trim()), "helm show crds differs from crds/");
    }
    Ok(())
}
