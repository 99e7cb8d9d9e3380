//! The README says what the code does: its option table is the engine's option table.

use rbond_core::{OPTIONS, OptionInfo, Values};

fn code(s: &str) -> String {
    format!("`{s}`")
}

/// The README's cells for an option: its interfaces(5) name, `--opt` name, meaning, default
/// and values.
fn cells(o: &OptionInfo) -> [String; 5] {
    let default = match o.values {
        // A choice reads `name number` in sysfs: the name is the default people write.
        Values::Table(_) => {
            let d = o.default_text();
            let d = code(d.split(' ').next().unwrap_or_default());
            if o.in_ms { format!("{d} ms") } else { d }
        }
        _ => "none".to_string(),
    };
    let values = match (o.values, o.range()) {
        (Values::Table(t), Some((min, max))) => {
            let names: Vec<String> = t.iter().filter(|v| v.name != "default").map(|v| code(v.name)).collect();
            format!("{min} – {max}; {}", names.join(" "))
        }
        (Values::Table(t), None) => t.iter().map(|v| code(v.name)).collect::<Vec<_>>().join(" "),
        (Values::Ipv4Targets, _) => "up to 16 IPv4 addresses".into(),
        (Values::Ipv6Targets, _) => "up to 16 IPv6 addresses".into(),
        (Values::Interface, _) => "an interface name".into(),
    };
    [code(o.debian), code(o.sysfs), o.help.to_string(), default, values]
}

#[test]
fn the_readme_option_table_is_the_engines() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter(|l| l.starts_with("| `bond-"))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect();
    let mut missing = Vec::new();
    for o in OPTIONS {
        let want = cells(o);
        match rows.iter().find(|r| r.first() == Some(&want[0])) {
            Some(r) if r.len() >= 5 && r[..5] == want => {}
            _ => missing.push(format!("| {} | (notes) |", want.join(" | "))),
        }
    }
    assert!(
        missing.is_empty(),
        "README rows that differ from the option table; they should read:\n{}",
        missing.join("\n")
    );
}

/// The unit in the repository is the one `rbond install-unit` writes, for /usr/sbin/rbond.
#[test]
fn the_repository_unit_is_the_installed_one() {
    let repo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/rbond@.service")).unwrap();
    let made = rbond::cli::unit::text(std::path::Path::new("/usr/sbin/rbond"), std::path::Path::new("/run/rbond"));
    assert_eq!(
        repo, made,
        "regenerate dist/rbond@.service with `rbond install-unit --dir dist` (binary /usr/sbin/rbond)"
    );
}

/// The alert rules the README offers load in Prometheus (`promtool check rules`, from Debian's
/// prometheus package, which the test script installs).
#[test]
fn the_readme_alert_rules_are_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let after = readme.split("<!-- alert-rule -->\n```yaml\n").nth(1).expect("the alert-rule block");
    let rules = after.split("\n```").next().unwrap();
    let path = std::env::temp_dir().join(format!("rbond-rules-{}.yml", std::process::id()));
    std::fs::write(&path, rules).unwrap();
    let out = match std::process::Command::new("promtool").args(["check", "rules"]).arg(&path).output() {
        Ok(out) => out,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: promtool: {e}");
            return eprintln!("skipped: promtool: {e} (apt-get install prometheus)");
        }
    };
    std::fs::remove_file(&path).unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("SUCCESS: 2 rules found"), "{said}");
}
