//! CLI pieces that need no root: completions and the man page, made from the same
//! definitions as the parser, and what a command says when its daemon does not answer.

use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::{Duration, Instant};

fn rbond(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rbond")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn completions_and_man_page_cover_every_command() {
    let (code, bash) = rbond(&["completions", "bash"]);
    assert_eq!(code, Some(0));
    let (_, man) = rbond(&["manpage"]);
    assert!(man.contains(".TH rbond 1"), "{man}");
    for cmd in [
        "daemon",
        "status",
        "events",
        "enslave",
        "release",
        "set-active",
        "get",
        "set",
        "up",
        "down",
        "drill",
        "lint",
        "ifenslave",
        "install-hooks",
    ] {
        assert!(bash.contains(cmd), "bash completion lacks {cmd}");
        assert!(man.contains(&cmd.replace("-", "\\-")), "man page lacks {cmd}");
    }
    assert_eq!(rbond(&["completions", "zsh"]).0, Some(0));
    assert_eq!(rbond(&["completions", "tcsh"]).0, Some(2), "an unknown shell is a usage error");
}

/// A daemon whose socket takes the connection and never answers (hung): a command gives up
/// after 10 s with one line naming the bond, instead of hanging a shell or ifupdown.
#[test]
fn a_command_to_a_stuck_daemon_fails_after_ten_seconds() {
    let dir = std::env::temp_dir().join(format!("rbond-cli-stuck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _stuck = UnixListener::bind(dir.join("bond0.sock")).unwrap();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rbond"))
        .args(["status", "--run-dir"])
        .arg(&dir)
        .arg("bond0")
        .output()
        .unwrap();
    let took = start.elapsed();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rbond: bond0: the daemon did not answer within 10s (it may be stuck: see the system log)\n"
    );
    assert!((Duration::from_secs(10)..Duration::from_secs(20)).contains(&took), "{took:?}");
}
