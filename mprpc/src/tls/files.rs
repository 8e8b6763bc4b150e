//! Reading PEM files: certificates, keys and CAs, each failure naming the file, and never
//! its contents (a key must not reach a log line).

use std::path::Path;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::TlsError;

/// The certificates in `path`, in order (a chain: leaf first). At least one; each must be
/// valid now.
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::file(path, "cannot read certificates from", e))?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: path.display().to_string(),
            message: "holds no PEM certificate".to_owned(),
        });
    }
    check_dates(path, &certs[0], SystemTime::now())?;
    Ok(certs)
}

/// The private key in `path`.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::file(path, "cannot read a private key from", e))
}

/// The CAs in `path`, as trust anchors.
pub(crate) fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::file(path, "cannot read CA certificates from", e))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::File {
            path: path.display().to_string(),
            message: "holds no usable CA certificate".to_owned(),
        });
    }
    Ok(roots)
}

/// Refuses a certificate that is not valid at `now`, naming the file and the dates.
pub(crate) fn check_dates(
    path: &Path,
    cert: &CertificateDer<'_>,
    now: SystemTime,
) -> Result<(), TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        message: format!("holds a certificate that cannot be parsed: {e}"),
    })?;
    let validity = parsed.validity();
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (from, to) = (validity.not_before, validity.not_after);
    if now_secs < from.timestamp() || now_secs > to.timestamp() {
        let state = if now_secs < from.timestamp() {
            "not valid yet"
        } else {
            "expired"
        };
        return Err(TlsError::File {
            path: path.display().to_string(),
            message: format!("holds a certificate that is {state}: valid from {from} to {to}"),
        });
    }
    Ok(())
}
