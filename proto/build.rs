//! Compiles the shardline.v1 protocol with protox, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/shardline/v1/records.proto",
        "proto/shardline/v1/admin.proto",
        "proto/shardline/v1/leases.proto",
        "proto/shardline/v1/cluster.proto",
        "proto/shardline/v1/raft.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
