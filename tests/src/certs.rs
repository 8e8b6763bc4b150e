//! Certificates made for a test: a CA, and certificates it signs for providers (with
//! `127.0.0.1` and `localhost` among their names) and for clients, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// A certificate authority for one test.
pub struct TestCa {
    name: String,
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("name", &self.name).finish()
    }
}

/// A date, `(year, month, day)`.
pub type Date = (i32, u8, u8);

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate chain (the leaf).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA called `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            name: name.to_owned(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA's certificate to `dir/<name>-ca.pem`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}-ca.pem", self.name));
        std::fs::write(&path, &self.pem).expect("write CA");
        path
    }

    /// A provider certificate for `127.0.0.1` and `localhost`, written to `dir/<file>.pem`
    /// and `dir/<file>.key`.
    pub fn provider(&self, dir: &Path, file: &str) -> CertFiles {
        self.issue(
            dir,
            file,
            "provider",
            ExtendedKeyUsagePurpose::ServerAuth,
            None,
        )
    }

    /// A client certificate with common name `cn`, written to `dir/<cn>.pem` and `.key`.
    pub fn client(&self, dir: &Path, cn: &str) -> CertFiles {
        self.issue(dir, cn, cn, ExtendedKeyUsagePurpose::ClientAuth, None)
    }

    /// A provider certificate valid only between the two dates (`(year, month, day)`).
    pub fn provider_dated(&self, dir: &Path, file: &str, from: Date, to: Date) -> CertFiles {
        let dates = Some((from, to));
        self.issue(
            dir,
            file,
            "provider",
            ExtendedKeyUsagePurpose::ServerAuth,
            dates,
        )
    }

    fn issue(
        &self,
        dir: &Path,
        file: &str,
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
        dates: Option<(Date, Date)>,
    ) -> CertFiles {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        if let Some(((y0, m0, d0), (y1, m1, d1))) = dates {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let files = CertFiles {
            cert: dir.join(format!("{file}.pem")),
            key: dir.join(format!("{file}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}
