//! Stanzas worth having at hand: the classic guide's bond (addresses in 10.x) and the
//! hotplug example from Debian's ifenslave package. The drill runs the first by default; the
//! tests run both through the real ifupdown.

/// The classic Debian guide's bond.
pub const GUIDE: &str = "\
auto bond0
iface bond0 inet static
    address 10.77.0.1
    netmask 255.255.255.0
    bond-slaves eth0 eth1
    bond-mode 1
    bond-miimon 100
    bond-primary eth0
    bond-updelay 200
    bond-downdelay 200
";

/// Debian's hotplug example: the bond has no slaves of its own; each slave joins it.
pub const HOTPLUG: &str = "\
auto bond0
iface bond0 inet static
    address 10.77.0.1
    netmask 255.255.255.0
    bond-slaves none
    bond-mode active-backup
    bond-miimon 100

allow-hotplug eth0
iface eth0 inet manual
    bond-master bond0
    bond-primary eth0 eth1

allow-hotplug eth1
iface eth1 inet manual
    bond-master bond0
    bond-primary eth0 eth1
";
