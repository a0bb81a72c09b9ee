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
    let f = failures.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let f = f.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    f.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, ck.cert.pem(), failures)
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
