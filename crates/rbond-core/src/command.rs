//! Administrative requests, with the kernel's rules for when each is accepted.

use crate::bond::{Bond, Command, Error};
use crate::event::Event;
use crate::options::{Flags, OptionError, OptionName, Options};
use crate::slave::LinkState;
use crate::time::Instant;

/// How a change of active slave was asked for: the sysfs file logs what it does, the
/// ioctl behind `ifenslave -c` only the switch itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Ioctl,
    Sysfs,
}

impl Bond {
    pub(crate) fn command(&mut self, now: Instant, cmd: Command) -> Result<(), Error> {
        match cmd {
            Command::Up => self.set_up(now),
            Command::Down => self.set_down(),
            Command::ChangeActive(name) => return self.change_active_by_admin(now, &name, Asked::Ioctl),
            Command::SetOption { name, value } => return self.set_option(now, &name, &value),
            Command::SetPrio { slave, prio } => {
                let id = self.require_named(&slave)?.id;
                if let Some(s) = self.slave_mut(id) {
                    s.prio = prio;
                }
                // With a primary set, prio does not take part in selection.
                if self.primary_slave().is_none() {
                    self.select_active_slave(now);
                }
            }
            Command::SetBondMac(mac) => self.set_mac_by_admin(mac),
            Command::ReleaseAll => self.release_all(now),
            Command::Resume => self.resume(now),
            Command::Verify => self.verify_now(now),
        }
        Ok(())
    }

    fn set_up(&mut self, now: Instant) {
        if self.up {
            return;
        }
        self.up = true;
        let active = self.active;
        for s in self.slaves.iter_mut().filter(|s| Some(s.id) != active) {
            s.backup = true;
        }
        self.restart_monitor(now);
    }

    fn resume(&mut self, now: Instant) {
        // Work that fell due while nobody ran the engine is due now.
        self.timers.catch_up(now);
        for s in &mut self.slaves {
            s.last_rx = Some(now);
            s.last_tx = Some(now);
            if s.link == LinkState::Up {
                s.last_link_up = Some(now);
            }
            self.opts.monitor_targets().for_each(|t| s.note_target_rx(t, now));
        }
        self.standby_resume();
    }

    /// Monitors stop and pending notifications are dropped; slaves stay enslaved.
    fn set_down(&mut self) {
        self.up = false;
        self.peer_notif_left = 0;
        self.igmp_left = 0;
        self.timers = Default::default();
    }

    /// `ifenslave -c` or a write of `active_slave`: accepted only while some slave is active
    /// and the new one is up.
    fn change_active_by_admin(&mut self, now: Instant, name: &str, asked: Asked) -> Result<(), Error> {
        let says = |bond: &mut Bond, e: Event| {
            if asked == Asked::Sysfs {
                bond.log(e);
            }
        };
        if name.is_empty() {
            says(self, Event::ActiveCleared);
            self.change_active(now, None);
            self.select_active_slave(now);
            // A slave still in its downdelay kept the carrier only because it was active.
            self.update_carrier();
            return Ok(());
        }
        let s = self.require_named(name)?;
        let id = s.id;
        if self.is_active(id) {
            says(self, Event::AlreadyActive { slave: name.to_string() });
            return Ok(());
        }
        if self.active.is_none() || s.link != LinkState::Up || !s.hw.carrier {
            says(self, Event::CannotActivate { slave: name.to_string() });
            return Err(Error::CannotActivate(name.to_string()));
        }
        says(self, Event::ActiveSlaveSet { slave: name.to_string() });
        self.log(Event::MakingActive { slave: name.to_string() });
        if let Some(s) = self.slave_mut(id) {
            s.last_link_up = Some(now);
        }
        self.change_active(now, Some(id));
        Ok(())
    }

    /// Writes one option as sysfs would (`active_slave` included), logging what the kernel
    /// logs and applying the change to a running bond at once.
    pub fn set_option(&mut self, now: Instant, name: &str, value: &str) -> Result<(), Error> {
        if matches!(name.trim(), "active_slave" | "active-slave") {
            return self.change_active_by_admin(now, value.trim(), Asked::Sysfs);
        }
        let opt = OptionName::parse(name)?;
        // The kernel checks what the bond's state allows before it looks at the value.
        let flags = opt.info().flags;
        if flags.has(Flags::NO_SLAVES) && !self.slaves.is_empty() {
            return Err(OptionError::HasSlaves(opt.as_str()).into());
        }
        if flags.has(Flags::BOND_DOWN) && self.up {
            return Err(OptionError::BondUp(opt.as_str()).into());
        }
        let before = self.opts.clone();
        let events = self.opts.set(opt, value)?;
        events.into_iter().for_each(|e| self.log(e));
        self.apply_option(now, opt, &before);
        Ok(())
    }

    /// What a changed option does to a live bond.
    fn apply_option(&mut self, now: Instant, opt: OptionName, before: &Options) {
        match opt {
            OptionName::Miimon | OptionName::ArpInterval if self.monitor_settings_changed(before) => {
                self.restart_monitor(now)
            }
            OptionName::ArpIpTarget | OptionName::NsIp6Target => {
                let added: Vec<_> =
                    self.opts.monitor_targets().filter(|t| !before.monitor_targets().any(|h| h == *t)).collect();
                self.targets_added(now, &added);
            }
            OptionName::Primary => self.primary_changed(now),
            OptionName::PrimaryReselect => self.select_active_slave(now),
            _ => {}
        }
    }

    fn monitor_settings_changed(&self, before: &Options) -> bool {
        before.miimon != self.opts.miimon || before.arp_interval != self.opts.arp_interval
    }

    fn primary_changed(&mut self, now: Instant) {
        let name = self.opts.primary.clone();
        if let Some(p) = self.primary_slave() {
            let slave = p.name.clone();
            self.log(Event::PrimarySet { slave });
            self.force_primary = true;
        } else if name.is_empty() {
            self.log(Event::PrimaryNone);
        } else {
            self.log(Event::PrimaryRecorded { name });
        }
        self.select_active_slave(now);
    }
}
