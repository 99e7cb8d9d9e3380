//! Traffic control over rtnetlink, for kernels without tcx (before 6.6): a `clsact` qdisc on an
//! interface and rbond's `cls_bpf` filter on one of its hooks, in direct-action mode. A filter
//! is a netlink object: it stays attached, and keeps its program loaded, with no process at
//! all. rbond's filters have their own priority and handle, so other users' filters on the
//! same qdisc are never touched, and a qdisc is never deleted.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption};

use super::rtnl::Rtnl;

/// rbond's filters' priority (`tc filter show` lists it as `pref 2829`) and handle.
pub const PRIO: u16 = 0x0b0d;
const HANDLE: u32 = 1;
const ETH_P_ALL: u16 = 0x0003;

/// Which of an interface's two clsact hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Ingress,
    Egress,
}

fn ifindex(index: u32) -> io::Result<i32> {
    i32::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// rbond's filter on `hook`, as a message (without its program).
fn filter(index: u32, hook: Hook) -> io::Result<TcMessage> {
    let mut m = TcMessage::default();
    m.header.index = ifindex(index)?;
    m.header.handle = TcHandle::from(HANDLE);
    let minor = match hook {
        Hook::Ingress => TcHandle::MIN_INGRESS,
        Hook::Egress => TcHandle::MIN_EGRESS,
    };
    m.header.parent = TcHandle { major: TcHandle::CLSACT.major, minor };
    // TC_H_MAKE(prio << 16, protocol), the protocol in network order as tc(8) writes it.
    m.header.info = (u32::from(PRIO) << 16) | u32::from(ETH_P_ALL.to_be());
    Ok(m)
}

impl Rtnl {
    /// A clsact qdisc on the interface; one already there (anybody's) is used as it is.
    pub fn clsact(&mut self, index: u32) -> io::Result<()> {
        let mut m = TcMessage::default();
        m.header.index = ifindex(index)?;
        m.header.handle = TcHandle { major: TcHandle::CLSACT.major, minor: 0 };
        m.header.parent = TcHandle::CLSACT;
        m.attributes.push(TcAttribute::Kind("clsact".into()));
        match self.change(RouteNetlinkMessage::NewQueueDiscipline(m), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// rbond's filter on `hook`, running `prog` in direct-action mode: created, or replaced
    /// in one step (no frame passes unfiltered in between).
    pub fn bpf_filter(&mut self, index: u32, hook: Hook, prog: BorrowedFd<'_>, name: &str) -> io::Result<()> {
        let mut m = filter(index, hook)?;
        m.attributes.push(TcAttribute::Kind("bpf".into()));
        m.attributes.push(TcAttribute::Options(vec![
            TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
            TcOption::Bpf(TcFilterBpfOption::ProgName(name.to_string())),
            TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
        ]));
        self.change(RouteNetlinkMessage::NewTrafficFilter(m), NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Removes rbond's filter from `hook`, and nothing else. One already gone is no error.
    pub fn delete_bpf_filter(&mut self, index: u32, hook: Hook) -> io::Result<()> {
        match self.change(RouteNetlinkMessage::DelTrafficFilter(filter(index, hook)?), 0) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::EINVAL)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header tc(8) would send for `tc filter add dev X ingress pref 2829 handle 1
    /// protocol all bpf da …`.
    #[test]
    fn filters_are_addressed_as_tc_addresses_them() {
        let m = filter(7, Hook::Ingress).unwrap();
        assert_eq!((m.header.index, u32::from(m.header.parent), u32::from(m.header.handle)), (7, 0xffff_fff2, 1));
        assert_eq!(m.header.info, if cfg!(target_endian = "little") { 0x0b0d_0300 } else { 0x0b0d_0003 });
        assert_eq!(u32::from(filter(7, Hook::Egress).unwrap().header.parent), 0xffff_fff3);
    }
}
