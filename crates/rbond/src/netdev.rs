//! Interface properties through the classic ioctls: index, flags, MTU, MAC, ETHTOOL_GLINK,
//! and the per-interface IPv6 switch.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rbond_core::Mac;

const ETHTOOL_GLINK: u32 = 0x0000_000a;
const ARPHRD_ETHER: u16 = 1;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// Adds the interface name to an error, so users see which device failed.
pub fn ctx<T>(r: io::Result<T>, what: &str, name: &str) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{name}: {what}: {e}"))
}

fn ioctl_socket() -> io::Result<OwnedFd> {
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

thread_local! {
    /// One socket for every ioctl of this thread: the daemon reads links every miimon tick.
    static IOCTL_SOCKET: io::Result<OwnedFd> = ioctl_socket();
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "invalid interface name"));
    }
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

fn ioctl(name: &str, request: libc::Ioctl, fill: impl FnOnce(&mut libc::ifreq)) -> io::Result<libc::ifreq> {
    let mut req = ifreq(name)?;
    fill(&mut req);
    IOCTL_SOCKET.with(|sock| {
        let fd = sock.as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))?.as_raw_fd();
        check(unsafe { libc::ioctl(fd, request, &mut req) })
    })?;
    Ok(req)
}

pub fn index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad name"))?;
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

pub fn flags(name: &str) -> io::Result<libc::c_int> {
    let r = ioctl(name, libc::SIOCGIFFLAGS, |_| {})?;
    Ok(libc::c_int::from(unsafe { r.ifr_ifru.ifru_flags }))
}

pub fn is_up(name: &str) -> io::Result<bool> {
    Ok(flags(name)? & libc::IFF_UP != 0)
}

pub fn set_up(name: &str, up: bool) -> io::Result<()> {
    let f = flags(name)?;
    let f = if up { f | libc::IFF_UP } else { f & !libc::IFF_UP };
    ioctl(name, libc::SIOCSIFFLAGS, |r| r.ifr_ifru.ifru_flags = f as libc::c_short).map(drop)
}

pub fn mtu(name: &str) -> io::Result<u32> {
    let r = ioctl(name, libc::SIOCGIFMTU, |_| {})?;
    Ok(unsafe { r.ifr_ifru.ifru_mtu } as u32)
}

pub fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    ioctl(name, libc::SIOCSIFMTU, |r| r.ifr_ifru.ifru_mtu = mtu as libc::c_int).map(drop)
}

/// The MAC, or an error if the device is not Ethernet-like.
pub fn mac(name: &str) -> io::Result<Mac> {
    let r = ioctl(name, libc::SIOCGIFHWADDR, |_| {})?;
    let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != ARPHRD_ETHER {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an Ethernet interface"));
    }
    let mut m = [0u8; 6];
    for (d, s) in m.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(Mac(m))
}

pub fn set_mac(name: &str, mac: Mac) -> io::Result<()> {
    ioctl(name, libc::SIOCSIFHWADDR, |r| {
        let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
        sa.sa_family = ARPHRD_ETHER;
        for (d, s) in sa.sa_data.iter_mut().zip(mac.0) {
            *d = s as libc::c_char;
        }
        r.ifr_ifru.ifru_hwaddr = sa;
    })
    .map(drop)
}

/// The link as the driver reports it right now (ETHTOOL_GLINK). Unlike a netlink event this
/// is never batched, and reading it flushes a pending one.
pub fn link_detected(name: &str) -> io::Result<bool> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut v = EthtoolValue { cmd: ETHTOOL_GLINK, data: 0 };
    ioctl(name, libc::SIOCETHTOOL, |r| r.ifr_ifru.ifru_data = (&raw mut v).cast())?;
    Ok(v.data != 0)
}

/// Whether the kernel may hold back this device's carrier events (up to about a second when
/// they come close together): it does so for devices whose iflink is their own index
/// (physical NICs, TAP), not for veth, macvlan or VLANs. When unsure: yes.
pub fn carrier_events_may_lag(name: &str, ifindex: u32) -> bool {
    let iflink = std::fs::read_to_string(format!("/sys/class/net/{name}/iflink"));
    iflink.ok().and_then(|v| v.trim().parse::<u32>().ok()).is_none_or(|l| l == ifindex)
}

fn ipv6_switch(name: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
}

/// The `disable_ipv6` setting, if the interface has IPv6 at all.
pub fn ipv6_disabled(name: &str) -> Option<String> {
    std::fs::read_to_string(ipv6_switch(name)).ok().map(|s| s.trim().to_string())
}

pub fn set_ipv6_disabled(name: &str, value: &str) -> io::Result<()> {
    std::fs::write(ipv6_switch(name), value)
}

/// The name an interface index has now, if it still exists here.
pub fn name_of(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IFNAMSIZ];
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn prefix_of(mask: &[u8]) -> u8 {
    mask.iter().map(|b| b.count_ones() as u8).sum()
}

/// The IPv4 and IPv6 addresses on an interface, each with its prefix length.
pub fn addresses(name: &str) -> (Vec<rbond_core::Ipv4Cidr>, Vec<(std::net::Ipv6Addr, u8)>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return (v4, v6);
    }
    let mut cur = head;
    while let Some(ifa) = unsafe { cur.as_ref() } {
        cur = ifa.ifa_next;
        let this = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if ifa.ifa_addr.is_null() || this.to_bytes() != name.as_bytes() {
            continue;
        }
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET => {
                let a = unsafe { *(ifa.ifa_addr as *const libc::sockaddr_in) };
                let m = unsafe { (ifa.ifa_netmask as *const libc::sockaddr_in).as_ref() };
                let prefix = m.map_or(32, |m| prefix_of(&m.sin_addr.s_addr.to_ne_bytes()));
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                v4.push(rbond_core::Ipv4Cidr::new(ip, prefix));
            }
            libc::AF_INET6 => {
                let a = unsafe { *(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let m = unsafe { (ifa.ifa_netmask as *const libc::sockaddr_in6).as_ref() };
                let prefix = m.map_or(128, |m| prefix_of(&m.sin6_addr.s6_addr));
                v6.push((std::net::Ipv6Addr::from(a.sin6_addr.s6_addr), prefix));
            }
            _ => {}
        }
    }
    unsafe { libc::freeifaddrs(head) };
    (v4, v6)
}
