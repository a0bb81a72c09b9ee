//! `hearth` against a server on HTTPS: it trusts the certificate authorities of the system's trust
//! store (where an IT department installs its own CA), as curl and git do, and says why it
//! refuses a server whose certificate no trusted authority issued.

use crate::pki::Pki;
use crate::support::*;

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
