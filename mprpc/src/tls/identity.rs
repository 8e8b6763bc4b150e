//! Who is at the other end of a mutual-TLS connection: the subject and the subject
//! alternative names of the certificate the client presented, put in each request's
//! extensions for layers and handlers ([`crate::Request::extensions`]).

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// The identity a client proved with its certificate (mutual TLS). Cheap to clone: a
/// provider puts it in every request of the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity(Arc<Names>);

#[derive(Debug, PartialEq, Eq)]
struct Names {
    subject: String,
    alt_names: Vec<String>,
}

impl PeerIdentity {
    /// An identity with this subject and these alternative names.
    pub fn new(subject: impl Into<String>, alt_names: Vec<String>) -> PeerIdentity {
        PeerIdentity(Arc::new(Names {
            subject: subject.into(),
            alt_names,
        }))
    }

    /// The identity in a certificate, if it can be parsed.
    pub(crate) fn from_certificate(cert: &CertificateDer<'_>) -> Option<PeerIdentity> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
        let mut alt_names = Vec::new();
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => alt_names.push(format!("DNS:{dns}")),
                    GeneralName::URI(uri) => alt_names.push(format!("URI:{uri}")),
                    GeneralName::RFC822Name(email) => alt_names.push(format!("EMAIL:{email}")),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_of(bytes) {
                            alt_names.push(format!("IP:{ip}"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(PeerIdentity::new(parsed.subject().to_string(), alt_names))
    }

    /// The certificate's subject, e.g. `CN=billing, O=Example`.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// Its subject alternative names, each written `DNS:name`, `IP:address`, `URI:uri` or
    /// `EMAIL:address`.
    pub fn alt_names(&self) -> &[String] {
        &self.0.alt_names
    }

    /// Whether `name` is this identity: its subject (`CN=...`, as written by
    /// [`subject`](Self::subject)), its common name alone, or one of its alternative names
    /// (`DNS:...`).
    pub fn is(&self, name: &str) -> bool {
        self.subject() == name
            || self.common_name() == Some(name)
            || self.alt_names().iter().any(|n| n == name)
    }

    /// The common name of the subject, if it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.subject()
            .split(", ")
            .find_map(|part| part.strip_prefix("CN="))
    }
}

fn ip_of(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}
