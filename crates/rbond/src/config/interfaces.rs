//! ifupdown's `/etc/network/interfaces` format (interfaces(5)), parsed as ifupdown parses it:
//! `#` comments at the start of a line, `\` continuations, `auto`, `allow-CLASS`, `iface`
//! stanzas with their option lines, `mapping` blocks, `source` and `source-directory`
//! (relative to the including file, with globs). Every item remembers its file and line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where something was written: a file and a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: Arc<Path>,
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A problem in a file, shown as `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct ParseError {
    pub place: Place,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionLine {
    /// As written (`bond-miimon`, `bond_miimon`, `address` …).
    pub name: String,
    pub value: String,
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    /// `inet`, `inet6`, …
    pub family: String,
    /// `static`, `dhcp`, `manual`, `loopback`, …
    pub method: String,
    pub options: Vec<OptionLine>,
    pub place: Place,
}

impl Iface {
    /// Values of an option, by ifupdown's rule that `-` and `_` and case do not matter (it
    /// hands options to scripts as `IF_<NAME>`).
    pub fn values(&self, name: &str) -> impl Iterator<Item = &OptionLine> + '_ {
        let want = env_name(name);
        self.options.iter().filter(move |o| env_name(&o.name) == want)
    }

    pub fn value(&self, name: &str) -> Option<&OptionLine> {
        self.values(name).last()
    }
}

/// The environment variable name ifupdown gives an option: `bond-miimon` → `BOND_MIIMON`.
pub fn env_name(option: &str) -> String {
    option
        .chars()
        .filter_map(|c| match c {
            '-' | '_' => Some('_'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub patterns: Vec<String>,
    pub options: Vec<OptionLine>,
    pub place: Place,
}

/// Interface names marked for bringing up: by `auto`, or by `allow-CLASS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// `auto`, or the class of `allow-CLASS` (`hotplug`, `bond0` …).
    pub class: String,
    pub name: String,
    pub place: Place,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    pub ifaces: Vec<Iface>,
    pub marks: Vec<Mark>,
    pub mappings: Vec<Mapping>,
}

impl Interfaces {
    /// Reads a file and everything it sources.
    pub fn read(path: &Path) -> Result<Interfaces, ParseError> {
        let mut out = Interfaces::default();
        out.read_into(path, None, 0)?;
        Ok(out)
    }

    /// Parses text as if it were the file `path` (sources are still read from disk).
    pub fn parse(text: &str, path: &Path) -> Result<Interfaces, ParseError> {
        let mut out = Interfaces::default();
        out.parse_into(text, Arc::from(path), 0)?;
        Ok(out)
    }

    pub fn iface(&self, name: &str) -> Vec<&Iface> {
        self.ifaces.iter().filter(|i| i.name == name).collect()
    }

    fn read_into(&mut self, path: &Path, from: Option<&Place>, depth: usize) -> Result<(), ParseError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let place = from.cloned().unwrap_or(Place { file: Arc::from(path), line: 0 });
            ParseError { place, message: format!("cannot read {}: {e}", path.display()) }
        })?;
        self.parse_into(&text, Arc::from(path), depth)
    }

    fn parse_into(&mut self, text: &str, file: Arc<Path>, depth: usize) -> Result<(), ParseError> {
        let mut current: Option<Block> = None;
        for (line, content) in logical_lines(text) {
            let place = Place { file: file.clone(), line };
            let err = |message: String| ParseError { place: place.clone(), message };
            let mut words = content.split_whitespace();
            let Some(keyword) = words.next() else { continue };
            let rest: Vec<&str> = words.collect();
            match keyword {
                "iface" => {
                    self.close(current.take());
                    let [name, family, method] = rest[..] else {
                        return Err(err(format!("iface needs a name, an address family and a method: \"{content}\"")));
                    };
                    let iface = Iface {
                        name: name.into(),
                        family: family.into(),
                        method: method.into(),
                        options: Vec::new(),
                        place,
                    };
                    current = Some(Block::Iface(iface));
                }
                "mapping" => {
                    self.close(current.take());
                    if rest.is_empty() {
                        return Err(err("mapping needs at least one interface pattern".into()));
                    }
                    let patterns = rest.iter().map(|s| s.to_string()).collect();
                    current = Some(Block::Mapping(Mapping { patterns, options: Vec::new(), place }));
                }
                "auto" | "allow-auto" => self.mark("auto", &rest, &place),
                k if k.starts_with("allow-") => self.mark(&k["allow-".len()..], &rest, &place),
                "source" | "source-directory" => {
                    self.close(current.take());
                    let Some(pattern) = rest.first() else { return Err(err(format!("{keyword} needs a path"))) };
                    if depth > 16 {
                        return Err(err("source nested too deeply (a loop?)".into()));
                    }
                    for path in sourced(keyword, pattern, &file) {
                        self.read_into(&path, Some(&place), depth + 1)?;
                    }
                }
                "no-auto-down" | "no-scripts" | "rename" => self.close(current.take()),
                name => match current.as_mut() {
                    Some(block) => {
                        let value = rest.join(" ");
                        block.options().push(OptionLine { name: name.to_string(), value, place });
                    }
                    None => return Err(err(format!("option \"{name}\" is not inside an iface or mapping stanza"))),
                },
            }
        }
        self.close(current);
        Ok(())
    }

    fn mark(&mut self, class: &str, names: &[&str], place: &Place) {
        for n in names {
            self.marks.push(Mark { class: class.to_string(), name: n.to_string(), place: place.clone() });
        }
    }

    fn close(&mut self, block: Option<Block>) {
        match block {
            Some(Block::Iface(i)) => self.ifaces.push(i),
            Some(Block::Mapping(m)) => self.mappings.push(m),
            None => {}
        }
    }
}

enum Block {
    Iface(Iface),
    Mapping(Mapping),
}

impl Block {
    fn options(&mut self) -> &mut Vec<OptionLine> {
        match self {
            Block::Iface(i) => &mut i.options,
            Block::Mapping(m) => &mut m.options,
        }
    }
}

/// Lines with comments dropped and `\` continuations joined, each numbered by where it began.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let continuing = pending.is_some();
        if !continuing && raw.trim_start().starts_with('#') {
            continue;
        }
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                pending = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                out.push((start, acc));
            }
        }
    }
    out.extend(pending);
    out
}

/// The files a `source` (a glob) or `source-directory` (files named only with letters,
/// digits, `-` and `_`, as run-parts picks them) names, relative to the including file.
fn sourced(keyword: &str, pattern: &str, from: &Path) -> Vec<PathBuf> {
    let base = from.parent().unwrap_or(Path::new("."));
    let full = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { base.join(pattern) };
    let mut files: Vec<PathBuf> = if keyword == "source-directory" {
        let valid = |p: &PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        };
        std::fs::read_dir(&full)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(valid).collect())
            .unwrap_or_default()
    } else {
        glob(&full)
    };
    files.sort();
    files
}

/// A glob over the last path component only (`*` and `?`), as `source` patterns use it. A
/// pattern without wildcards names one file, which must exist.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![pattern.to_path_buf()];
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>()).unwrap_or_default();
    entries
        .into_iter()
        .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name.as_bytes(), n.as_bytes())))
        .map(|e| e.path())
        .collect()
}

/// Whether `s` matches the shell pattern `p` (`*` and `?`). Greedy with one remembered
/// star, so time is at most |p|·|s| however many stars there are (a naive recursion is
/// exponential: the fuzzer found a mapping line that hung it).
pub(crate) fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // Where the last star was, and where in `s` it stopped matching.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(c) if *c == b'?' || *c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                // Let the last star swallow one more byte and try again from there.
                Some((sp, ss)) => {
                    star = Some((sp, ss + 1));
                    pi = sp + 1;
                    si = ss + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_as_the_shell_does() {
        let cases: &[(&str, &str, bool)] = &[
            ("eth*", "eth0", true),
            ("eth*", "eth", true),
            ("eth*", "bond0", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("e?h0", "eth0", true),
            ("e?h0", "eh0", false),
            ("*0", "eth0", true),
            ("*a*b", "xaybzb", true),
            ("*a*b", "xaybzc", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("**x", "yyx", true),
            ("?*", "", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(wildcard(p.as_bytes(), s.as_bytes()), *want, "{p} ~ {s}");
        }
    }

    /// The input the fuzzer found: a mapping of a hundred stars took exponential time.
    #[test]
    fn many_stars_are_cheap() {
        let pattern = format!("{}eth *x", "*".repeat(100));
        assert!(!wildcard(pattern.as_bytes(), "eth0 and a long name that never ends in x!".as_bytes()));
    }
}
