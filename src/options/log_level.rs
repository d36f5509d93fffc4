//! The log levels of Go's NSQ daemons, by name (flags, config files, `PUT /config/log_level`)
//! and by Go's number (`GET /config/log_level`).

use std::fmt;
use std::str::FromStr;

/// nsqd's log levels; the number is Go's (`GET /config/log_level` answers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Fatal = 5,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            "fatal" => Ok(LogLevel::Fatal),
            _ => Err(format!(
                "invalid log level {s:?} (debug, info, warn, error, fatal)"
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_numbers_are_gos() {
        for (level, number) in [
            (LogLevel::Debug, 1),
            (LogLevel::Info, 2),
            (LogLevel::Warn, 3),
            (LogLevel::Error, 4),
            (LogLevel::Fatal, 5),
        ] {
            assert_eq!(level.to_string().parse::<LogLevel>(), Ok(level));
            assert_eq!(level as i64, number);
        }
        assert_eq!(" WARN ".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!(
            "loud".parse::<LogLevel>(),
            Err("invalid log level \"loud\" (debug, info, warn, error, fatal)".into())
        );
    }
}
