//! Bytes the block device under a path has written, from `/proc/diskstats`: the bench reads
//! it before and after the ingest phase to report device bytes per acknowledged byte (write
//! amplification) of a server whose data directory is on this machine.
//!
//! The device is the one whose `major:minor` equals the path's `st_dev`, matched exactly, so a
//! partition (`vda1`) or a device-mapper volume (`dm-0`) is measured as itself, not as its
//! disk. A file system with an anonymous device number (btrfs) is followed to its mount
//! source in `/proc/self/mountinfo`. The counter covers every writer of the device.

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
        if let Some((name, _)) = find(&stats, major, minor) {
            return Ok(Self { major, minor, name });
        }
        // An anonymous device number: the mount's source may be a block device.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        if let Some(source) = mount_source(&mountinfo, major, minor).filter(|s| s.starts_with("/dev/")) {
            let rdev = std::fs::metadata(source).with_context(|| format!("mount source {source}"))?.rdev();
            let (major, minor) = split(rdev);
            if let Some((name, _)) = find(&stats, major, minor) {
                return Ok(Self { major, minor, name });
            }
        }
        anyhow::bail!(
            "no device {major}:{minor} (holding {}) in /proc/diskstats: tmpfs, overlayfs and network file \
             systems have no block device to measure",
            path.display()
        )
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

/// The mount source (the second field after ` - `) of the mount whose device is
/// `major:minor` in `/proc/self/mountinfo`.
fn mount_source(mountinfo: &str, major: u64, minor: u64) -> Option<&str> {
    let wanted = format!("{major}:{minor}");
    mountinfo.lines().find_map(|line| {
        let (mount, super_block) = line.split_once(" - ")?;
        if mount.split_whitespace().nth(2)? != wanted {
            return None;
        }
        super_block.split_whitespace().nth(1)
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
    fn follows_an_anonymous_device_to_its_mount_source() {
        let mountinfo = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
61 27 0:45 /@home /home rw,relatime shared:2 - btrfs /dev/nvme0n1p3 rw,ssd
70 27 0:46 / /tmp rw - tmpfs tmpfs rw
";
        assert_eq!(mount_source(mountinfo, 0, 45), Some("/dev/nvme0n1p3"));
        assert_eq!(mount_source(mountinfo, 0, 46), Some("tmpfs"));
        assert_eq!(mount_source(mountinfo, 254, 0), Some("/dev/vda"));
        assert_eq!(mount_source(mountinfo, 0, 47), None);
    }

    #[test]
    fn splits_device_numbers_as_linux_does() {
        assert_eq!(split(0xfe00), (254, 0));
        assert_eq!(split(0xfe01), (254, 1));
        assert_eq!(split((259u64 << 8) | 3), (259, 3));
    }
}
