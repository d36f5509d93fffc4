//! A process's resident memory, as Linux's `/proc/<pid>/statm` counts it. `/stats`, statsd's
//! `mem.heap_in_use_bytes` and `rnsq bench connections` all report this one figure.

/// The page size `statm` counts in (4 KiB on the machines rnsq runs on; libc is not asked so
/// the figure matches what `/stats` has always reported).
const PAGE: u64 = 4096;

/// The resident bytes in the text of a `statm` file (its second field), or `None` if the text
/// is not one.
pub fn parse_statm(text: &str) -> Option<u64> {
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE)
}

/// This process's resident bytes, or `None` when `/proc/self/statm` cannot be read.
pub async fn of_self() -> Option<u64> {
    parse_statm(&tokio::fs::read_to_string("/proc/self/statm").await.ok()?)
}

/// Process `pid`'s resident bytes, or `None` when its `statm` cannot be read (no such
/// process, not Linux).
pub async fn of_process(pid: u32) -> Option<u64> {
    parse_statm(
        &tokio::fs::read_to_string(format!("/proc/{pid}/statm"))
            .await
            .ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_second_field_in_pages() {
        assert_eq!(parse_statm("1000 25 3 1 0 40 0\n"), Some(25 * 4096));
        assert_eq!(parse_statm("1000"), None);
        assert_eq!(parse_statm("a b c"), None);
    }

    #[tokio::test]
    async fn this_process_is_resident() {
        let bytes = of_self().await.expect("statm");
        assert!(bytes > 0);
        assert_eq!(
            of_process(std::process::id()).await.map(|b| b > 0),
            Some(true)
        );
    }
}
