//! Lines for the user on standard output. A closed pipe (`rnsq meta export | head`) ends the
//! output quietly instead of panicking as `println!` would.

use std::io::Write;

/// Writes `line` and a newline to standard output; a write error is ignored.
pub fn say(line: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(line.as_ref().as_bytes())
        .and_then(|()| stdout.write_all(b"\n"));
}
