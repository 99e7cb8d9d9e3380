//! What a bond's `inet static` and `inet6 static` stanzas ask of bond0 itself: its addresses
//! and default gateways, as ifupdown's `static` method reads `address`, `netmask`, `gateway`
//! and `metric`. `rbond up` applies them as ifup would (ifup applies them itself).

use std::net::IpAddr;

use super::interfaces::{Iface, Interfaces, ParseError, Place};

/// One address the file gives the bond, with the line that gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaAddress {
    pub addr: IpAddr,
    pub prefix: u8,
    pub place: Place,
}

/// A default route the file gives the bond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaGateway {
    pub via: IpAddr,
    pub metric: Option<u32>,
    pub place: Place,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addressing {
    pub addresses: Vec<StanzaAddress>,
    pub gateways: Vec<StanzaGateway>,
}

fn err(place: &Place, message: String) -> ParseError {
    ParseError { place: place.clone(), message }
}

/// A netmask as ifupdown takes it: a prefix length, or a dotted IPv4 mask.
fn prefix_of(mask: &str, v6: bool, place: &Place) -> Result<u8, ParseError> {
    let bad = || err(place, format!("netmask {mask}: not a prefix length or an IPv4 netmask"));
    let max = if v6 { 128 } else { 32 };
    if let Ok(n) = mask.parse::<u8>() {
        return if n <= max { Ok(n) } else { Err(bad()) };
    }
    let m: std::net::Ipv4Addr = mask.parse().map_err(|_| bad())?;
    let bits = u32::from(m);
    if v6 || bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(bad());
    }
    Ok(bits.leading_ones() as u8)
}

fn stanza(iface: &Iface, out: &mut Addressing) -> Result<(), ParseError> {
    let v6 = match (iface.family.as_str(), iface.method.as_str()) {
        ("inet", "static") => false,
        ("inet6", "static") => true,
        _ => return Ok(()),
    };
    if let Some(a) = iface.value("address") {
        let (addr, inline) = a.value.trim().split_once('/').map_or((a.value.trim(), None), |(x, p)| (x, Some(p)));
        let ip: IpAddr = addr.parse().map_err(|_| err(&a.place, format!("address {addr}: not an IP address")))?;
        if ip.is_ipv6() != v6 {
            return Err(err(&a.place, format!("address {addr}: not an {} address", iface.family)));
        }
        let mask = inline.map(str::to_string).or(iface.value("netmask").map(|n| n.value.trim().to_string()));
        let prefix = match mask {
            Some(m) => prefix_of(&m, v6, &a.place)?,
            None => {
                if v6 {
                    64
                } else {
                    32
                }
            }
        };
        out.addresses.push(StanzaAddress { addr: ip, prefix, place: a.place.clone() });
    }
    if let Some(g) = iface.value("gateway") {
        let via: IpAddr = g
            .value
            .trim()
            .parse()
            .map_err(|_| err(&g.place, format!("gateway {}: not an IP address", g.value.trim())))?;
        let metric = match iface.value("metric") {
            Some(m) => Some(
                m.value
                    .trim()
                    .parse()
                    .map_err(|_| err(&m.place, format!("metric {}: not a number", m.value.trim())))?,
            ),
            None => None,
        };
        out.gateways.push(StanzaGateway { via, metric, place: g.place.clone() });
    }
    Ok(())
}

/// The addresses and gateways the bond's own stanzas give it.
pub fn addressing(ifs: &Interfaces, bond: &str) -> Result<Addressing, ParseError> {
    let mut out = Addressing::default();
    for iface in ifs.iface(bond) {
        stanza(iface, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::interfaces::Interfaces;

    fn parse(text: &str) -> Result<Addressing, ParseError> {
        addressing(&Interfaces::parse(text, std::path::Path::new("interfaces")).unwrap(), "bond0")
    }

    #[test]
    fn dual_stack_static_stanzas() {
        let a = parse(
            "iface bond0 inet static\n  address 10.0.0.5\n  netmask 255.255.255.0\n  gateway 10.0.0.1\n  metric 10\n\
             iface bond0 inet6 static\n  address 2001:db8::5/64\n  gateway fe80::1\n",
        )
        .unwrap();
        let shown: Vec<String> =
            a.addresses.iter().map(|a| format!("{}/{} line {}", a.addr, a.prefix, a.place.line)).collect();
        assert_eq!(shown, ["10.0.0.5/24 line 2", "2001:db8::5/64 line 7"]);
        let gw: Vec<String> = a.gateways.iter().map(|g| format!("{} {:?}", g.via, g.metric)).collect();
        assert_eq!(gw, ["10.0.0.1 Some(10)", "fe80::1 None"]);
    }

    #[test]
    fn manual_and_dhcp_stanzas_give_nothing_and_bad_values_name_their_line() {
        assert_eq!(parse("iface bond0 inet manual\n  address 10.0.0.5\n").unwrap(), Addressing::default());
        assert_eq!(parse("iface bond0 inet dhcp\n").unwrap(), Addressing::default());
        let e = parse("iface bond0 inet static\n  address 10.0.0.5\n  netmask 255.0.255.0\n").unwrap_err();
        assert_eq!(
            (e.place.line, e.message.as_str()),
            (2, "netmask 255.0.255.0: not a prefix length or an IPv4 netmask")
        );
        let e = parse("iface bond0 inet static\n  address 2001:db8::5\n").unwrap_err();
        assert_eq!(e.message, "address 2001:db8::5: not an inet address");
    }
}
