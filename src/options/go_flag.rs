//! Flag values as Go's `flag` package reads them where clap's own parsers differ: a boolean
//! flag takes every spelling Go's `strconv.ParseBool` takes.

/// Parses a boolean as Go's `strconv.ParseBool`: `1 t T TRUE true True` or
/// `0 f F FALSE false False`; anything else is refused with a message saying so.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean {text:?} (expected true, false, 1, 0, t or f)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_gos_spellings_only() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        for bad in ["", "yes", "tRUE", "2", "on"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
    }
}
