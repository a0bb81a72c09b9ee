//! `hearth` against a server on HTTPS: it trusts the certificate authorities of the system's trust
//! store (where an IT department installs its own CA), as curl and git do, and says why it
//! refuses a server whose certificate no trusted authority issued.

use crate::support::*;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A certificate authority, and a server certificate for `localhost` and `127.0.0.1` issued by it.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Acme internal CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        // Another authority, which did not issue the server's certificate.
        let other_key = rcgen::KeyPair::generate().unwrap();
        let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let other = other.self_signed(&other_key).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_trusts_the_system_trust_store_and_says_why_it_refuses_a_server() {
    let pki = Pki::new();
    let server = TestServer::start_with(|s, _| {
        s.tls.cert = Some(pki.path("cert.pem").into());
        s.tls.key = Some(pki.path("key.pem").into());
    })
    .await;
    let url = server.url.replace("http://", "https://");
    let ada = Machine::new("correct horse battery");
    let setup = |store: &str| {
        let mut c = ada.setup_command(&server, &url);
        // rustls-native-certs reads the system's store from here when it is set (the variable
        // OpenSSL, curl and git also honour), so the test need not change the machine's store.
        c.env("SSL_CERT_FILE", pki.path(store));
        c
    };

    // A store without the issuing authority: refused before anything is sent, saying why.
    let out = setup("other-ca.pem").output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");

    // The authority installed in the system's store: the same command works, and so do the next.
    assert_success(&setup("ca.pem").output().await.unwrap());
    let mut printers = ada.command(&["printers"]);
    printers.env("SSL_CERT_FILE", pki.path("ca.pem"));
    assert_success(&printers.output().await.unwrap());
}
