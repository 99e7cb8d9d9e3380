//! What the daemon answers on its control socket.

use rbond_core::{Command, Input};

use super::{Daemon, now};
use crate::control::server::ClientId;
use crate::control::{Reply, Request, Status};

impl Daemon {
    /// Serves one client. A reply describes the bond as it is on the wire: whatever the
    /// engine decided before or because of a request is carried out first. (Answering first
    /// let a client see an active slave before the datapath used it, and its first ARP
    /// request was dropped.)
    pub(super) fn serve(&mut self, id: ClientId) {
        self.apply_actions();
        for req in self.io.control.service(id) {
            let reply = match req {
                Ok(r) => self.request(id, r),
                Err(e) => Reply::error(e),
            };
            self.apply_actions();
            self.io.control.reply(id, &reply);
        }
    }

    /// One request's answer; every request but `events --follow` closes the connection.
    pub(super) fn request(&mut self, id: ClientId, req: Request) -> Reply {
        let follow = matches!(req, Request::Events { follow: true });
        let reply = self.answer(req).unwrap_or_else(Reply::error);
        if follow {
            self.io.control.follow(id);
        } else {
            self.io.control.finish(id);
        }
        reply
    }

    fn answer(&mut self, req: Request) -> anyhow::Result<Reply> {
        let now = now();
        Ok(match req {
            Request::Status => Reply::Status(Box::new(self.status())),
            Request::Get { option } => match self.engine.report().sysfs(&option) {
                Some(value) => Reply::Value { value },
                None => anyhow::bail!("unknown option {option}"),
            },
            Request::Set { option, value } => {
                self.engine.set_option(now, &option, &value)?;
                self.record();
                Reply::Done
            }
            Request::Enslave { slave } => {
                self.enslave(&slave)?;
                Reply::Done
            }
            Request::Release { slave } => {
                self.release(&slave)?;
                Reply::Done
            }
            Request::ReleaseAll => {
                self.release_all();
                self.record();
                Reply::Done
            }
            Request::SetActive { slave } => {
                self.engine.handle(now, Input::Command(Command::ChangeActive(slave)))?;
                Reply::Done
            }
            Request::SetPrio { slave, prio } => {
                self.engine.handle(now, Input::Command(Command::SetPrio { slave, prio }))?;
                self.record();
                Reply::Done
            }
            Request::Events { .. } => Reply::Events { lines: self.log.history().cloned().collect() },
            Request::Restart => {
                self.life.restart = true;
                Reply::Restarting { pid: std::process::id(), generation: self.life.generation }
            }
            Request::Verify => {
                self.engine.handle(now, Input::Command(Command::Verify))?;
                let targets: Vec<String> = self.engine.probe_targets().iter().map(|t| t.to_string()).collect();
                Reply::Value { value: targets.join(" ") }
            }
            Request::Down => {
                self.life.stop = Some(format!("{}: stopping on request", self.name));
                Reply::Done
            }
        })
    }

    pub(super) fn status(&self) -> Status {
        let report = self.engine.report_at(now());
        Status {
            text: report.proc_text(),
            report,
            generation: self.life.generation,
            adoptions: self.life.adoptions,
            restart_error: self.life.restart_error.clone(),
            datapath: self.datapath.describe(),
            pid: std::process::id(),
        }
    }
}
