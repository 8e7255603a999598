//! The CRDs in `crds/` on a real apiserver: they install and become Established, good
//! manifests are stored with their defaults, bad ones are rejected with the field named, and
//! the scale subresource moves `.spec.shards` (what `kubectl scale` does).

use kube::api::{Api, Patch, PatchParams, PostParams};
use shardline_operator::crd::stream::Stream;
use shardline_tests::kube::{install_crds, ControlPlane};

fn stream(name: &str, spec: serde_json::Value) -> anyhow::Result<Stream> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "shardline.io/v1alpha1",
        "kind": "Stream",
        "metadata": { "name": name, "namespace": "default" },
        "spec": spec,
    }))?)
}

#[tokio::test]
async fn crds_validate_default_and_scale_on_a_real_apiserver() -> anyhow::Result<()> {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let client = plane.client()?;
    install_crds(&client).await?;
    let streams: Api<Stream> = Api::namespaced(client.clone(), "default");

    let created =
        streams.create(&PostParams::default(), &stream("orders", serde_json::json!({ "shards": 4 }))?).await?;
    assert_eq!(created.spec.retention_hours, 24, "the schema's default is applied by the apiserver");
    assert_eq!(created.spec.servers_per_zone, 1);
    assert_eq!(created.spec.storage.size, "10Gi");

    let bad = [
        (serde_json::json!({ "shards": 0 }), "spec.shards"),
        (serde_json::json!({ "shards": 2, "retentionHours": 10 }), "spec.retentionHours"),
        (serde_json::json!({ "shards": 2, "retentionHours": 9000 }), "spec.retentionHours"),
        (serde_json::json!({ "shards": 2, "streamMode": "SOMETIMES" }), "spec.streamMode"),
        (serde_json::json!({ "shards": 2, "storage": { "size": "lots" } }), "spec.storage.size"),
    ];
    for (index, (spec, field)) in bad.into_iter().enumerate() {
        let manifest = serde_json::json!({
            "apiVersion": "shardline.io/v1alpha1",
            "kind": "Stream",
            "metadata": { "name": format!("bad-{index}"), "namespace": "default" },
            "spec": spec,
        });
        let raw: kube::api::DynamicObject = serde_json::from_value(manifest)?;
        let resource = kube::discovery::ApiResource::erase::<Stream>(&());
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
        let err = api.create(&PostParams::default(), &raw).await.expect_err("invalid manifest accepted");
        let text = err.to_string();
        assert!(text.contains(field), "rejection of {field} should name it: {text}");
    }

    // The objects the operator builds for a stream are accepted by the apiserver as they are,
    // the budget under whichever policy version it serves (1.20: policy/v1beta1 only).
    let zoned = streams
        .create(&PostParams::default(), &stream("zoned", serde_json::json!({ "shards": 2, "zones": ["a", "b"] }))?)
        .await?;
    let ssa = PatchParams::apply("shardline-operator").force();
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), "default");
    for set in shardline_operator::children::stateful_sets(&zoned, "shardline/shard-server:test") {
        let name = set.metadata.name.clone().unwrap_or_default();
        sets.patch(&name, &ssa, &Patch::Apply(&set)).await?;
    }
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    for service in shardline_operator::children::services(&zoned) {
        let name = service.metadata.name.clone().unwrap_or_default();
        services.patch(&name, &ssa, &Patch::Apply(&service)).await?;
    }
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    let policy = discovery.get("policy").expect("the policy group is served");
    let (pdb_resource, _) = policy
        .versioned_resources(policy.preferred_version_or_latest())
        .into_iter()
        .find(|(r, _)| r.kind == "PodDisruptionBudget")
        .expect("PodDisruptionBudget is served");
    let pdb = shardline_operator::children::disruption_budget(&zoned, &pdb_resource.api_version);
    let pdbs: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "default", &pdb_resource);
    pdbs.patch("zoned", &ssa, &Patch::Apply(&pdb)).await?;
    assert_eq!(sets.list(&Default::default()).await?.items.len(), 2, "one StatefulSet per zone");
    let owned = sets.get("zoned-0").await?;
    assert_eq!(owned.metadata.owner_references.map(|o| o[0].name.clone()), Some("zoned".to_owned()));

    // The manifests in examples/ are valid as written (server-side dry run).
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    let mut example: Stream = serde_yaml::from_str(&std::fs::read_to_string(examples.join("stream.yaml"))?)?;
    example.metadata.name = Some("example".into());
    let accepted = streams.create(&dry_run, &example).await?;
    assert_eq!(accepted.spec.retention_hours, 48);
    let consumer: shardline_operator::crd::consumer::Consumer =
        serde_yaml::from_str(&std::fs::read_to_string(examples.join("consumer.yaml"))?)?;
    let consumers: Api<shardline_operator::crd::consumer::Consumer> = Api::namespaced(client.clone(), "default");
    consumers.create(&dry_run, &consumer).await?;

    // `kubectl scale stream/orders --replicas=8` goes through the scale subresource.
    let scale = serde_json::json!({ "spec": { "replicas": 8 } });
    streams.patch_scale("orders", &PatchParams::default(), &Patch::Merge(&scale)).await?;
    assert_eq!(streams.get("orders").await?.spec.shards, 8);
    Ok(())
}
