//! Standard error with Go's log prefix (`--log-prefix`, `[nsqd] ` by default): every log line
//! either daemon writes starts with it, as Go's logger puts its prefix first.

use std::io::{self, Write};

/// Makes writers that put `prefix` before each log line on standard error.
#[derive(Debug, Clone)]
pub struct PrefixedStderr {
    prefix: String,
}

impl PrefixedStderr {
    /// Log lines will start with `prefix` (which may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        PrefixedStderr {
            prefix: prefix.into(),
        }
    }
}

/// One event's writer: the formatter hands it a whole line, which goes out with the prefix
/// under one lock of standard error, so lines from different threads never mix.
pub struct PrefixedLine<'a> {
    prefix: &'a str,
}

impl Write for PrefixedLine<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut stderr = io::stderr().lock();
        if !self.prefix.is_empty() {
            stderr.write_all(self.prefix.as_bytes())?;
        }
        stderr.write_all(line)?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for PrefixedStderr {
    type Writer = PrefixedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        PrefixedLine {
            prefix: &self.prefix,
        }
    }
}
