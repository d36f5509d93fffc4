//! The process's open-descriptor limit. Go programs since Go 1.19 raise their soft
//! `RLIMIT_NOFILE` to the hard limit at start-up, so Go nsqd takes as many connections as the
//! hard limit allows; rnsq's daemons do the same, or a drop-in replacement would refuse
//! clients at the soft limit (often 1024) that Go nsqd serves.

use std::io;

/// The soft and hard descriptor limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub soft: u64,
    pub hard: u64,
}

/// The limits in force now.
///
/// # Errors
/// What `getrlimit` reports (it cannot fail for `RLIMIT_NOFILE` on Linux in practice).
pub fn current() -> io::Result<Limits> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Limits {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Raises the soft limit to `want`, capped at the hard limit; never lowers it. Returns the
/// limits in force afterwards.
///
/// # Errors
/// What `getrlimit` or `setrlimit` reports; the limits are then unchanged.
pub fn raise_to(want: u64) -> io::Result<Limits> {
    let now = current()?;
    let target = want.min(now.hard);
    if target <= now.soft {
        return Ok(now);
    }
    let limit = libc::rlimit {
        rlim_cur: target,
        rlim_max: now.hard,
    };
    // SAFETY: setrlimit only reads the struct passed, which lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Limits {
        soft: target,
        hard: now.hard,
    })
}

/// Raises the soft limit to the hard limit, as a Go program does at start-up.
///
/// # Errors
/// As [`raise_to`].
pub fn raise_to_hard() -> io::Result<Limits> {
    raise_to(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_and_stops_at_the_hard_limit() {
        let before = current().expect("getrlimit");
        let after = raise_to(1).expect("setrlimit");
        assert_eq!(
            after.soft, before.soft,
            "asking for less must not lower the limit"
        );
        let after = raise_to_hard().expect("setrlimit");
        assert_eq!(after.soft, after.hard);
        assert_eq!(current().expect("getrlimit"), after);
    }
}
