//! Slaves joining and leaving, and their devices reporting link changes.

use crate::bond::{Bond, Error, Monitor, SlaveId, valid_ifname};
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
        if self.slave_by_name(&spec.name).is_some() || self.slave(spec.id).is_some() {
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
        let (id, name) = (slave.id, slave.name.clone());
        self.adopt_mac(&mut slave);
        self.slaves.push(slave);
        if self.opts.primary == name {
            // The primary always becomes active when it is enslaved.
            self.force_primary = true;
        }
        self.select_active_slave(now);
        self.update_carrier();
        self.log(Event::Enslaved { slave: name, active: self.is_active(id), link_up: link != LinkState::Down });
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

    pub(crate) fn release(&mut self, now: Instant, id: SlaveId) -> Result<(), Error> {
        let slave = self.require(id)?;
        let (role_active, perm_mac, name) = (!slave.backup, slave.perm_mac, slave.name.clone());
        let was_current = self.is_active(id);
        if self.opts.fail_over_mac == FailOverMac::None && self.mac == Some(perm_mac) && self.slaves.len() > 1 {
            self.log(Event::PermHwaddrInUse { slave: name.clone(), mac: perm_mac.to_string() });
        }
        self.log(Event::Released { slave: name, was_active: role_active });
        self.detach(now, id);
        if was_current {
            self.select_active_slave(now);
        }
        self.update_carrier();
        Ok(())
    }

    /// Takes a slave out of the bond: no longer active, its MAC restored, gone from the list.
    fn detach(&mut self, now: Instant, id: SlaveId) {
        self.retire_arp_candidate();
        if self.is_active(id) {
            self.change_active(now, None);
        }
        if let Some(pos) = self.slaves.iter().position(|s| s.id == id) {
            let slave = self.slaves.remove(pos);
            self.restore_mac(&slave);
        }
        if self.slaves.is_empty() {
            self.forget_mac();
        }
    }

    /// The bond device is going away: every slave leaves at once and no new active is
    /// chosen. Squeeze logs one line for the lot.
    pub(crate) fn release_all(&mut self, now: Instant) {
        let ids: Vec<SlaveId> = self.slaves.iter().map(|s| s.id).collect();
        for id in ids {
            self.detach(now, id);
        }
        self.update_carrier();
        self.log(Event::ReleasedAll);
    }

    pub(crate) fn link_changed(&mut self, now: Instant, id: SlaveId, link: LinkInfo) -> Result<(), Error> {
        let slave = self.slave_mut(id).ok_or(Error::NoSuchSlave(id.0))?;
        let carrier_changed = slave.hw.carrier != link.carrier;
        slave.hw = link;
        match (carrier_changed, link.carrier) {
            (true, false) => self.note_loss(id, now),
            (true, true) => self.note_recovery(id),
            _ => {}
        }
        // The event wakes the monitor at once; the delays still count from here in ticks.
        if carrier_changed && self.up && self.monitor() == Monitor::Mii {
            self.mii_pass(now);
        }
        Ok(())
    }
}
