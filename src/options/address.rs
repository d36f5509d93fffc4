//! Addresses as Go's daemons read them: a listen address (`net.Listen`'s `host:port`), a peer's
//! `host:port`, and this machine's host name, the default address each daemon announces.

use std::net::SocketAddr;

/// This machine's host name, as Go's `os.Hostname()` gives it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Parses a listen address the way Go's `net.Listen` reads it: `host:port`, with an empty host
/// (`:4150`) meaning every interface.
pub fn listen_address(address: &str) -> Result<SocketAddr, String> {
    let full = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.into()
    };
    full.parse::<SocketAddr>()
        .or_else(|_| {
            // A host name such as localhost:4150.
            use std::net::ToSocketAddrs;
            full.to_socket_addrs()
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| "resolves to no address".to_string())
        })
        .map_err(|e| format!("invalid address {address:?}: {e}"))
}

/// Checks that `address` is `host:port` with a numeric port.
pub fn validate_host_port(address: &str) -> Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid address {address:?}: expected host:port"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("invalid address {address:?}: expected host:port"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_reads_an_empty_host_as_every_interface() {
        assert_eq!(listen_address(":4150"), Ok("0.0.0.0:4150".parse().unwrap()));
        assert_eq!(
            listen_address("127.0.0.1:0"),
            Ok("127.0.0.1:0".parse().unwrap())
        );
        assert!(listen_address("nonsense")
            .unwrap_err()
            .starts_with("invalid address \"nonsense\": "));
    }

    #[test]
    fn validate_host_port_wants_a_host_and_a_numeric_port() {
        assert_eq!(validate_host_port("lookupd-1:4160"), Ok(()));
        for bad in ["lookupd-1", ":4160", "lookupd-1:http", "lookupd-1:70000"] {
            assert_eq!(
                validate_host_port(bad),
                Err(format!("invalid address {bad:?}: expected host:port")),
            );
        }
    }
}
