//! Network interfaces over rtnetlink: what one is (index, name, MAC, MTU, flags, master,
//! kind, promiscuity), and the changes rbond makes to them.

use std::io;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
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

impl Link {
    pub fn from_message(msg: &LinkMessage) -> Link {
        let mut l = Link {
            index: msg.header.index,
            up: msg.header.flags.contains(LinkFlags::Up),
            lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
            ..Link::default()
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(m) => l.mac = <[u8; 6]>::try_from(m.as_slice()).ok().map(Mac),
                LinkAttribute::Mtu(m) => l.mtu = *m,
                LinkAttribute::Controller(m) => l.master = Some(*m),
                LinkAttribute::Link(i) => l.link = Some(*i),
                LinkAttribute::Promiscuity(p) => l.promiscuity = *p,
                LinkAttribute::AllMulticast(p) => l.allmulti = *p,
                LinkAttribute::LinkInfo(infos) => {
                    l.kind = infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(kind_name(k)),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        l
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
