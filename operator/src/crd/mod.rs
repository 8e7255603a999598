//! The custom resources: `Stream` and `Consumer` in `shardline.io/v1alpha1`, with their
//! conditions. `crdgen` prints them; `crds/` holds the output and a test keeps it in step.

pub mod condition;
pub mod consumer;
pub mod stream;

use kube::CustomResourceExt;

/// Every CRD as YAML documents, in a fixed order: (file name, YAML).
pub fn rendered() -> crate::Result<Vec<(String, String)>> {
    let crds = [stream::Stream::crd(), consumer::Consumer::crd()];
    crds.iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((format!("{name}.yaml"), serde_yaml::to_string(crd)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// `crds/` must hold exactly what the code generates (`cargo run --bin crdgen -- crds`).
    #[test]
    fn crds_directory_matches_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        for (name, yaml) in super::rendered().expect("render") {
            let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            assert!(on_disk == yaml, "crds/{name} is stale: run `make crds`");
        }
    }

    #[test]
    fn stream_crd_has_scale_printer_columns_and_validation() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(super::stream::Stream::crd()).expect("json");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["scale"]["specReplicasPath"], ".spec.shards");
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(columns, vec!["Shards", "Retention", "Replicas", "Under-Replicated", "Phase", "Ready", "Age"]);
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["shards"]["minimum"].as_f64(), Some(1.0));
        assert_eq!(spec["retentionHours"]["minimum"].as_f64(), Some(24.0));
        assert_eq!(spec["retentionHours"]["maximum"].as_f64(), Some(8760.0));
        assert_eq!(spec["replicationFactor"]["default"].as_u64(), Some(3));
        assert_eq!(spec["replicationFactor"]["maximum"].as_f64(), Some(5.0));
    }
}
