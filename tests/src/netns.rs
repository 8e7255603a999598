//! Test hosts in network namespaces: each server gets its own namespace and address on a bridge,
//! so the network between servers can be cut while the test, on the bridge's own address,
//! still reaches every server. A cut is silent, as a failed switch or a partitioned zone is:
//! the hosts on either side point their neighbour entries for each other at a hardware address
//! nobody has, so packets leave and are never answered (no reset, no error), and healing
//! deletes those entries. Needs root and iproute2.

use std::process::Command;

use anyhow::{ensure, Context, Result};

/// A hardware address no interface has: frames sent to it are lost on the bridge.
const NOWHERE: &str = "02:00:5e:00:00:01";

/// A bridge with `hosts.len()` namespaces on it, removed on drop.
#[derive(Debug)]
pub struct Network {
    bridge: String,
    /// The namespaces, in order: name and address.
    pub hosts: Vec<Host>,
    /// The bridge's address: where the test's own connections come from.
    pub gateway: String,
}

/// One namespace on the bridge.
#[derive(Debug, Clone)]
pub struct Host {
    /// Namespace name (for `ip netns exec`).
    pub namespace: String,
    /// Its address.
    pub address: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    ensure!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    Ok(())
}

impl Network {
    /// Creates bridge `sl{tag}` with address `10.{subnet}.0.1/24` and `count` namespaces
    /// `sl{tag}-N` at `10.{subnet}.0.(10+N)`, each with loopback up. Leftovers of a run that
    /// did not clean up are removed first.
    pub fn create(tag: &str, subnet: u8, count: usize) -> Result<Self> {
        let bridge = format!("sl{tag}");
        let hosts: Vec<Host> = (0..count)
            .map(|n| Host { namespace: format!("sl{tag}-{n}"), address: format!("10.{subnet}.0.{}", 10 + n) })
            .collect();
        let network = Self { bridge: bridge.clone(), hosts, gateway: format!("10.{subnet}.0.1") };
        network.remove();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", network.gateway), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for (n, host) in network.hosts.iter().enumerate() {
            let veth = format!("sl{tag}v{n}");
            ip(&["netns", "add", &host.namespace])?;
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &host.namespace])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            ip(&["-n", &host.namespace, "addr", "add", &format!("{}/24", host.address), "dev", "eth0"])?;
            ip(&["-n", &host.namespace, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host.namespace, "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    /// Cuts host `a` and host `b` off from each other, both ways.
    pub fn cut(&self, a: usize, b: usize) -> Result<()> {
        for (from, to) in [(a, b), (b, a)] {
            let (from, to) = (&self.hosts[from], &self.hosts[to]);
            ip(&[
                "-n",
                &from.namespace,
                "neigh",
                "replace",
                &to.address,
                "lladdr",
                NOWHERE,
                "nud",
                "permanent",
                "dev",
                "eth0",
            ])?;
        }
        Ok(())
    }

    /// Heals a cut between `a` and `b`.
    pub fn heal(&self, a: usize, b: usize) -> Result<()> {
        for (from, to) in [(a, b), (b, a)] {
            let (from, to) = (&self.hosts[from], &self.hosts[to]);
            ip(&["-n", &from.namespace, "neigh", "del", &to.address, "dev", "eth0"])?;
        }
        Ok(())
    }

    /// Cuts host `a` off from every other host (the test still reaches it).
    pub fn isolate(&self, a: usize) -> Result<()> {
        (0..self.hosts.len()).filter(|&b| b != a).try_for_each(|b| self.cut(a, b))
    }

    /// Heals every cut of host `a`.
    pub fn rejoin(&self, a: usize) -> Result<()> {
        (0..self.hosts.len()).filter(|&b| b != a).try_for_each(|b| self.heal(a, b))
    }

    fn remove(&self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.namespace]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}
