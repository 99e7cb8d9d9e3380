//! Interface addresses over rtnetlink, with the flags and lifetimes that must survive being
//! moved from one interface to another.

use std::fmt;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope, CacheInfo};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use super::rtnl::Rtnl;

/// An address as `ip addr` shows it: `10.0.0.1/24`, with what the kernel knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub addr: IpAddr,
    pub prefix: u8,
    /// IFA_F_* (tentative, dadfailed, nodad, …).
    #[serde(default)]
    pub flags: u32,
    /// `None` for forever; seconds otherwise.
    #[serde(default)]
    pub valid_lft: Option<u32>,
    #[serde(default)]
    pub preferred_lft: Option<u32>,
    #[serde(default)]
    pub label: Option<String>,
}

pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_DADFAILED: u32 = 0x08;
pub const IFA_F_TENTATIVE: u32 = 0x40;
pub const IFA_F_PERMANENT: u32 = 0x80;
const FOREVER: u32 = u32::MAX;

impl Address {
    pub fn new(addr: IpAddr, prefix: u8) -> Address {
        Address { addr, prefix, flags: 0, valid_lft: None, preferred_lft: None, label: None }
    }

    /// Whether this is `addr/prefix`, whatever its flags and lifetimes.
    pub fn is(&self, addr: IpAddr, prefix: u8) -> bool {
        self.addr == addr && self.prefix == prefix
    }

    /// Whether the address is the host's to use: past duplicate address detection, and not
    /// failed there (RFC 4862 5.4: never a source, never announced, before that).
    pub fn is_ready(&self) -> bool {
        self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0
    }

    pub fn is_link_local(&self) -> bool {
        matches!(self.addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
    }

    fn from_message(msg: &AddressMessage) -> Option<Address> {
        let mut local = None;
        let mut address = None;
        let mut a = Address::new(IpAddr::from([0, 0, 0, 0]), msg.header.prefix_len);
        a.flags = u32::from(msg.header.flags.bits());
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => a.flags = f.bits(),
                AddressAttribute::Label(l) => a.label = Some(l.clone()),
                AddressAttribute::CacheInfo(c) => {
                    a.valid_lft = (c.ifa_valid != FOREVER).then_some(c.ifa_valid);
                    a.preferred_lft = (c.ifa_preferred != FOREVER).then_some(c.ifa_preferred);
                }
                _ => {}
            }
        }
        // IPv4 puts the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer's on a
        // point-to-point link); IPv6 has IFA_ADDRESS only.
        a.addr = local.or(address)?;
        Some(a)
    }

    fn message(&self, index: u32) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = if self.addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        msg.header.prefix_len = self.prefix;
        msg.header.index = index;
        msg.header.scope = if self.is_link_local() { AddressScope::Link } else { AddressScope::Universe };
        if self.addr.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(self.addr));
        }
        msg.attributes.push(AddressAttribute::Address(self.addr));
        // Only what one may ask for when adding: DAD state is the kernel's to decide.
        let keep = self.flags & !(IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_PERMANENT);
        msg.attributes.push(AddressAttribute::Flags(AddressFlags::from_bits_retain(keep)));
        if self.valid_lft.is_some() || self.preferred_lft.is_some() {
            let mut info = CacheInfo::default();
            info.ifa_valid = self.valid_lft.unwrap_or(FOREVER);
            info.ifa_preferred = self.preferred_lft.unwrap_or(FOREVER);
            msg.attributes.push(AddressAttribute::CacheInfo(info));
        }
        if let Some(l) = &self.label {
            msg.attributes.push(AddressAttribute::Label(l.clone()));
        }
        msg
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Rtnl {
    /// Every address of the interface, IPv4 first, in the kernel's order.
    pub fn addresses(&mut self, index: u32) -> io::Result<Vec<Address>> {
        let all = self.all_addresses()?;
        Ok(all.into_iter().filter(|(i, _)| *i == index).map(|(_, a)| a).collect())
    }

    /// Every address of every interface, with its interface's index; IPv4 first.
    pub fn all_addresses(&mut self) -> io::Result<Vec<(u32, Address)>> {
        let replies = self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        let mut out: Vec<(u32, Address)> = replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(m) => Some((m.header.index, Address::from_message(m)?)),
                _ => None,
            })
            .collect();
        out.sort_by_key(|(_, a)| a.addr.is_ipv6());
        Ok(out)
    }

    /// Adds the address, or updates its flags and lifetimes if it is there already.
    pub fn add_address(&mut self, index: u32, a: &Address) -> io::Result<()> {
        self.change(RouteNetlinkMessage::NewAddress(a.message(index)), NLM_F_CREATE | NLM_F_REPLACE)
    }

    pub fn delete_address(&mut self, index: u32, a: &Address) -> io::Result<()> {
        self.change(RouteNetlinkMessage::DelAddress(a.message(index)), 0)
    }
}
