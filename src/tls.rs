//! The public listener's TLS configuration, read from PEM files: at start-up
//! by the server and on every change by the reloader.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Problems;

/// Loads a PEM certificate chain and key into a server config offering h2
/// and http/1.1 by ALPN.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Problems> {
    let mut p = Problems::new(cert);
    let certs: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(cert) {
        Ok(iter) => match iter.collect::<Result<_, _>>() {
            Ok(c) => c,
            Err(e) => {
                p.push("", format!("not a PEM certificate chain: {e}"));
                return Err(p);
            }
        },
        Err(e) => {
            p.push("", format!("cannot read the certificate: {e}"));
            return Err(p);
        }
    };
    if certs.is_empty() {
        p.push("", "holds no certificate");
        return Err(p);
    }
    let key = match PrivateKeyDer::from_pem_file(key) {
        Ok(k) => k,
        Err(e) => {
            let mut pk = Problems::new(key);
            pk.push("", format!("cannot read a PEM private key: {e}"));
            return Err(pk);
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = match rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
    {
        Ok(c) => c,
        Err(e) => {
            p.push(
                "",
                format!("certificate and key do not make a TLS config: {e}"),
            );
            return Err(p);
        }
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
