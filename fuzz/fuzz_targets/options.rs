//! Option writes (`name=value` per line), at creation and on a running bond with slaves: each
//! is taken or refused with a message, never a panic.
#![no_main]

use rbond_core::{Bond, Command, Input, Instant, LinkInfo, Mac, Options, SlaveId, SlaveSpec};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let pairs: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let mut opts = Options::default();
    for (k, v) in &pairs {
        let _ = opts.apply(k, v);
    }
    let Ok(mut bond) = Bond::new("bond0", opts) else { return };
    let mut now = Instant::ZERO;
    for (i, name) in ["eth0", "eth1"].into_iter().enumerate() {
        let spec = SlaveSpec {
            id: SlaveId(i as u32 + 2),
            name: name.into(),
            mac: Mac([2, 0, 0, 0, 0, i as u8]),
            link: LinkInfo::up(),
        };
        let _ = bond.handle(now, Input::Enslave(spec));
    }
    let _ = bond.handle(now, Input::Command(Command::Up));
    for (k, v) in &pairs {
        now = now + core::time::Duration::from_millis(37);
        bond.handle_timeout(now);
        let _ = bond.handle(now, Input::Command(Command::SetOption { name: k.to_string(), value: v.to_string() }));
        while bond.poll_action().is_some() {}
    }
    let _ = bond.report().proc_text();
});
