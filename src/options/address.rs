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
