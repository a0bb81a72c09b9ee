//! `https://` servers: the WebSocket and the blob download go over TLS, trusting the configured CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use hearth_proto::agent::JobState;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Rig, eventually};

/// Terminates TLS on 127.0.0.1 and forwards to `backend`; counts failed handshakes.
async fn tls_front(backend: SocketAddr) -> (SocketAddr, String, Arc<AtomicU32>) {
    let (addr, pem, failures, _) = tls_front_counting(backend).await;
    (addr, pem, failures)
}

/// [`tls_front`], also counting the handshakes that succeeded.
async fn tls_front_counting(
    backend: SocketAddr,
) -> (SocketAddr, String, Arc<AtomicU32>, Arc<AtomicU32>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(ck.cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failures = Arc::new(AtomicU32::new(0));
    let accepted = Arc::new(AtomicU32::new(0));
    let (f, a) = (failures.clone(), accepted.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let (f, a) = (f.clone(), a.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    f.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, ck.cert.pem(), failures, accepted)
}

#[tokio::test]
async fn an_https_server_is_reached_over_tls_with_its_own_ca() {
    let mut rig = Rig::new().await;
    let (addr, pem, _) = tls_front(rig.hub.addr).await;
    let ca = rig.dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    rig.server = Some(format!("https://{addr}"));
    rig.ca_cert = Some(ca);
    rig.start_agent();
    let job = rig.job(10.0, 2);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    assert_eq!(
        rig.hub.with(|s| s.ranges.len()),
        1,
        "blob fetched through TLS"
    );
    rig.stop_agent().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let mut rig = Rig::new().await;
    let (addr, _, failures) = tls_front(rig.hub.addr).await;
    rig.server = Some(format!("https://{addr}"));
    rig.start_agent();
    eventually("two refused handshakes", || {
        (failures.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert_eq!(rig.hub.with(|s| s.connections), 0);
    rig.stop_agent().await;
}

/// An HTTP server that answers every request 404 (enough for an enrollment to reach it).
async fn answers_404() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let body = r#"{"code":"not_found","message":"no such endpoint"}"#;
                let _ = tcp
                    .write_all(
                        format!(
                            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    addr
}

/// The agent trusts the machine's certificate store, as the `hearth` CLI does: a server whose
/// certificate comes from a CA installed on the machine (here through `SSL_CERT_FILE`) needs no
/// `ca_cert`. The real binary runs, since the store is read from its environment.
#[tokio::test]
async fn the_agent_trusts_the_machines_certificate_store() {
    let (addr, pem, failures, accepted) = tls_front_counting(answers_404().await).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth-agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"https://{addr}\"\nstate_dir = {:?}\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let store = dir.path().join("system-store.pem");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let enroll = |store_pem: String| {
        std::fs::write(&store, store_pem).unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-agent"))
            .args(["enroll", "--token", "hae_test", "--name", "pi", "--config"])
            .arg(&config)
            .env("SSL_CERT_FILE", &store)
            .env_remove("SSL_CERT_DIR")
            .env_remove("HEARTH_AGENT_CA_CERT")
            .env_remove("HEARTH_AGENT_SERVER")
            .env_remove("HEARTH_AGENT_STATE_DIR")
            .output()
    };

    // Another CA in the store: the handshake is refused, and the agent says why.
    let out = enroll(other.cert.pem()).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    assert!(failures.load(Ordering::SeqCst) >= 1);

    // The server's CA in the store: TLS succeeds and the request reaches the server.
    let refused_before = failures.load(Ordering::SeqCst);
    let out = enroll(pem).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(accepted.load(Ordering::SeqCst) >= 1, "{err}");
    assert_eq!(failures.load(Ordering::SeqCst), refused_before, "{err}");
    assert!(
        err.contains("no such endpoint"),
        "the server's answer: {err}"
    );
}
