//! Human-friendly durations (`"3s"`, `"1m30s"`, `"1d"`) and sizes (`"64MiB"`) in config files.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A duration in whole milliseconds, written in config as `"500ms"`, `"3s"`, `"2m"`, `"1d"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub i64);

impl Millis {
    /// As a [`std::time::Duration`] (a negative value, which validation refuses, as zero).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_millis(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses `"3s"`, `"1m 30s"`, `"250ms"`, `"1d"`; a bare `"0"` is zero.
pub fn parse_millis(s: &str) -> Result<Millis, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Millis(0));
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. \"500ms\", \"3s\", \"2m\", \"1d\"")
    })?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "`{s}` is finer than a millisecond; event time has millisecond resolution"
        ));
    }
    i64::try_from(d.as_millis())
        .map(Millis)
        .map_err(|_| format!("`{s}` is too long"))
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms % 86_400_000 == 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms != 0 && ms % 3_600_000 == 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms % 60_000 == 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// A size in bytes, written in config as `"64MiB"`, `"512KiB"`, `"1GiB"` or a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// As a `usize` (saturating on a 32-bit host).
    pub fn usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"64MiB"`, `"512 KiB"`, `"1GiB"`, `"2MB"`, `"4096"`.
pub fn parse_size(s: &str) -> Result<ByteSize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. \"64MiB\""))?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "`{other}` in `{s}` is not a size unit; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mul)
        .map(ByteSize)
        .ok_or_else(|| format!("`{s}` is too large"))
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b != 0 && b.is_multiple_of(1 << 30) {
            write!(f, "{}GiB", b >> 30)
        } else if b != 0 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", b >> 20)
        } else if b != 0 && b.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_millis("3s"), Ok(Millis(3000)));
        assert_eq!(parse_millis("1m 30s"), Ok(Millis(90_000)));
        assert_eq!(parse_millis("250ms"), Ok(Millis(250)));
        assert_eq!(parse_millis("1d"), Ok(Millis(86_400_000)));
        assert_eq!(parse_millis("0"), Ok(Millis(0)));
        assert!(parse_millis("three seconds").is_err());
        assert_eq!(Millis(90_000).to_string(), "90s");
        assert_eq!(Millis(120_000).to_string(), "2m");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(ByteSize(64 << 20)));
        assert_eq!(parse_size("512 KiB"), Ok(ByteSize(512 << 10)));
        assert_eq!(parse_size("4096"), Ok(ByteSize(4096)));
        assert!(parse_size("64 furlongs").is_err());
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
    }
}
