//! Ethernet hardware addresses.

use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const ZERO: Mac = Mac([0; 6]);

    /// A locally administered unicast address derived from `seed` and `salt`.
    ///
    /// The kernel picks a random address where it needs a fresh one (a `follow` slave that
    /// would duplicate the bond's, a bond whose last slave left). The engine has no entropy
    /// source, so it derives one: stable across runs, distinct from `seed`, never multicast.
    pub fn derived(seed: Mac, salt: &str) -> Mac {
        // FNV-1a over the seed and the salt: cheap, deterministic, well spread.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.0.iter().chain(salt.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        let mut out = [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]];
        if out == seed.0 {
            out[5] ^= 0x01;
        }
        Mac(out)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address '{0}' (expected six hex pairs like 00:11:22:33:44:55)")]
pub struct MacParseError(pub String);

impl FromStr for Mac {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Mac, MacParseError> {
        let bad = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_lower_case_with_colons() {
        assert_eq!(Mac([0, 0x0a, 0x0b, 0xC, 0xd, 1]).to_string(), "00:0a:0b:0c:0d:01");
    }

    #[test]
    fn parses_what_it_prints_and_rejects_garbage() {
        let m: Mac = "00:0A:0b:0c:0d:01".parse().unwrap();
        assert_eq!(m.to_string(), "00:0a:0b:0c:0d:01");
        for bad in ["", "00:0a:0b:0c:0d", "00:0a:0b:0c:0d:01:02", "0:0a:0b:0c:0d:01", "zz:0a:0b:0c:0d:01"] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_addresses_are_local_unicast_and_differ_from_the_seed() {
        let seed = Mac([0x02, 0, 0, 0, 0, 1]);
        let d = Mac::derived(seed, "eth1");
        assert_eq!(d.0[0] & 0x03, 0x02);
        assert_ne!(d, seed);
        assert_eq!(d, Mac::derived(seed, "eth1"));
        assert_ne!(d, Mac::derived(seed, "eth2"));
    }
}
