//! Network interfaces over rtnetlink: what one is (index, name, MAC, MTU, flags, master,
//! kind, promiscuity), and the changes rbond makes to them.

use std::io;

use netlink_packet_core::{DecodeError, Emitable, NlasIterator, ParseableParametrized};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rbond_core::Mac;

use super::rtnl::Rtnl;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier (IFF_LOWER_UP).
    pub lower_up: bool,
    /// The device it is a port of (a bridge, say).
    pub master: Option<u32>,
    /// The device it sits on (a macvlan's lower device, a veth's peer).
    pub link: Option<u32>,
    /// `veth`, `bridge`, `macvlan`, `tun`, …
    pub kind: Option<String>,
    /// How many users asked for promiscuous mode, and for all multicast.
    pub promiscuity: u32,
    pub allmulti: u32,
}

/// The attributes `Link::take` reads.
const KEPT: [u16; 8] = [
    libc::IFLA_IFNAME,
    libc::IFLA_ADDRESS,
    libc::IFLA_MTU,
    libc::IFLA_MASTER,
    libc::IFLA_LINK,
    libc::IFLA_PROMISCUITY,
    libc::IFLA_ALLMULTI,
    libc::IFLA_LINKINFO,
];

impl Link {
    pub fn from_message(msg: &LinkMessage) -> Link {
        let mut l = Link::of_header(&msg.header);
        for a in &msg.attributes {
            l.take(a);
        }
        l
    }

    /// A link message's payload read for what a `Link` holds, with its address family.
    /// Only the attributes `take` reads are parsed: the whole message (statistics, every
    /// family's settings) took 60 to 90 µs to parse in a daemon woken by a carrier change,
    /// which is a failover's first step; these take a few.
    pub fn from_payload(payload: &[u8]) -> Result<(AddressFamily, Link), DecodeError> {
        let header = LinkHeader::parse(payload)?;
        let mut l = Link::of_header(&header);
        for nla in NlasIterator::new(payload.get(header.buffer_len()..).unwrap_or_default()) {
            let nla = nla?;
            if KEPT.contains(&nla.kind()) {
                l.take(&LinkAttribute::parse_with_param(&nla, header.interface_family)?);
            }
        }
        Ok((header.interface_family, l))
    }

    fn of_header(header: &LinkHeader) -> Link {
        Link {
            index: header.index,
            up: header.flags.contains(LinkFlags::Up),
            lower_up: header.flags.contains(LinkFlags::LowerUp),
            ..Link::default()
        }
    }

    fn take(&mut self, a: &LinkAttribute) {
        match a {
            LinkAttribute::IfName(n) => self.name = n.clone(),
            LinkAttribute::Address(m) => self.mac = <[u8; 6]>::try_from(m.as_slice()).ok().map(Mac),
            LinkAttribute::Mtu(m) => self.mtu = *m,
            LinkAttribute::Controller(m) => self.master = Some(*m),
            LinkAttribute::Link(i) => self.link = Some(*i),
            LinkAttribute::Promiscuity(p) => self.promiscuity = *p,
            LinkAttribute::AllMulticast(p) => self.allmulti = *p,
            LinkAttribute::LinkInfo(infos) => {
                self.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(kind_name(k)),
                    _ => None,
                })
            }
            _ => {}
        }
    }
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Other(s) => s.clone(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// A change rbond makes to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Up(bool),
    Mtu(u32),
    Mac(Mac),
    /// Make it a port of this device, or of none.
    Master(Option<u32>),
}

fn request(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

impl Rtnl {
    pub fn link(&mut self, index: u32) -> io::Result<Link> {
        match self.get(RouteNetlinkMessage::GetLink(request(index)))? {
            RouteNetlinkMessage::NewLink(m) => Ok(Link::from_message(&m)),
            _ => Err(io::Error::other("rtnetlink: unexpected reply to a link request")),
        }
    }

    pub fn link_named(&mut self, name: &str) -> io::Result<Link> {
        let mut msg = request(0);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.get(RouteNetlinkMessage::GetLink(msg))? {
            RouteNetlinkMessage::NewLink(m) => Ok(Link::from_message(&m)),
            _ => Err(io::Error::other("rtnetlink: unexpected reply to a link request")),
        }
    }

    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })
            .collect())
    }

    pub fn set_link(&mut self, index: u32, change: Change) -> io::Result<()> {
        let mut msg = request(index);
        match change {
            Change::Up(up) => {
                msg.header.change_mask = LinkFlags::Up;
                msg.header.flags = if up { LinkFlags::Up } else { LinkFlags::empty() };
            }
            Change::Mtu(mtu) => msg.attributes.push(LinkAttribute::Mtu(mtu)),
            Change::Mac(mac) => msg.attributes.push(LinkAttribute::Address(mac.0.to_vec())),
            Change::Master(m) => msg.attributes.push(LinkAttribute::Controller(m.unwrap_or(0))),
        }
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        self.change(RouteNetlinkMessage::DelLink(request(index)), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notice read for its kept attributes says what the whole parse says.
    #[test]
    fn a_link_read_in_part_is_the_link_read_whole() {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Broadcast;
        msg.attributes = vec![
            LinkAttribute::IfName("eth1".into()),
            LinkAttribute::TxQueueLen(1000),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 7]),
            LinkAttribute::Mtu(9000),
            LinkAttribute::Qdisc("noqueue".into()),
            LinkAttribute::Controller(3),
            LinkAttribute::Link(12),
            LinkAttribute::Promiscuity(1),
            LinkAttribute::AllMulticast(2),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            LinkAttribute::Carrier(1),
        ];
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        let (family, link) = Link::from_payload(&bytes).unwrap();
        assert_eq!(family, AddressFamily::Unspec);
        assert_eq!(link, Link::from_message(&msg));
        assert_eq!((link.name.as_str(), link.mtu, link.kind.as_deref()), ("eth1", 9000, Some("veth")));
        assert!(link.lower_up && link.up && link.master == Some(3) && link.allmulti == 2);
    }

    /// A notice cut short is an error, not a panic or a link read in half.
    #[test]
    fn a_truncated_link_notice_is_an_error() {
        assert!(Link::from_payload(&[0; 8]).is_err());
        let mut msg = LinkMessage::default();
        msg.attributes = vec![LinkAttribute::IfName("eth0".into())];
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        bytes[16] = 200; // the attribute claims more bytes than there are
        assert!(Link::from_payload(&bytes).is_err());
    }
}
