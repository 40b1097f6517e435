//! The charger-initiated half of the OCPP 1.6 security extension, and its record. [`record`]
//! appends a server-side security event for any caller (the upgrade gate, the certificate
//! flow) and never fails it; [`sign_certificate`] judges a charger's CSR against the charger
//! CA (settings `charger_ca_cert` / `charger_ca_key`) and, once the charger has its answer,
//! sends the signed chain with CertificateSigned from a task of its own, so the session's read
//! loop never waits for it. Holds no socket and owns no REST.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::Central;
use crate::domain::ChargeBoxId;
use crate::domain::security::{SecurityEvent, Source, kind};
use crate::ocpp::v16::messages::{
    CertificateSigned, CertificateSignedStatus, GenericStatus, SignCertificate,
};
use crate::ocpp::v16::types::CiString;
use crate::settings::Settings;

/// How long a certificate the server signs is valid.
pub const CERTIFICATE_VALIDITY: time::Duration = time::Duration::days(365);

/// Records a server-side security event for `id` (now). A store that cannot take it is logged,
/// never returned: an audit write must not refuse a charger or fail a request.
pub async fn record(
    central: &Central,
    id: &ChargeBoxId,
    kind: &str,
    tech_info: Option<&str>,
    peer: Option<IpAddr>,
) {
    let now = OffsetDateTime::now_utc();
    let event = SecurityEvent::new(Source::Server, kind, now, now, tech_info, peer);
    save(central, id, &event).await;
}

/// Records an event a charger reported (SecurityEventNotification), as [`record`] does.
pub(crate) async fn save(central: &Central, id: &ChargeBoxId, event: &SecurityEvent) {
    info!(
        charger = %id,
        source = event.source.as_str(),
        kind = %event.kind,
        "security event"
    );
    if let Err(e) = central.store.record_security_event(id, event).await {
        error!(charger = %id, kind = %event.kind, error = %e, "security event not recorded");
    }
}

/// Why a CSR is not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no charger CA is configured (charger_ca_cert, charger_ca_key)")]
    NoCa,
    #[error("the charger CA cannot be used: {0}")]
    Ca(String),
    #[error("the CSR cannot be read: {0}")]
    Csr(String),
    #[error("the CSR names {found:?}, not this charger")]
    OtherName { found: String },
    #[error("the certificate cannot be made: {0}")]
    Sign(String),
}

/// The charger CA as read from its two PEM files.
pub struct ChargerCa {
    cert_pem: String,
    key: rcgen::KeyPair,
}

impl ChargerCa {
    /// Reads and checks both files (a bad one is named in the error).
    pub fn load(cert: &Path, key: &Path) -> Result<ChargerCa, SignError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| SignError::Ca(format!("{}: {e}", p.display())))
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let key = rcgen::KeyPair::from_pem(&key_pem)
            .map_err(|e| SignError::Ca(format!("{}: {e}", key.display())))?;
        // Parsed once here so a certificate that is not one fails at load, not at signing.
        rcgen::Issuer::from_ca_cert_pem(&cert_pem, &key)
            .map_err(|e| SignError::Ca(format!("{}: {e}", cert.display())))?;
        Ok(ChargerCa { cert_pem, key })
    }

    /// The configured CA, read anew (so a renewed CA is used without a restart).
    pub fn configured(settings: &Settings) -> Result<ChargerCa, SignError> {
        match (&settings.charger_ca_cert, &settings.charger_ca_key) {
            (Some(cert), Some(key)) => ChargerCa::load(cert, key),
            _ => Err(SignError::NoCa),
        }
    }

    /// Signs `csr_pem` for charger `id`: the subject is `CN = id` whatever the CSR asks (a CSR
    /// naming another CN is refused), valid from now for [`CERTIFICATE_VALIDITY`], for TLS
    /// client authentication. Returns the PEM chain: the new certificate, then the CA's.
    pub fn sign(&self, id: &ChargeBoxId, csr_pem: &str) -> Result<String, SignError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| SignError::Csr(e.to_string()))?;
        let asked = common_name(&csr.params.distinguished_name);
        if let Some(found) = asked.filter(|cn| cn != id.as_str()) {
            return Err(SignError::OtherName {
                found: crate::domain::security::bounded(&found, 64),
            });
        }
        // Only the CSR's key and the rest of its subject are taken: the names, usages and
        // extensions a charger asks for are not its to choose.
        let mut subject = rcgen::DistinguishedName::new();
        subject.push(rcgen::DnType::CommonName, id.as_str());
        for (ty, value) in csr.params.distinguished_name.iter() {
            if *ty != rcgen::DnType::CommonName {
                subject.push(ty.clone(), value.clone());
            }
        }
        let now = OffsetDateTime::now_utc();
        let mut serial = rand::random::<[u8; 16]>();
        serial[0] &= 0x7f; // a positive INTEGER
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = subject;
        // A little back-dated: a charger whose clock runs behind still takes it as valid.
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + CERTIFICATE_VALIDITY;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        csr.params = params;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|e| SignError::Ca(e.to_string()))?;
        let cert = csr
            .signed_by(&issuer)
            .map_err(|e| SignError::Sign(e.to_string()))?;
        let mut chain = cert.pem();
        if !chain.ends_with('\n') {
            chain.push('\n');
        }
        chain.push_str(self.cert_pem.trim());
        chain.push('\n');
        Ok(chain)
    }
}

/// The subject's CN as text, when it has one. A CN in an encoding rcgen keeps as raw code
/// units (BMP, universal, …) reads as a name that is not the charger's: refused, not guessed at.
fn common_name(name: &rcgen::DistinguishedName) -> Option<String> {
    Some(match name.get(&rcgen::DnType::CommonName)? {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_string(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_string(),
        rcgen::DnValue::TeletexString(s) => s.as_str().to_string(),
        _ => "(a name in another string type)".to_string(),
    })
}

/// The SignCertificate answer. Accepted: the chain is signed now (it is small work) and sent
/// with CertificateSigned from a task behind this answer; its outcome is recorded. Refused
/// (no CA, an unreadable CSR, another charger's name): Rejected, and recorded why.
pub(crate) async fn sign_certificate(
    central: &Arc<Central>,
    id: &ChargeBoxId,
    request: SignCertificate,
) -> GenericStatus {
    // Files and signatures: blocking work, off the session's thread.
    let (settings, signer) = (central.settings.clone(), id.clone());
    let signed = tokio::task::spawn_blocking(move || {
        ChargerCa::configured(&settings).and_then(|ca| ca.sign(&signer, request.csr.as_str()))
    })
    .await
    .unwrap_or_else(|e| Err(SignError::Sign(format!("the signing task failed: {e}"))));
    let chain = match signed {
        Ok(chain) => chain,
        Err(e) => {
            warn!(charger = %id, error = %e, "SignCertificate rejected");
            let kind = match e {
                SignError::NoCa => kind::NO_CHARGER_CA,
                _ => kind::CSR_REFUSED,
            };
            record(central, id, kind, Some(&e.to_string()), None).await;
            return GenericStatus::Rejected;
        }
    };
    let Ok(certificate_chain) = CiString::<10000>::new(chain) else {
        // A CA chain longer than CertificateSigned may carry: nothing can be sent.
        let why = "the signed chain is longer than CertificateSigned allows (10000)";
        warn!(charger = %id, why, "SignCertificate rejected");
        record(central, id, kind::CSR_REFUSED, Some(why), None).await;
        return GenericStatus::Rejected;
    };
    let (central, id) = (central.clone(), id.clone());
    let tracker = central.tracker.clone();
    // Queued behind this answer like every call to the charger: it gets Accepted first.
    tracker.spawn(async move {
        let outcome = central
            .sessions
            .call(&id, &CertificateSigned { certificate_chain })
            .await;
        let (kind, info) = match outcome {
            Ok(answer) if answer.status == CertificateSignedStatus::Accepted => {
                (kind::CERTIFICATE_INSTALLED, None)
            }
            Ok(answer) => (
                kind::CERTIFICATE_NOT_INSTALLED,
                Some(format!("the charger answered {}", answer.status.as_str())),
            ),
            Err(e) => (
                kind::CERTIFICATE_NOT_INSTALLED,
                Some(format!("CertificateSigned not delivered: {e}")),
            ),
        };
        record(&central, &id, kind, info.as_deref(), None).await;
    });
    GenericStatus::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(dir: &Path) -> ChargerCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (dir.join("ca.pem"), dir.join("ca.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        ChargerCa::load(&c, &k).unwrap()
    }

    fn csr(cn: Option<&str>, san: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(san.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn the_certificate_names_the_charger_and_nothing_the_csr_added() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca(dir.path());
        let id = ChargeBoxId::parse("CP-7").unwrap();
        // No CN asked, and a server name slipped in as a SAN: CN = id, no SAN.
        let chain = ca.sign(&id, &csr(None, &["cs.example.com"])).unwrap();
        let der = x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, ["CP-7"]);
        assert!(cert.subject_alternative_name().unwrap().is_none());
        assert!(matches!(
            ca.sign(&id, &csr(Some("CP-8"), &[])),
            Err(SignError::OtherName { found }) if found == "CP-8"
        ));
        assert!(matches!(ca.sign(&id, "not a CSR"), Err(SignError::Csr(_))));
        assert!(matches!(
            ChargerCa::configured(&Settings::with_database("sqlite::memory:")),
            Err(SignError::NoCa)
        ));
    }
}
