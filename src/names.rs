//! Topic and channel names: NSQ's validity rule and the `#ephemeral` suffix.
//!
//! A name matches `^[.a-zA-Z0-9_-]+(#ephemeral)?$` and is 1..=64 bytes long, suffix included.
//! The same rule governs topics and channels.

/// The suffix that marks a topic or channel as ephemeral: never persisted, deleted when unused.
pub const EPHEMERAL_SUFFIX: &str = "#ephemeral";

/// The longest valid name, in bytes, including any `#ephemeral` suffix.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid NSQ topic name.
pub fn is_valid_topic_name(name: &str) -> bool {
    is_valid_name(name)
}

/// Whether `name` is a valid NSQ channel name.
pub fn is_valid_channel_name(name: &str) -> bool {
    is_valid_name(name)
}

/// Whether `name` carries the `#ephemeral` suffix. Says nothing about validity.
pub fn is_ephemeral(name: &str) -> bool {
    name.ends_with(EPHEMERAL_SUFFIX)
}

fn is_valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let base = name.strip_suffix(EPHEMERAL_SUFFIX).unwrap_or(name);
    !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nsq_names() {
        for name in [
            "a",
            "test",
            "a.b-c_d",
            "UPPER.lower-09",
            "x#ephemeral",
            &"a".repeat(64),
        ] {
            assert!(is_valid_topic_name(name), "{name} should be valid");
            assert!(is_valid_channel_name(name), "{name} should be valid");
        }
        let long_ephemeral = format!("{}{}", "a".repeat(54), EPHEMERAL_SUFFIX);
        assert_eq!(long_ephemeral.len(), 64);
        assert!(is_valid_topic_name(&long_ephemeral));
    }

    #[test]
    fn refuses_what_nsq_refuses() {
        let too_long = "a".repeat(65);
        let too_long_ephemeral = format!("{}{}", "a".repeat(55), EPHEMERAL_SUFFIX);
        for name in [
            "",
            "#ephemeral",
            "a b",
            "a/b",
            "a#b",
            "a#ephemeral#ephemeral",
            "a#Ephemeral",
            "é",
            "a\0b",
            "a\n",
            too_long.as_str(),
            too_long_ephemeral.as_str(),
        ] {
            assert!(!is_valid_topic_name(name), "{name:?} should be invalid");
        }
    }

    #[test]
    fn ephemeral_suffix() {
        assert!(is_ephemeral("c#ephemeral"));
        assert!(!is_ephemeral("c"));
        assert!(!is_ephemeral("c#ephemera"));
    }
}
