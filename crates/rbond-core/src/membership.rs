//! Slaves joining and leaving, and their devices reporting link changes.

use crate::bond::{Action, Bond, Error, Monitor, valid_ifname};
use crate::event::Event;
use crate::options::FailOverMac;
use crate::slave::{LinkInfo, LinkState, Slave, SlaveSpec};
use crate::time::Instant;

impl Bond {
    pub(crate) fn enslave(&mut self, now: Instant, spec: SlaveSpec) -> Result<(), Error> {
        if !valid_ifname(&spec.name) {
            return Err(Error::BadName(spec.name));
        }
        if spec.name == self.name {
            return Err(Error::SelfEnslave(spec.name));
        }
        if self.slave(&spec.name).is_some() {
            return Err(Error::AlreadySlave(spec.name));
        }
        let link = self.initial_link(spec.link.carrier);
        let mut slave = Slave::new(spec, link);
        if link == LinkState::Back {
            slave.delay_until = Some(now + self.miimon_interval() * self.opts.updelay);
        }
        if link != LinkState::Down {
            slave.last_link_up = Some(now);
        }
        let name = slave.name.clone();
        self.adopt_mac(&mut slave);
        self.slaves.push(slave);
        if self.opts.primary == name {
            // The primary always becomes active when it is enslaved.
            self.force_primary = true;
        }
        self.select_active_slave(now);
        self.update_carrier();
        self.log(Event::Enslaved { slave: name.clone(), active: self.is_active(&name), link_up: link != LinkState::Down });
        Ok(())
    }

    /// The link state a new slave starts in; no "definitely up" message is printed for it.
    fn initial_link(&self, carrier: bool) -> LinkState {
        match self.monitor() {
            Monitor::None => LinkState::Up,
            Monitor::Arp if carrier => LinkState::Up,
            Monitor::Mii if carrier && self.opts.updelay > 0 => LinkState::Back,
            Monitor::Mii if carrier => LinkState::Up,
            Monitor::Arp | Monitor::Mii => LinkState::Down,
        }
    }

    pub(crate) fn release(&mut self, now: Instant, name: &str) -> Result<(), Error> {
        let slave = self.require_slave(name)?;
        let role_active = !slave.backup;
        let was_current = self.is_active(name);
        if self.opts.fail_over_mac == FailOverMac::None && self.mac == Some(slave.perm_mac) && self.slaves.len() > 1 {
            let mac = slave.perm_mac.to_string();
            self.log(Event::PermHwaddrInUse { slave: name.to_string(), mac });
        }
        self.log(Event::Released { slave: name.to_string(), was_active: role_active });
        self.detach(name);
        if was_current {
            self.select_active_slave(now);
        }
        self.update_carrier();
        Ok(())
    }

    /// Takes a slave out of the bond: no longer active, its MAC restored, gone from the list.
    fn detach(&mut self, name: &str) {
        self.retire_arp_candidate();
        if self.is_active(name) {
            self.change_active(None);
        }
        if let Some(pos) = self.slaves.iter().position(|s| s.name == name) {
            let slave = self.slaves.remove(pos);
            self.restore_mac(&slave);
        }
        if self.slaves.is_empty() {
            self.forget_mac();
        }
    }

    /// The bond device is going away: every slave leaves, and no new active is chosen.
    pub(crate) fn release_all(&mut self) {
        let names: Vec<String> = self.slaves.iter().map(|s| s.name.clone()).collect();
        for name in names {
            let was_active = self.slave(&name).is_some_and(|s| !s.backup);
            self.log(Event::Released { slave: name.clone(), was_active });
            self.detach(&name);
        }
        self.update_carrier();
        self.log(Event::ReleasedAll);
    }

    pub(crate) fn link_changed(&mut self, now: Instant, name: &str, link: LinkInfo) -> Result<(), Error> {
        let slave = self.slave_mut(name).ok_or_else(|| Error::NotSlave(name.to_string()))?;
        let carrier_changed = slave.hw.carrier != link.carrier;
        slave.hw = link;
        // The event wakes the monitor at once; the delays still count from here in ticks.
        if carrier_changed && self.up && self.monitor() == Monitor::Mii {
            self.mii_pass(now);
        }
        Ok(())
    }

    pub(crate) fn push_activate(&mut self, slave: &str) {
        self.push(Action::Activate { slave: slave.to_string() });
    }
}
