//! What a completed TLS handshake negotiated, named the way Go nsqd 1.3.0's `/stats` names it:
//! the version, Go's cipher suite constants, and the client certificate's names in Go's
//! `pkix.Name` form.

use rustls_pki_types::CertificateDer;
use tokio_rustls::rustls::{self, ServerConnection};

use crate::broker::TlsInfo;

/// What a completed handshake negotiated, in the words Go nsqd 1.3.0's `/stats` prints:
/// `TLS1.2`/`TLS1.3`, the cipher suite by Go's constant name for the suites Go's `/stats`
/// names and `Unknown <number>` for the others (Go names only 13, none of TLS 1.3's), ALPN,
/// and the client certificate's subject, issuer, serial and common name (empty without one).
pub fn describe(conn: &ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3".to_string(),
        Some(other) => format!("Unknown {}", u16::from(other)),
        None => "Unknown 0".to_string(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map_or(0, |s| u16::from(s.suite()));
    let mut info = TlsInfo {
        version,
        cipher_suite: go_cipher_suite_name(cipher_suite),
        negotiated_protocol: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
        // Go documents this field as always true.
        negotiated_protocol_is_mutual: true,
        ..TlsInfo::default()
    };
    if let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) {
        fill_client_cert(&mut info, cert);
    }
    info
}

/// Go 1.3.0's `prettyConnectionState.GetCipherSuite`: names for the suites it lists, by their
/// IANA numbers, `Unknown <number>` otherwise.
pub fn go_cipher_suite_name(suite: u16) -> String {
    let name = match suite {
        0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0xc007 => "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        other => return format!("Unknown {other}"),
    };
    name.to_string()
}

/// The client certificate's names into `info`. A certificate that does not parse leaves them
/// empty: under `require` it was never checked, and a name is not worth refusing a client.
fn fill_client_cert(info: &mut TlsInfo, der: &CertificateDer<'_>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return;
    };
    // Go's pkix.Name keeps the last CN it meets.
    info.client_common_name = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()
        .unwrap_or_default()
        .to_string();
    info.client_subject = go_name(cert.subject());
    info.client_issuer = go_name(cert.issuer());
    info.client_serial = cert.tbs_certificate.serial.to_string();
}

/// A distinguished name as Go's `pkix.Name.String()` writes it: RDNs last first, joined by
/// `,`, multi-valued ones by `+`, Go's short attribute names, RFC 4514 escaping.
fn go_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = match oid.as_str() {
                        "2.5.4.6" => "C",
                        "2.5.4.10" => "O",
                        "2.5.4.11" => "OU",
                        "2.5.4.3" => "CN",
                        "2.5.4.5" => "SERIALNUMBER",
                        "2.5.4.7" => "L",
                        "2.5.4.8" => "ST",
                        "2.5.4.9" => "STREET",
                        "2.5.4.17" => "POSTALCODE",
                        other => other,
                    };
                    let value = match attr.as_str() {
                        Ok(text) => escape_dn_value(text),
                        Err(_) => format!("#{}", hex(attr.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_dn_value(text: &str) -> String {
    let last = text.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => i == 0 || i == last,
            '#' => i == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use tokio_rustls::rustls::crypto::{self, CryptoProvider};
    use tokio_rustls::rustls::RootCertStore;

    use super::*;
    use crate::config::{ClientAuthPolicy, TlsOptions};
    use crate::tls::TlsServer;

    #[test]
    fn cipher_suites_have_gos_names_or_gos_unknown() {
        assert_eq!(
            go_cipher_suite_name(0xc02f),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(
            go_cipher_suite_name(0xc02b),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(go_cipher_suite_name(0x002f), "TLS_RSA_WITH_AES_128_CBC_SHA");
        // TLS_AES_128_GCM_SHA256: Go 1.3.0's /stats has no name for any TLS 1.3 suite.
        assert_eq!(go_cipher_suite_name(0x1301), "Unknown 4865");
        assert_eq!(go_cipher_suite_name(0xc030), "Unknown 49200");
    }

    #[test]
    fn dn_values_are_escaped_as_go_does() {
        assert_eq!(escape_dn_value("a,b"), "a\\,b");
        assert_eq!(escape_dn_value(" lead"), "\\ lead");
        assert_eq!(escape_dn_value("trail "), "trail\\ ");
        assert_eq!(escape_dn_value("#x#"), "\\#x#");
        assert_eq!(escape_dn_value("plain name"), "plain name");
    }

    /// A handshake over an in-memory pipe between `server` and a client presenting
    /// `client_cert` (if any) and offering only `suite`; answers the server's view.
    async fn handshake(
        server: &TlsServer,
        ca: &rcgen::Certificate,
        client_cert: Option<(&rcgen::Certificate, &rcgen::KeyPair)>,
        suite: rustls::SupportedCipherSuite,
    ) -> TlsInfo {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let provider = CryptoProvider {
            cipher_suites: vec![suite],
            ..crypto::ring::default_provider()
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client_cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![cert.der().clone()],
                    rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let (client, accepted) =
            tokio::join!(connector.connect(name, client_io), server.accept(server_io));
        client.unwrap();
        describe(accepted.unwrap().get_ref().1)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn describe_names_the_version_suite_and_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test ca");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen's default name holds a CN already; start empty so that O comes first.
        client_params.distinguished_name = rcgen::DistinguishedName::new();
        client_params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc");
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "worker-1");
        client_params.serial_number = Some(rcgen::SerialNumber::from(vec![0x01, 0x00]));
        let client_cert = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        let options = TlsOptions {
            cert: Some(write(dir.path(), "cert.pem", &server_cert.pem())),
            key: Some(write(dir.path(), "key.pem", &server_key.serialize_pem())),
            root_ca_file: Some(write(dir.path(), "ca.pem", &ca.pem())),
            client_auth_policy: Some(ClientAuthPolicy::RequireVerify),
            ..TlsOptions::default()
        };
        let server = TlsServer::from_options(&options).unwrap().unwrap();

        let tls13 = handshake(
            &server,
            &ca,
            Some((&client_cert, &client_key)),
            crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        )
        .await;
        assert_eq!(tls13.version, "TLS1.3");
        assert_eq!(tls13.cipher_suite, "Unknown 4865");
        assert_eq!(tls13.negotiated_protocol, "");
        assert!(tls13.negotiated_protocol_is_mutual);
        assert_eq!(tls13.client_common_name, "worker-1");
        assert_eq!(tls13.client_subject, "CN=worker-1,O=Acme\\, Inc");
        assert_eq!(tls13.client_issuer, "CN=test ca");
        assert_eq!(tls13.client_serial, "256");

        // rcgen's default keys are ECDSA P-256, hence an ECDHE-ECDSA suite.
        let tls12 = handshake(
            &server,
            &ca,
            Some((&client_cert, &client_key)),
            crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        )
        .await;
        assert_eq!(tls12.version, "TLS1.2");
        assert_eq!(
            tls12.cipher_suite,
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(tls12.client_common_name, "worker-1");
    }
}
