//! TLS on the public port with rustls (ring, TLS 1.2 and 1.3 only): the server certificate and
//! key, the CA bundle that signs charger client certificates (security profile 3), and their
//! reload without dropping anyone (SIGHUP, or a change of the files, seen by polling). A bad
//! new file is refused with a log line and the old configuration kept. Connections already
//! open keep the configuration they shook hands with.
//!
//! Client certificates are asked for but never required during the handshake, and any
//! certificate whose key signs the handshake is let through to HTTP: the verdict (chains to
//! `tls_client_ca`, in its validity period, usable for client auth) is taken with the same
//! rules right after the handshake and carried with the connection ([`ClientCert`]), so the
//! upgrade can refuse a charger by name and record why, instead of a nameless handshake
//! failure. It knows nothing of chargers or routes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle for client certificates; `None`: none are asked for.
    pub client_ca: Option<PathBuf>,
}

/// What the connection's client certificate is worth, judged right after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCert {
    /// None was presented (or no `tls_client_ca` is configured, so none was asked for).
    None,
    /// It chains to `tls_client_ca`, is in its validity period and allows client auth;
    /// `common_name` is its subject CN, if it has one.
    Valid { common_name: Option<String> },
    /// Presented but not acceptable; the reason, for the security event.
    Invalid(String),
}

/// One loaded configuration: what new handshakes use, and the verifier that judges the
/// client certificate they present.
#[derive(Clone)]
struct Loaded {
    config: Arc<ServerConfig>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    stamp: Stamp,
}

/// The files' modification times and sizes: a change of any is a reason to reload.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The live TLS configuration of a listener; cheap to share.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Loaded>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Loads the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Tls, String> {
        let loaded = load(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(loaded),
        })
    }

    /// The configuration a new handshake uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.read().config.clone()
    }

    fn read(&self) -> Loaded {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the files again. On success new handshakes use them; on failure the old ones
    /// stay and the error says why. Open connections are never touched.
    pub fn reload(&self) -> Result<(), String> {
        let loaded = load(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(())
    }

    /// Reloads when a file changed since the last load (or the last failed attempt, so a bad
    /// file is reported once, not on every poll). `Ok(false)`: nothing changed.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.files);
        {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            if current.stamp == now {
                return Ok(false);
            }
            current.stamp = now;
        }
        self.reload().map(|()| true)
    }

    /// Watches the files every `every` and reloads on a change, logging the outcome, until
    /// `stop` is cancelled.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.reload_if_changed() {
                Ok(true) => tracing::info!("TLS files changed: new certificate loaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "TLS files changed but cannot be loaded; keeping the old certificate")
                }
            }
        }
    }

    /// Judges the client certificate chain a connection presented (leaf first), with the
    /// verifier of the configuration current now.
    pub fn judge(&self, chain: Option<&[CertificateDer<'_>]>) -> ClientCert {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return ClientCert::None;
        };
        let Some(verifier) = self.read().verifier else {
            return ClientCert::None;
        };
        match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
            Ok(_) => ClientCert::Valid {
                common_name: common_name(leaf),
            },
            Err(e) => ClientCert::Invalid(e.to_string()),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn stamp(files: &TlsFiles) -> Stamp {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn certificates(
    pem: &[u8],
    path: &Path,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn load(files: &TlsFiles) -> Result<Loaded, String> {
    // The stamp is taken before reading, so a change during the read is seen next poll.
    let stamp = stamp(files);
    let chain = certificates(&read(&files.cert, "tls_cert")?, &files.cert, "tls_cert")?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key, "tls_key")?)
        .map_err(|e| format!("tls_key {}: {e}", files.key.display()))?;
    let verifier = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(&read(path, "tls_client_ca")?, path, "tls_client_ca")? {
                roots
                    .add(ca)
                    .map_err(|e| format!("tls_client_ca {}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("tls_client_ca {}: {e}", path.display()))?;
            Some(verifier)
        }
        None => None,
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match &verifier {
        Some(v) => builder.with_client_cert_verifier(Arc::new(Deferred(v.clone()))),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "tls_cert {} with tls_key {}: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        verifier,
        stamp,
    })
}

/// Asks for a client certificate without requiring one and lets any through whose key signs
/// the handshake; [`Tls::judge`] gives the verdict afterwards with the wrapped verifier.
#[derive(Debug)]
struct Deferred(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The subject CN of a DER certificate, if it parses and has a UTF-8 one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
