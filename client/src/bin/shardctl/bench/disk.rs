//! Bytes the block device under a path has written, from `/proc/diskstats`: the bench reads
//! it before and after the ingest phase to report device bytes per acknowledged byte (write
//! amplification) of a server whose data directory is on this machine.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use anyhow::Context as _;

/// The block device holding a path, as `/proc/diskstats` names it.
#[derive(Debug, Clone)]
pub struct Device {
    major: u64,
    minor: u64,
    /// Its kernel name (`vda`, `nvme0n1p2`, `dm-0`).
    pub name: String,
}

/// Linux's `major(dev)` and `minor(dev)`.
fn split(dev: u64) -> (u64, u64) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major, minor)
}

impl Device {
    /// The device of the file system holding `path`.
    pub fn of(path: &Path) -> anyhow::Result<Self> {
        let dev = std::fs::metadata(path).with_context(|| format!("--data-dir {}", path.display()))?.dev();
        let (major, minor) = split(dev);
        let stats = std::fs::read_to_string("/proc/diskstats").context("reading /proc/diskstats")?;
        let name = find(&stats, major, minor)
            .map(|(name, _)| name)
            .with_context(|| format!("no device {major}:{minor} (holding {}) in /proc/diskstats", path.display()))?;
        Ok(Self { major, minor, name })
    }

    /// Bytes written to the device since boot.
    pub fn bytes_written(&self) -> anyhow::Result<u64> {
        let stats = std::fs::read_to_string("/proc/diskstats").context("reading /proc/diskstats")?;
        find(&stats, self.major, self.minor).map(|(_, bytes)| bytes).context("the device left /proc/diskstats")
    }
}

/// The name and bytes written (sectors written × 512) of device `major:minor`.
fn find(stats: &str, major: u64, minor: u64) -> Option<(String, u64)> {
    stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (ma, mi) = (fields.first()?.parse::<u64>().ok()?, fields.get(1)?.parse::<u64>().ok()?);
        if (ma, mi) != (major, minor) {
            return None;
        }
        let sectors: u64 = fields.get(9)?.parse().ok()?;
        Some(((*fields.get(2)?).to_owned(), sectors * 512))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
 254       0 vda 951623 37244 141999802 1145005 1427853 330310 360404296 881435 1 276216 2086428 109736 91 280231504 36782 366337 23205
 254       1 vda1 1000 0 2000 10 3000 0 4096 20 0 30 30 0 0 0 0 0 0
 253       0 dm-0 5 0 40 1 6 0 80 2 0 3 3
";

    #[test]
    fn finds_the_device_and_its_sectors_written() {
        assert_eq!(find(SAMPLE, 254, 0), Some(("vda".into(), 360_404_296 * 512)));
        assert_eq!(find(SAMPLE, 254, 1), Some(("vda1".into(), 4096 * 512)));
        assert_eq!(find(SAMPLE, 253, 0), Some(("dm-0".into(), 80 * 512)));
        assert_eq!(find(SAMPLE, 8, 0), None);
    }

    #[test]
    fn splits_device_numbers_as_linux_does() {
        assert_eq!(split(0xfe00), (254, 0));
        assert_eq!(split(0xfe01), (254, 1));
        assert_eq!(split((259u64 << 8) | 3), (259, 3));
    }
}
