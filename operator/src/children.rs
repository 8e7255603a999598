//! The Kubernetes objects a `Stream` owns, built as plain values: one StatefulSet of
//! shard-servers per zone (spread by node affinity to the zone), a headless Service for their
//! stable names, a client Service that is the Kinesis endpoint, and a PodDisruptionBudget
//! letting one server at a time go. Every object carries the stream's labels and a controller
//! owner reference. Pure: the reconciler applies them with server-side apply.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, Secret, SecretVolumeSource, SecurityContext,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::Resource;

use crate::crd::stream::Stream;

/// The Kinesis (and gRPC) port of a shard-server.
pub const KINESIS_PORT: i32 = 4567;
/// The metrics port of a shard-server.
pub const METRICS_PORT: i32 = 9464;
/// The internal port of a shard-server: `Cluster` and `Admin`, for the operator only.
pub const INTERNAL_PORT: i32 = 4569;
/// The key of the internal token in its Secret.
pub const TOKEN_KEY: &str = "token";
/// Where shard-server pods mount the internal token's Secret.
const TOKEN_DIR: &str = "/etc/shardline/internal";
/// The environment variable `shard-server` reads its `--server-id` from.
pub const SERVER_ID_ENV: &str = "SHARDLINE_SERVER_ID";
/// The default zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Labels every object of a stream carries (and its pods are selected by).
pub fn labels(stream: &Stream) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "shard-server".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), stream.metadata.name.clone().unwrap_or_default()),
        ("app.kubernetes.io/managed-by".to_owned(), "shardline-operator".to_owned()),
    ])
}

/// The label selector of a stream's pods, as the scale subresource reports it.
pub fn selector(stream: &Stream) -> String {
    labels(stream).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn meta(stream: &Stream, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: stream.metadata.namespace.clone(),
        labels: Some(labels(stream)),
        owner_references: stream.controller_owner_ref(&()).map(|r: OwnerReference| vec![r]),
        ..ObjectMeta::default()
    }
}

/// One StatefulSet per zone (one without zones), named `<stream>-<zone index>`.
pub fn stateful_sets(stream: &Stream, image: &str) -> Vec<StatefulSet> {
    let name = stream.metadata.name.clone().unwrap_or_default();
    let zones: Vec<Option<String>> =
        if stream.spec.zones.is_empty() { vec![None] } else { stream.spec.zones.iter().cloned().map(Some).collect() };
    let key = stream.spec.topology_key.clone().unwrap_or_else(|| ZONE_LABEL.to_owned());
    zones
        .into_iter()
        .enumerate()
        .map(|(index, zone)| {
            let set_name = format!("{name}-{index}");
            let mut pod_labels = labels(stream);
            pod_labels.insert("shardline.io/zone-index".into(), index.to_string());
            let affinity = zone.map(|zone| Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: key.clone(),
                                operator: "In".into(),
                                values: Some(vec![zone]),
                            }]),
                            ..NodeSelectorTerm::default()
                        }],
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            });
            let container = Container {
                name: "shard-server".into(),
                image: Some(image.to_owned()),
                args: Some(vec![
                    "--cluster".into(),
                    "--data-dir".into(),
                    "/data".into(),
                    "--listen".into(),
                    format!("0.0.0.0:{KINESIS_PORT}"),
                    "--metrics-listen".into(),
                    format!("0.0.0.0:{METRICS_PORT}"),
                    "--internal-listen".into(),
                    format!("0.0.0.0:{INTERNAL_PORT}"),
                    "--internal-token-file".into(),
                    format!("{TOKEN_DIR}/{TOKEN_KEY}"),
                ]),
                // `--cluster` needs the server's id: its pod name, from the downward API (a
                // StatefulSet pod keeps its name, and so its shards, across restarts).
                env: Some(vec![EnvVar {
                    name: SERVER_ID_ENV.into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..ObjectFieldSelector::default()
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                }]),
                ports: Some(vec![
                    ContainerPort {
                        name: Some("kinesis".into()),
                        container_port: KINESIS_PORT,
                        ..ContainerPort::default()
                    },
                    ContainerPort {
                        name: Some("metrics".into()),
                        container_port: METRICS_PORT,
                        ..ContainerPort::default()
                    },
                    ContainerPort {
                        name: Some("internal".into()),
                        container_port: INTERNAL_PORT,
                        ..ContainerPort::default()
                    },
                ]),
                resources: stream.spec.resources.clone(),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
                    ..SecurityContext::default()
                }),
                readiness_probe: Some(Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some("/health".into()),
                        port: IntOrString::String("kinesis".into()),
                        ..HTTPGetAction::default()
                    }),
                    period_seconds: Some(5),
                    ..Probe::default()
                }),
                volume_mounts: Some(vec![
                    VolumeMount { name: "data".into(), mount_path: "/data".into(), ..VolumeMount::default() },
                    VolumeMount {
                        name: "internal-token".into(),
                        mount_path: TOKEN_DIR.into(),
                        read_only: Some(true),
                        ..VolumeMount::default()
                    },
                ]),
                ..Container::default()
            };
            let claim = PersistentVolumeClaim {
                // Labelled so that deleting the stream can find and delete its volumes.
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(labels(stream)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: stream.spec.storage.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".into(),
                            Quantity(stream.spec.storage.size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            };
            StatefulSet {
                metadata: meta(stream, set_name.clone()),
                spec: Some(StatefulSetSpec {
                    replicas: Some(i32::try_from(stream.spec.servers_per_zone).unwrap_or(1)),
                    service_name: Some(format!("{name}-servers")),
                    selector: LabelSelector { match_labels: Some(pod_labels.clone()), ..LabelSelector::default() },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                        // Shard-servers never call the Kubernetes API: no token in their pods.
                        spec: Some(PodSpec {
                            containers: vec![container],
                            // Readable by the pod's group (fsGroup) only.
                            volumes: Some(vec![Volume {
                                name: "internal-token".into(),
                                secret: Some(SecretVolumeSource {
                                    secret_name: Some(token_secret_name(stream)),
                                    default_mode: Some(0o440),
                                    ..SecretVolumeSource::default()
                                }),
                                ..Volume::default()
                            }]),
                            affinity,
                            automount_service_account_token: Some(false),
                            // Pod Security Standard "restricted"; the volume is group-writable.
                            security_context: Some(PodSecurityContext {
                                run_as_non_root: Some(true),
                                run_as_user: Some(65532),
                                run_as_group: Some(65532),
                                fs_group: Some(65532),
                                seccomp_profile: Some(SeccompProfile {
                                    type_: "RuntimeDefault".into(),
                                    ..SeccompProfile::default()
                                }),
                                ..PodSecurityContext::default()
                            }),
                            ..PodSpec::default()
                        }),
                    },
                    volume_claim_templates: Some(vec![claim]),
                    pod_management_policy: Some("Parallel".into()),
                    ..StatefulSetSpec::default()
                }),
                ..StatefulSet::default()
            }
        })
        .collect()
}

/// The name of the Secret holding a stream's internal token.
pub fn token_secret_name(stream: &Stream) -> String {
    format!("{}-internal-token", stream.metadata.name.as_deref().unwrap_or_default())
}

/// The Secret holding `token`, the credential of the stream's shard-servers' internal port
/// (mounted into their pods; the operator reads it to call them). Owned by the stream.
pub fn token_secret(stream: &Stream, token: &str) -> Secret {
    Secret {
        metadata: meta(stream, token_secret_name(stream)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(TOKEN_KEY.to_owned(), ByteString(token.as_bytes().to_vec()))])),
        ..Secret::default()
    }
}

/// The headless Service giving each server a stable DNS name, and the client Service that is
/// the stream's Kinesis endpoint.
pub fn services(stream: &Stream) -> [Service; 2] {
    let name = stream.metadata.name.clone().unwrap_or_default();
    let ports = vec![
        // Server-side apply keys ports by (port, protocol); old apiservers do not default it.
        ServicePort {
            name: Some("kinesis".into()),
            port: KINESIS_PORT,
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        },
        ServicePort {
            name: Some("metrics".into()),
            port: METRICS_PORT,
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        },
    ];
    let headless = Service {
        metadata: meta(stream, format!("{name}-servers")),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels(stream)),
            ports: Some(ports.clone()),
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let client = Service {
        metadata: meta(stream, name),
        spec: Some(ServiceSpec { selector: Some(labels(stream)), ports: Some(ports), ..ServiceSpec::default() }),
        ..Service::default()
    };
    [headless, client]
}

/// The PodDisruptionBudget (one server down at a time), as JSON so the reconciler can send it
/// as `policy/v1` or, on clusters that serve only that (Kubernetes 1.20), `policy/v1beta1`.
pub fn disruption_budget(stream: &Stream, api_version: &str) -> serde_json::Value {
    let name = stream.metadata.name.clone().unwrap_or_default();
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "PodDisruptionBudget",
        "metadata": meta(stream, name),
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": labels(stream) },
        },
    })
}

/// The endpoint clients use: the client Service's DNS name.
pub fn endpoint(stream: &Stream) -> String {
    let name = stream.metadata.name.clone().unwrap_or_default();
    let namespace = stream.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    format!("http://{name}.{namespace}.svc:{KINESIS_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::stream::StreamSpec;

    fn stream(zones: &[&str]) -> Stream {
        let spec: StreamSpec = serde_json::from_value(serde_json::json!({
            "shards": 4,
            "zones": zones,
            "serversPerZone": 2,
            "storage": { "size": "5Gi", "storageClassName": "fast" },
        }))
        .expect("spec");
        let mut stream = Stream::new("orders", spec);
        stream.metadata.namespace = Some("prod".into());
        stream.metadata.uid = Some("uid-1".into());
        stream
    }

    #[test]
    fn one_stateful_set_per_zone_pinned_to_it() {
        let sets = stateful_sets(&stream(&["a", "b", "c"]), "shardline/shard-server:dev");
        assert_eq!(sets.len(), 3);
        let spec = sets[1].spec.as_ref().expect("spec");
        assert_eq!(sets[1].metadata.name.as_deref(), Some("orders-1"));
        assert_eq!(spec.replicas, Some(2));
        let term = &spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.affinity.clone())
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("affinity")
            .node_selector_terms[0];
        let requirement = &term.match_expressions.as_ref().expect("expressions")[0];
        assert_eq!((requirement.key.as_str(), requirement.values.clone()), (ZONE_LABEL, Some(vec!["b".to_owned()])));
        let container = &spec.template.spec.as_ref().expect("pod").containers[0];
        let args = container.args.clone().unwrap_or_default();
        assert!(args.contains(&"--cluster".to_owned()) && args.contains(&"/data".to_owned()));
        let id = container.env.as_ref().and_then(|e| e.iter().find(|v| v.name == SERVER_ID_ENV)).expect("server id");
        let field = id.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
        assert_eq!(field, Some("metadata.name"), "the server id is the pod's name");
        let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        assert_eq!(flag("--internal-listen").as_deref(), Some("0.0.0.0:4569"));
        let token_file = flag("--internal-token-file").expect("token file");
        let pod = spec.template.spec.as_ref().expect("pod");
        let volume = pod.volumes.iter().flatten().find(|v| v.name == "internal-token").expect("token volume");
        let secret = volume.secret.as_ref().expect("from a secret");
        assert_eq!(secret.secret_name.as_deref(), Some("orders-internal-token"));
        let mount = container.volume_mounts.iter().flatten().find(|m| m.name == "internal-token").expect("mounted");
        assert_eq!(format!("{}/{}", mount.mount_path, TOKEN_KEY), token_file, "the flag names the mounted key");
        let token = token_secret(&stream(&[]), "t");
        assert_eq!(token.metadata.name.as_deref(), Some("orders-internal-token"));
        assert!(token.metadata.owner_references.is_some(), "deleted with its stream");
        let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
        assert_eq!(claim.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()), Some("fast"));
        let owner = &sets[0].metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Stream", Some(true)));
        assert_eq!(stateful_sets(&stream(&[]), "img").len(), 1, "no zones, one set");
    }

    #[test]
    fn services_budget_and_endpoint() {
        let s = stream(&[]);
        let [headless, client] = services(&s);
        assert_eq!(headless.spec.as_ref().and_then(|p| p.cluster_ip.as_deref()), Some("None"));
        assert_eq!(client.metadata.name.as_deref(), Some("orders"));
        let pdb = disruption_budget(&s, "policy/v1beta1");
        assert_eq!(pdb["apiVersion"], "policy/v1beta1");
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        assert_eq!(endpoint(&s), "http://orders.prod.svc:4567");
        assert!(selector(&s).contains("app.kubernetes.io/instance=orders"));
    }
}
