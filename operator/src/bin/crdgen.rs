//! `crdgen`: prints every Shardline CRD as YAML (`crdgen`), or writes them into a directory
//! (`crdgen DIR`, one file per CRD, as `crds/` holds them).

fn main() -> anyhow::Result<()> {
    let rendered = shardline_operator::crd::rendered()?;
    match std::env::args().nth(1) {
        Some(dir) => {
            for (name, yaml) in rendered {
                std::fs::write(std::path::Path::new(&dir).join(name), yaml)?;
            }
        }
        None => {
            for (_, yaml) in rendered {
                println!("---\n{yaml}");
            }
        }
    }
    Ok(())
}
