//! CLI pieces that need no root: completions and the man page, made from the same
//! definitions as the parser.

use std::process::Command;

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
