//! Certificates for the TLS targets (`mprpc-tls`, `tonic-tls`).
//!
//! The driver makes them once per run ([`RunCerts::make`]): a CA, and a provider certificate
//! it signs for `127.0.0.1` and `localhost` (ECDSA P-256 keys, rcgen's default), written as PEM
//! files to a private temporary directory (mode 0700). The directory is passed to every server
//! process it starts (`bench serve --tls-dir DIR`) and to the clients ([`Certs`]); it is
//! removed when the run ends ([`RunCerts::close`], or on drop). A run killed by a signal leaves
//! it behind in the temporary directory (`mprpc-bench-tls-*`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

use crate::targets::TargetKind;

/// The CA's certificate, which clients trust.
const CA: &str = "ca.pem";
/// The provider's certificate (for `127.0.0.1` and `localhost`), signed by the CA.
const CERT: &str = "provider.pem";
/// The provider's private key.
const KEY: &str = "provider.key";

/// Where a TLS target finds its files: a directory holding `ca.pem`, `provider.pem` and
/// `provider.key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// The files in `dir` (made by [`RunCerts::make`] in the driver).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Certs {
        Certs { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join(CA)
    }

    /// The provider's certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join(CERT)
    }

    /// The provider's private key (PEM, PKCS#8).
    pub fn key(&self) -> PathBuf {
        self.dir.join(KEY)
    }
}

/// Certificates made for one run, in a private temporary directory that goes when this does.
#[derive(Debug)]
pub struct RunCerts {
    dir: tempfile::TempDir,
    certs: Certs,
}

impl RunCerts {
    /// Makes a CA and a provider certificate and writes them to a new private directory.
    pub fn make() -> anyhow::Result<RunCerts> {
        let dir = tempfile::Builder::new()
            .prefix("mprpc-bench-tls-")
            .tempdir()
            .context("making a temporary directory for the certificates")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .context("making the certificates' directory private")?;
        }
        let certs = Certs::in_dir(dir.path());

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mprpc-bench CA");
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        // rcgen makes `127.0.0.1` an IP address name and `localhost` a DNS name.
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "mprpc-bench provider");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;

        for (path, pem) in [
            (certs.ca(), ca_cert.pem()),
            (certs.cert(), cert.pem()),
            (certs.key(), key.serialize_pem()),
        ] {
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(RunCerts { dir, certs })
    }

    /// Certificates if any of `targets` needs them, else `None`.
    pub fn for_targets(
        targets: impl IntoIterator<Item = TargetKind>,
    ) -> anyhow::Result<Option<RunCerts>> {
        if targets.into_iter().any(TargetKind::tls) {
            RunCerts::make().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Where the files are.
    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// Removes the directory and its files.
    pub fn close(self) -> anyhow::Result<()> {
        let path = self.dir.path().to_owned();
        self.dir
            .close()
            .with_context(|| format!("removing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_in_a_private_directory_and_removed() {
        let made = RunCerts::make().unwrap();
        let certs = made.certs().clone();
        for file in [certs.ca(), certs.cert(), certs.key()] {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.starts_with("-----BEGIN"), "{}", file.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(certs.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
        made.close().unwrap();
        assert!(!certs.dir().exists());
        assert!(
            RunCerts::for_targets([TargetKind::Mprpc, TargetKind::Tonic])
                .unwrap()
                .is_none()
        );
    }
}
