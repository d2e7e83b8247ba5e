//! TLS on both sides, on rustls (ring provider).
//!
//! * Front: certificates chosen by SNI (`ServerName`/`ServerAlias` of each TLS server, or the
//!   TOML `sni` list), the first one as default; TLS 1.2 and 1.3 only (a config that asks for
//!   anything older is refused, never silently widened); ALPN `h2` and `http/1.1`.
//! * Upstream: `https://` members, verified against `SSLProxyCACertificateFile` (else the
//!   system roots) when `SSLProxyVerify require`; peer-name and expiry checks can be turned
//!   off as in httpd; a client certificate from `SSLProxyMachineCertificateFile`; SNI is the
//!   member host (not sent for IP addresses); sessions resume (one shared client config).
//!
//! Certificates are re-read whenever a snapshot is built, so a reload swaps them without
//! touching open connections.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "{}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            path.display()
        )
    })
}

/// A certificate chain and key, ready to serve: the certificate file, its key (default: in
/// the certificate file) and an optional chain file.
pub fn certified_key(
    cert: &Path,
    key: Option<&Path>,
    chain: Option<&Path>,
) -> Result<Arc<CertifiedKey>, String> {
    let mut certs = load_certs(cert)?;
    if let Some(chain) = chain {
        certs.extend(load_certs(chain)?);
    }
    let key = load_key(key.unwrap_or(cert))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: unusable private key: {e}", cert.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    // A certificate and key that do not belong together (say, half-way through replacing
    // both files) would fail every handshake: refuse them, so a reload keeps the old pair.
    ck.keys_match().map_err(|e| {
        format!(
            "{}: the private key does not match the certificate ({e})",
            cert.display()
        )
    })?;
    Ok(Arc::new(ck))
}

/// `SSLProtocol` → the rustls versions. `all`, `+TLSv1.2`, `-TLSv1.1`, … as in mod_ssl;
/// asking for SSLv3, TLSv1 or TLSv1.1 is an error (rustls has them not, and never will).
pub fn protocol_versions(
    spec: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let Some(spec) = spec else {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    };
    let (mut v12, mut v13) = (false, false);
    for w in spec.split_whitespace() {
        let (sign, name) = match w.as_bytes()[0] {
            b'+' => (Some(true), &w[1..]),
            b'-' => (Some(false), &w[1..]),
            _ => (None, w),
        };
        let on = sign != Some(false);
        match name.to_ascii_lowercase().as_str() {
            "all" => {
                v12 = on;
                v13 = on;
            }
            "tlsv1.2" => v12 = on,
            "tlsv1.3" => v13 = on,
            "sslv2" | "sslv3" | "tlsv1" | "tlsv1.1" if on => {
                return Err(format!(
                    "SSLProtocol {w}: {name} is not supported (balancerd speaks TLS 1.2 and 1.3 only)"
                ));
            }
            "sslv2" | "sslv3" | "tlsv1" | "tlsv1.1" => {}
            _ => return Err(format!("SSLProtocol: unknown protocol '{w}'")),
        }
    }
    let mut out = Vec::new();
    if v13 {
        out.push(&rustls::version::TLS13);
    }
    if v12 {
        out.push(&rustls::version::TLS12);
    }
    if out.is_empty() {
        return Err(format!(
            "SSLProtocol {spec} leaves no protocol enabled (TLSv1.2 and TLSv1.3 are available)"
        ));
    }
    Ok(out)
}

/// `SSLCipherSuite`: rustls chooses among its own strong suites; a string that asks for a
/// weak cipher (not excluded with `!`) is refused rather than silently ignored.
pub fn check_ciphers(spec: &str) -> Result<(), String> {
    const WEAK: [&str; 9] = [
        "RC4", "DES", "3DES", "NULL", "EXPORT", "EXP", "MD5", "aNULL", "eNULL",
    ];
    for item in spec.split([':', ' ', ',']).filter(|s| !s.is_empty()) {
        if item.starts_with('!') || item.starts_with('-') {
            continue;
        }
        let item = item.trim_start_matches('+');
        for w in WEAK {
            if item.eq_ignore_ascii_case(w) || item.split('-').any(|p| p.eq_ignore_ascii_case(w)) {
                return Err(format!(
                    "SSLCipherSuite asks for the weak cipher '{item}', which rustls does not offer"
                ));
            }
        }
    }
    Ok(())
}

/// Picks a certificate by SNI; the first configured is the default.
#[derive(Debug, Default)]
pub struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Adds a certificate for `names`; the first added is the default.
    pub fn add(&mut self, names: &[String], key: Arc<CertifiedKey>) {
        for n in names {
            self.by_name
                .entry(n.to_ascii_lowercase())
                .or_insert_with(|| key.clone());
        }
        if self.default.is_none() {
            self.default = Some(key);
        }
    }

    /// True when no certificate was added.
    pub fn is_empty(&self) -> bool {
        self.default.is_none()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

/// One TLS server: the names it answers to, its certificate and its protocols.
pub struct FrontEntry<'a> {
    /// SNI names.
    pub names: Vec<String>,
    /// The certificate chain and key.
    pub key: Arc<CertifiedKey>,
    /// `SSLProtocol`, as written.
    pub protocols: Option<&'a str>,
    /// `SSLVerifyClient optional|require` with its `SSLCACertificateFile`.
    pub client_auth: Option<ClientAuth<'a>>,
}

/// Client certificates a TLS listener asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAuth<'a> {
    /// The CAs a client certificate must chain to.
    pub ca_file: &'a Path,
    /// `require` (no certificate: the handshake fails) or `optional`.
    pub required: bool,
}

/// Builds the server config of one listener (ALPN `h2`, `http/1.1`).
pub fn server_config(entries: &[FrontEntry<'_>]) -> Result<Arc<ServerConfig>, String> {
    let mut r = SniResolver::default();
    let mut versions = None;
    let mut client_auth: Option<Option<ClientAuth<'_>>> = None;
    for e in entries {
        r.add(&e.names, e.key.clone());
        if versions.is_none() {
            versions = Some(protocol_versions(e.protocols)?);
        }
        // One listener asks every client the same: rustls verifies before the name is
        // known to the application.
        match client_auth {
            None => client_auth = Some(e.client_auth),
            Some(a) if a != e.client_auth => {
                return Err(format!(
                    "the names on one listener ask for client certificates differently ({} and {}): SSLVerifyClient and SSLCACertificateFile must be the same for every <VirtualHost> on a TLS port",
                    e.names.first().map_or("the default", String::as_str),
                    entries[0]
                        .names
                        .first()
                        .map_or("the default", String::as_str),
                ));
            }
            Some(_) => {}
        }
    }
    if r.is_empty() {
        return Err("a TLS listener needs at least one certificate".into());
    }
    let versions =
        versions.unwrap_or_else(|| vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match client_auth.flatten() {
        None => builder.with_no_client_auth(),
        Some(a) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(a.ca_file)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", a.ca_file.display()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            );
            let v = if a.required {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| format!("client certificate verification: {e}"))?,
            )
        }
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(r));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if let Some(t) = session_ticketer() {
        cfg.ticketer = t;
    }
    Ok(Arc::new(cfg))
}

/// The process's one session-ticket key set (rotated every 6 hours by rustls): resumption
/// costs no server memory per session, and a session survives reloads (every snapshot's
/// config shares it). `None` only when the system's random source fails; then sessions
/// resume from rustls's in-memory cache of 256 instead.
fn session_ticketer() -> Option<Arc<dyn rustls::server::ProducesTickets>> {
    static TICKETER: std::sync::OnceLock<Option<Arc<dyn rustls::server::ProducesTickets>>> =
        std::sync::OnceLock::new();
    TICKETER
        .get_or_init(|| rustls::crypto::ring::Ticketer::new().ok())
        .clone()
}

/// Accepts any member certificate (`SSLProxyVerify none`, httpd's default).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Full verification, with httpd's switches to skip the name or the expiry check.
#[derive(Debug)]
struct Relaxed {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    check_name: bool,
    check_expire: bool,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        im: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(ee, im, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) if !self.check_expire => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// How balancerd speaks TLS to `https://` members (httpd's `SSLProxy*` directives).
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings<'a> {
    /// `SSLProxyProtocol`, as written.
    pub protocols: Option<&'a str>,
    /// `SSLProxyVerify require`.
    pub verify: bool,
    /// `SSLProxyCACertificateFile` (else the system roots).
    pub ca_file: Option<&'a Path>,
    /// `SSLProxyCheckPeerName` and `SSLProxyCheckPeerCN`, both on.
    pub check_name: bool,
    /// `SSLProxyCheckPeerExpire`.
    pub check_expire: bool,
    /// `SSLProxyMachineCertificateFile`.
    pub client_cert_file: Option<&'a Path>,
    /// A separate client key file.
    pub client_key_file: Option<&'a Path>,
}

/// Builds the client config for `https://` members.
pub fn client_config(u: &ClientSettings<'_>) -> Result<Arc<ClientConfig>, String> {
    let p = provider();
    let versions = protocol_versions(u.protocols)?;
    let builder = ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = if u.verify {
        let mut roots = RootCertStore::empty();
        match u.ca_file {
            Some(ca) => {
                for c in load_certs(ca)? {
                    roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), p.clone())
                .build()
                .map_err(|e| format!("member certificate verification: {e}"))?;
        Arc::new(Relaxed {
            inner,
            check_name: u.check_name,
            check_expire: u.check_expire,
        })
    } else {
        Arc::new(NoVerify(p.clone()))
    };
    let b = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match u.client_cert_file {
        Some(cert) => {
            let certs = load_certs(cert)?;
            let key = load_key(u.client_key_file.unwrap_or(cert))?;
            b.with_client_auth_cert(certs, key)
                .map_err(|e| format!("{}: {e}", cert.display()))?
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The server name to verify and send as SNI (none is sent for an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("'{host}' is not a valid TLS server name: {e}"))
}

/// Writes a development CA, a `localhost` server certificate and a client certificate.
pub fn gen_certs(dir: &Path) -> Result<Vec<String>, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let e = |x: rcgen::Error| x.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "balancerd development CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(e)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf = |names: Vec<String>, cn: &str| -> Result<(String, String), String> {
        let k = KeyPair::generate().map_err(e)?;
        let mut p = CertificateParams::new(names).map_err(e)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        let c = p.signed_by(&k, &issuer).map_err(e)?;
        Ok((c.pem(), k.serialize_pem()))
    };
    let (srv, srv_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "localhost")?;
    let (cli, cli_key) = leaf(vec!["balancerd-client".into()], "balancerd-client")?;
    let files = [
        ("ca.pem", ca_cert.pem()),
        ("ca.key", ca_key.serialize_pem()),
        ("localhost.pem", srv),
        ("localhost.key", srv_key),
        ("client.pem", cli.clone()),
        ("client.key", cli_key.clone()),
        ("client-combined.pem", format!("{cli}{cli_key}")),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        written.push(p.display().to_string());
    }
    Ok(written)
}

/// A server connection's protocol and cipher by the names OpenSSL (and so httpd's
/// `SSL_PROTOCOL`, `SSL_CIPHER`) gives them.
pub fn openssl_names(c: &rustls::ServerConnection) -> Option<(&'static str, &'static str)> {
    use rustls::{CipherSuite as C, ProtocolVersion as P};
    let proto = match c.protocol_version()? {
        P::TLSv1_3 => "TLSv1.3",
        P::TLSv1_2 => "TLSv1.2",
        _ => "-",
    };
    let cipher = match c.negotiated_cipher_suite()?.suite() {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "-",
    };
    Some((proto, cipher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(
            protocol_versions(Some("all -SSLv3 -TLSv1 -TLSv1.1"))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(protocol_versions(Some("-all +TLSv1.3")).unwrap().len(), 1);
        assert!(protocol_versions(Some("+TLSv1.1")).is_err());
        assert!(protocol_versions(Some("TLSv1")).is_err());
        assert!(protocol_versions(Some("-all")).is_err());
        assert!(check_ciphers("HIGH:!aNULL:!MD5").is_ok());
        assert!(check_ciphers("RC4-SHA:HIGH").is_err());
    }
}
