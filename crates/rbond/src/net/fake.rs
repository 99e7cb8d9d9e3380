//! A host that exists only in memory, for the daemon's unit tests: interfaces the test
//! declares, every change recorded, and failures injected by name.

use std::collections::BTreeMap;
use std::io;

use rbond_core::Mac;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Netdev;
use super::address::Address;
use super::behind::FdbEntry;
use super::bound_sockets::BoundSocket;
use super::carried::{Route, Rule};
use super::link::{Change, Link};

#[derive(Default)]
pub struct FakeNetdev {
    pub links: BTreeMap<u32, Link>,
    pub addrs: BTreeMap<u32, Vec<Address>>,
    pub ipv6: BTreeMap<String, String>,
    /// What ETHTOOL_GLINK says per interface; missing means the query fails.
    pub glink: BTreeMap<String, bool>,
    /// Every change made, as `name what value`.
    pub changes: Vec<String>,
    /// Changes that fail, as `name what` (e.g. `eth1 mac`).
    pub failing: Vec<String>,
    /// The forwarding database dump.
    pub fdb: Vec<FdbEntry>,
    /// Multicast groups joined, by interface name.
    pub groups: BTreeMap<String, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
    /// Gateways of routes, by interface index.
    pub gateways: BTreeMap<u32, Vec<IpAddr>>,
}

impl FakeNetdev {
    /// An Ethernet interface that is down, with carrier.
    pub fn add(&mut self, index: u32, name: &str, mac: Mac) {
        let link = Link { index, name: name.into(), mac: Some(mac), mtu: 1500, lower_up: true, ..Link::default() };
        self.links.insert(index, link);
        self.glink.insert(name.into(), true);
        self.ipv6.insert(name.into(), "0".into());
    }

    fn named(&self, index: u32) -> io::Result<String> {
        self.links.get(&index).map(|l| l.name.clone()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
    }

    fn attempt(&mut self, name: &str, what: &str, value: String) -> io::Result<()> {
        if self.failing.iter().any(|f| *f == format!("{name} {what}")) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        self.changes.push(format!("{name} {what} {value}"));
        Ok(())
    }
}

impl Netdev for FakeNetdev {
    fn link(&mut self, index: u32) -> io::Result<Link> {
        self.links.get(&index).cloned().ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
    }
    fn link_named(&mut self, name: &str) -> io::Result<Link> {
        self.links.values().find(|l| l.name == name).cloned().ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
    }
    fn set_link(&mut self, index: u32, change: Change) -> io::Result<()> {
        let name = self.named(index)?;
        let (what, value) = match change {
            Change::Up(up) => ("up", up.to_string()),
            Change::Mtu(m) => ("mtu", m.to_string()),
            Change::Mac(m) => ("mac", m.to_string()),
            Change::Master(m) => ("master", format!("{m:?}")),
        };
        self.attempt(&name, what, value)?;
        let l = self.links.get_mut(&index).expect("named above");
        match change {
            Change::Up(up) => l.up = up,
            Change::Mtu(m) => l.mtu = m,
            Change::Mac(m) => l.mac = Some(m),
            Change::Master(m) => l.master = m,
        }
        Ok(())
    }
    fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let name = self.named(index)?;
        self.attempt(&name, "delete", String::new())?;
        self.links.remove(&index);
        Ok(())
    }
    fn link_detected(&mut self, name: &str) -> io::Result<bool> {
        self.glink.get(name).copied().ok_or_else(|| io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
    fn addresses(&mut self, index: u32) -> io::Result<Vec<Address>> {
        Ok(self.addrs.get(&index).cloned().unwrap_or_default())
    }
    fn add_address(&mut self, index: u32, a: &Address) -> io::Result<()> {
        let name = self.named(index)?;
        self.attempt(&name, "add", a.to_string())?;
        self.addrs.entry(index).or_default().push(a.clone());
        Ok(())
    }
    fn delete_address(&mut self, index: u32, a: &Address) -> io::Result<()> {
        let name = self.named(index)?;
        self.attempt(&name, "del", a.to_string())?;
        self.addrs.entry(index).or_default().retain(|x| x.addr != a.addr);
        Ok(())
    }
    fn ipv6_conf(&mut self, name: &str, key: &str) -> Option<String> {
        self.ipv6.get(name).filter(|_| key == "disable_ipv6").cloned()
    }
    fn set_ipv6_conf(&mut self, name: &str, key: &str, value: &str) -> io::Result<()> {
        self.attempt(name, key, value.into())?;
        if key == "disable_ipv6" {
            self.ipv6.insert(name.into(), value.into());
        }
        Ok(())
    }
    fn links(&mut self) -> io::Result<Vec<Link>> {
        Ok(self.links.values().cloned().collect())
    }
    fn fdb(&mut self) -> io::Result<Vec<FdbEntry>> {
        Ok(self.fdb.clone())
    }
    fn groups(&mut self, name: &str) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
        self.groups.get(name).cloned().unwrap_or_default()
    }
    fn gateways(&mut self, index: u32) -> io::Result<Vec<IpAddr>> {
        Ok(self.gateways.get(&index).cloned().unwrap_or_default())
    }
    fn routes_out_of(&mut self, _index: u32) -> io::Result<Vec<Route>> {
        Ok(Vec::new())
    }
    fn move_route(&mut self, _route: &Route, from: u32, to: u32) -> io::Result<()> {
        self.changes.push(format!("route {from} -> {to}"));
        Ok(())
    }
    fn rules_naming(&mut self, _name: &str) -> io::Result<Vec<Rule>> {
        Ok(Vec::new())
    }
    fn move_rule(&mut self, _rule: &Rule, from: &str, to: &str) -> io::Result<()> {
        self.changes.push(format!("rule {from} -> {to}"));
        Ok(())
    }
    fn bound_sockets(&mut self, _index: u32) -> io::Result<Vec<BoundSocket>> {
        Ok(Vec::new())
    }
    fn copy_neighbours(&mut self, from: u32, to: u32) -> io::Result<()> {
        self.changes.push(format!("neighbours {from} -> {to}"));
        Ok(())
    }
    fn drop_prefix_routes(&mut self, index: u32) -> io::Result<()> {
        self.changes.push(format!("prefix routes of {index} dropped"));
        Ok(())
    }
}
