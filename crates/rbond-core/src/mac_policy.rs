//! Which MAC the bond and each slave carry (`fail_over_mac` none / active / follow).

use crate::bond::{Action, Bond, MacOrigin, MacTarget, SlaveId};
use crate::mac::Mac;
use crate::options::FailOverMac;
use crate::slave::Slave;

impl Bond {
    pub fn mac(&self) -> Option<Mac> {
        self.mac
    }

    fn set_bond_mac(&mut self, mac: Mac) {
        if self.mac != Some(mac) {
            self.mac = Some(mac);
            self.push(Action::SetMac { target: MacTarget::Bond, mac });
        }
    }

    fn set_slave_mac(&mut self, slave: &mut Slave, mac: Mac) {
        if slave.mac != mac {
            slave.mac = mac;
            self.push(Action::SetMac { target: MacTarget::Slave(slave.id), mac });
        }
    }

    /// At enslave: the first slave lends the bond its MAC unless an administrator chose one;
    /// then the slave takes the bond's MAC, keeps its own, or gets a fresh one (`follow`
    /// must not let a re-enslaved former first slave duplicate the bond's).
    pub(crate) fn adopt_mac(&mut self, slave: &mut Slave) {
        if self.slaves.is_empty() && self.mac_origin == MacOrigin::Unset {
            self.mac_origin = MacOrigin::Stolen;
            self.set_bond_mac(slave.mac);
        }
        let Some(bond_mac) = self.mac else { return };
        match self.opts.fail_over_mac {
            FailOverMac::None => self.set_slave_mac(slave, bond_mac),
            FailOverMac::Follow if !self.slaves.is_empty() && slave.mac == bond_mac => {
                self.set_slave_mac(slave, Mac::derived(bond_mac, &slave.name))
            }
            FailOverMac::Follow | FailOverMac::Active => {}
        }
    }

    /// At a change of active slave, for `fail_over_mac` active and follow.
    pub(crate) fn failover_mac(&mut self, old: Option<SlaveId>, new: SlaveId) {
        let Some(new_mac) = self.slave(new).map(|s| s.mac) else { return };
        match self.opts.fail_over_mac {
            FailOverMac::None => {}
            FailOverMac::Active => self.set_bond_mac(new_mac),
            FailOverMac::Follow => self.swap_follow_macs(old, new, new_mac),
        }
    }

    /// The new active takes the MAC of the slave that held the bond's (the old active, or
    /// whichever slave has it); that slave takes the new active's old MAC.
    fn swap_follow_macs(&mut self, old: Option<SlaveId>, new: SlaveId, new_mac: Mac) {
        let bond_mac = self.mac;
        let holder = old.or_else(|| {
            let holds = |s: &&Slave| s.id != new && Some(s.mac) == bond_mac;
            self.slaves.iter().find(holds).map(|s| s.id)
        });
        let holder_mac = holder.and_then(|h| self.slave(h)).map(|s| s.mac);
        let Some(give) = holder_mac.or(bond_mac) else { return };
        self.with_slave(new, |bond, s| bond.set_slave_mac(s, give));
        if let Some(h) = holder {
            self.with_slave(h, |bond, s| bond.set_slave_mac(s, new_mac));
        }
    }

    /// At release: the slave gets back the MAC it came with, except under `active`, where
    /// nobody changed it.
    pub(crate) fn restore_mac(&mut self, slave: &Slave) {
        if self.opts.fail_over_mac != FailOverMac::Active && slave.mac != slave.perm_mac {
            let target = MacTarget::Slave(slave.id);
            self.push(Action::SetMac { target, mac: slave.perm_mac });
        }
    }

    /// The last slave left: the bond must not keep an address a released slave now carries.
    pub(crate) fn forget_mac(&mut self) {
        if self.mac_origin == MacOrigin::Stolen {
            if let Some(old) = self.mac {
                self.set_bond_mac(Mac::derived(old, &self.name.clone()));
            }
            self.mac_origin = MacOrigin::Unset;
        }
    }

    /// An administrator set the bond's MAC. Under `fail_over_mac` active or follow the
    /// kernel accepts and ignores it; otherwise every slave follows.
    pub(crate) fn set_mac_by_admin(&mut self, mac: Mac) {
        if self.opts.fail_over_mac != FailOverMac::None {
            return;
        }
        self.mac_origin = MacOrigin::User;
        self.set_bond_mac(mac);
        let ids: Vec<SlaveId> = self.slaves.iter().map(|s| s.id).collect();
        for id in ids {
            self.with_slave(id, |bond, s| bond.set_slave_mac(s, mac));
        }
    }

    /// Runs `f` on a slave taken out of the list for the duration, so it may also push
    /// actions on the bond.
    fn with_slave(&mut self, id: SlaveId, f: impl FnOnce(&mut Bond, &mut Slave)) {
        if let Some(pos) = self.slaves.iter().position(|s| s.id == id) {
            let mut s = self.slaves.remove(pos);
            f(self, &mut s);
            self.slaves.insert(pos, s);
        }
    }
}
