//! Gateway TLS (`gateway.tls.*`): the certificate files, the self-signed pair generated
//! in-process, fingerprints, rotation, and the rustls server config that serves them.
//!
//! * Files: `<stateDir>/gateway/tls/gateway-cert.pem` and `gateway-key.pem` by default
//!   (OpenClaw's locations), written 0600 in a 0700 directory, published atomically (temp
//!   file + fsync + rename).
//! * Generation (when `autoGenerate` and *both* files are missing; a partial pair is an
//!   error): ECDSA P-256, SANs `localhost`, `127.0.0.1`, `::1`, the host name and whatever the
//!   caller adds (tailnet name/IP, custom bind host), 10 years like OpenClaw's.
//! * Fingerprint: SHA-256 of the leaf certificate's DER, lowercase hex — what clients pin
//!   (`gateway.remote.tlsFingerprint`).
//! * Serving: TLS 1.3 only, ALPN `http/1.1`, ring. The certificate is re-read when its files
//!   change (checked at most once a second, on a handshake: a `stat` of two files), so
//!   replaced files are picked up without a restart; a broken replacement keeps the old one.
//!
//! Rotation keeps a window in which clients can pin both the old and the new certificate:
//!
//! 1. `clawgate gateway tls rotate --stage` generates the next pair next to the current one
//!    (`gateway-cert.next.pem`, `gateway-key.next.pem`) without serving it, and prints both
//!    fingerprints. Clients add the next fingerprint to their pins while the current one is
//!    still served.
//! 2. `clawgate gateway tls rotate` promotes the staged pair (or generates one if none is
//!    staged), keeps the replaced pair as `gateway-cert.previous.pem` / `gateway-key.previous.pem`
//!    and prints both fingerprints. The running gateway serves the new certificate from its
//!    next handshake on; open connections are not dropped.
//!
//! `clawgate gateway tls show` prints the current, staged and previous fingerprints.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often a handshake may look at the certificate files for changes.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Validity of generated certificates (OpenClaw: `-days 3650`).
const VALIDITY_DAYS: i64 = 3650;
/// Common name of generated certificates.
const COMMON_NAME: &str = "clawgate-gateway";

/// Where the certificate and key live (`gateway.tls.certPath`, `keyPath`, `caPath`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Extra certificates sent after the leaf (an intermediate/CA chain).
    pub ca: Option<PathBuf>,
    /// Generate a self-signed pair when both files are missing.
    pub auto_generate: bool,
}

impl TlsPaths {
    /// From the resolved `gateway.tls` settings.
    pub fn from_settings(s: &clawgate_config::TlsSettings) -> Self {
        TlsPaths {
            cert: s.cert_path.clone(),
            key: s.key_path.clone(),
            ca: s.ca_path.clone(),
            auto_generate: s.auto_generate,
        }
    }

    /// The gateway's certificate files: those of `gateway.tls` when TLS is enabled, else
    /// where a generated pair would go (`<state dir>/gateway/tls/`), for `gateway tls`.
    pub fn of_gateway(settings: &clawgate_config::GatewaySettings) -> Self {
        match &settings.tls {
            Some(t) => TlsPaths::from_settings(t),
            None => {
                let dir = settings.state_dir.join("gateway").join("tls");
                TlsPaths {
                    cert: dir.join("gateway-cert.pem"),
                    key: dir.join("gateway-key.pem"),
                    ca: None,
                    auto_generate: true,
                }
            }
        }
    }

    /// The staged next pair (`rotate --stage`).
    pub fn next(&self) -> (PathBuf, PathBuf) {
        (sibling(&self.cert, "next"), sibling(&self.key, "next"))
    }

    /// The pair replaced by the last rotation.
    pub fn previous(&self) -> (PathBuf, PathBuf) {
        (
            sibling(&self.cert, "previous"),
            sibling(&self.key, "previous"),
        )
    }
}

/// `gateway-cert.pem` → `gateway-cert.<tag>.pem` (or `<name>.<tag>` without `.pem`).
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = match name.strip_suffix(".pem") {
        Some(base) => format!("{base}.{tag}.pem"),
        None => format!("{name}.{tag}"),
    };
    path.with_file_name(new)
}

/// What went wrong with the certificate material; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "gateway tls: {present} exists but {missing} is missing; restore it, or remove both files so a new self-signed pair is generated"
    )]
    PartialPair { present: PathBuf, missing: PathBuf },
    #[error(
        "gateway tls: {cert} and {key} do not exist and gateway.tls.autoGenerate is false; point gateway.tls.certPath/keyPath at your certificate and key"
    )]
    Missing { cert: PathBuf, key: PathBuf },
    #[error("gateway tls: cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("gateway tls: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gateway tls: the key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("gateway tls: cannot generate a certificate: {0}")]
    Generate(String),
    #[error("gateway tls: {0}")]
    Config(String),
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    clawgate_protocol::device::hex(&Sha256::digest(der))
}

/// `ab:cd:…` (upper case), the form browsers and `openssl x509 -fingerprint` show.
pub fn colon_fingerprint(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn read_err(path: &Path, message: impl fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(path, format!("not a PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(read_err(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The fingerprint of the first (leaf) certificate in a PEM file. Reads only: never
/// generates. For `clawgate gateway status` and anything else that reports the pin.
pub fn fingerprint_file(cert: &Path) -> Result<String, TlsError> {
    Ok(fingerprint(read_certs(cert)?[0].as_ref()))
}

/// The names a generated certificate carries besides [`default_sans`]: the tailnet address
/// and DNS name when the gateway binds there, and `gateway.customBindHost`.
pub fn extra_sans(
    tailnet: Option<&crate::bind::TailnetInfo>,
    custom_bind_host: Option<std::net::Ipv4Addr>,
) -> Vec<String> {
    let mut sans = Vec::new();
    if let Some(t) = tailnet {
        sans.push(t.ipv4.to_string());
        sans.extend(t.dns_name.clone());
    }
    if let Some(h) = custom_bind_host {
        sans.push(h.to_string());
    }
    sans
}

/// The fingerprint of the certificate the configured gateway serves, if TLS is enabled and
/// the certificate exists (`None` otherwise). Never generates anything.
pub fn configured_fingerprint(settings: &clawgate_config::GatewaySettings) -> Option<String> {
    let tls = settings.tls.as_ref()?;
    fingerprint_file(&tls.cert_path).ok()
}

/// The certificate fingerprint of this machine's gateway when its config (`config_path`,
/// else the env's or the default one) enables TLS.
pub fn local_fingerprint(
    config_path: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let (settings, _) = crate::local_settings(config_path, None, env).ok()?;
    configured_fingerprint(&settings)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads and checks a certificate chain and key.
fn load_certified_key(paths: &TlsPaths) -> Result<(Arc<CertifiedKey>, String), TlsError> {
    let mut chain = read_certs(&paths.cert)?;
    let leaf_fp = fingerprint(chain[0].as_ref());
    if let Some(ca) = &paths.ca {
        chain.extend(read_certs(ca)?);
    }
    let key_bytes = std::fs::read(&paths.key).map_err(|e| read_err(&paths.key, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| read_err(&paths.key, format!("not a PEM private key ({e})")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| read_err(&paths.key, format!("unsupported private key ({e})")))?;
    let ck = CertifiedKey::new(chain, signing);
    if ck.keys_match().is_err() {
        return Err(TlsError::KeyMismatch {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        });
    }
    Ok((Arc::new(ck), leaf_fp))
}

/// A freshly generated self-signed pair, PEM encoded.
pub struct GeneratedPair {
    pub cert_pem: String,
    pub key_pem: String,
    pub fingerprint: String,
}

/// The SANs every generated certificate carries, plus `extra` (deduplicated).
pub fn default_sans(extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    if !host.is_empty() {
        sans.push(host);
    }
    sans.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    sans.retain(|s| !s.is_empty() && seen.insert(s.to_ascii_lowercase()));
    sans
}

/// The date `days` after 1970-01-01, as rcgen takes it.
fn ymd(days: i64) -> (i32, u8, u8) {
    let (y, m, d) = clawgate_base::civil_from_days(days);
    (y as i32, m as u8, d as u8)
}

/// Generates an ECDSA P-256 self-signed certificate for `sans`.
pub fn generate_self_signed(sans: &[String]) -> Result<GeneratedPair, TlsError> {
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = rcgen::CertificateParams::new(sans.to_vec()).map_err(err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, COMMON_NAME);
    params.distinguished_name = dn;
    let today = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 / 86_400)
        .unwrap_or(0);
    // A day of slack for clocks that are slightly behind.
    let (y, m, d) = ymd(today - 1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(today + VALIDITY_DAYS);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(GeneratedPair {
        fingerprint: fingerprint(cert.der().as_ref()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `data` to `path` atomically and durably with mode 0600, creating the directory
/// (0700) if needed ([`clawgate_base::write_private`]).
pub fn write_private_file(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    clawgate_base::write_private(path, data).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_pair(cert: &Path, key: &Path, pair: &GeneratedPair) -> Result<(), TlsError> {
    // Key first: a watcher that sees the new certificate with the old key rejects the pair and
    // keeps serving the old one until both are in place.
    write_private_file(key, pair.key_pem.as_bytes())?;
    write_private_file(cert, pair.cert_pem.as_bytes())
}

/// The certificate in effect after [`ensure_certificate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatus {
    pub fingerprint: String,
    /// True when this start generated the pair.
    pub generated: bool,
}

/// Makes sure the certificate and key exist: generates a self-signed pair (with
/// [`default_sans`] + `extra_sans`) when both are missing and `autoGenerate` is on; refuses a
/// partial pair. Then checks that they load and match.
pub fn ensure_certificate(
    paths: &TlsPaths,
    extra_sans: &[String],
) -> Result<CertificateStatus, TlsError> {
    let (cert_exists, key_exists) = (paths.cert.exists(), paths.key.exists());
    let mut generated = false;
    match (cert_exists, key_exists) {
        (true, true) => {}
        (true, false) | (false, true) => {
            let (present, missing) = if cert_exists {
                (paths.cert.clone(), paths.key.clone())
            } else {
                (paths.key.clone(), paths.cert.clone())
            };
            return Err(TlsError::PartialPair { present, missing });
        }
        (false, false) if !paths.auto_generate => {
            return Err(TlsError::Missing {
                cert: paths.cert.clone(),
                key: paths.key.clone(),
            });
        }
        (false, false) => {
            let pair = generate_self_signed(&default_sans(extra_sans))?;
            write_pair(&paths.cert, &paths.key, &pair)?;
            generated = true;
        }
    }
    let (_, fp) = load_certified_key(paths)?;
    Ok(CertificateStatus {
        fingerprint: fp,
        generated,
    })
}

/// Fingerprints of the current, staged and previous certificates, for `tls show`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInventory {
    pub current: Option<String>,
    pub next: Option<String>,
    pub previous: Option<String>,
}

pub fn inventory(paths: &TlsPaths) -> TlsInventory {
    TlsInventory {
        current: fingerprint_file(&paths.cert).ok(),
        next: fingerprint_file(&paths.next().0).ok(),
        previous: fingerprint_file(&paths.previous().0).ok(),
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// `--stage`: the next pair was generated (or already staged) and is not served yet.
    Staged { current: String, next: String },
    /// The new pair is in place; the replaced one is kept as `previous`.
    Rotated { previous: String, current: String },
}

/// Stages or performs a rotation of a generated certificate (see the module docs).
pub fn rotate(paths: &TlsPaths, extra_sans: &[String], stage: bool) -> Result<Rotation, TlsError> {
    if !paths.auto_generate {
        return Err(TlsError::Config(format!(
            "gateway.tls.autoGenerate is false: the certificate in {} is yours to replace (the running gateway picks up replaced files by itself)",
            paths.cert.display()
        )));
    }
    let current = fingerprint_file(&paths.cert).map_err(|_| {
        TlsError::Config(format!(
            "no certificate at {} yet; start the gateway with gateway.tls.enabled=true once to generate one",
            paths.cert.display()
        ))
    })?;
    let (next_cert, next_key) = paths.next();
    let staged = match (fingerprint_file(&next_cert), next_key.exists()) {
        (Ok(fp), true) => Some(fp),
        _ => None,
    };
    if stage {
        let next = match staged {
            Some(fp) => fp,
            None => {
                let pair = generate_self_signed(&default_sans(extra_sans))?;
                write_pair(&next_cert, &next_key, &pair)?;
                pair.fingerprint
            }
        };
        return Ok(Rotation::Staged { current, next });
    }
    let (next_pem, next_key_pem, next_fp) = match staged {
        Some(fp) => (
            std::fs::read(&next_cert).map_err(|e| read_err(&next_cert, e))?,
            std::fs::read(&next_key).map_err(|e| read_err(&next_key, e))?,
            fp,
        ),
        None => {
            let pair = generate_self_signed(&default_sans(extra_sans))?;
            (
                pair.cert_pem.into_bytes(),
                pair.key_pem.into_bytes(),
                pair.fingerprint,
            )
        }
    };
    let (prev_cert, prev_key) = paths.previous();
    let old_cert = std::fs::read(&paths.cert).map_err(|e| read_err(&paths.cert, e))?;
    let old_key = std::fs::read(&paths.key).map_err(|e| read_err(&paths.key, e))?;
    write_private_file(&prev_key, &old_key)?;
    write_private_file(&prev_cert, &old_cert)?;
    write_private_file(&paths.key, &next_key_pem)?;
    write_private_file(&paths.cert, &next_pem)?;
    let _ = std::fs::remove_file(&next_cert);
    let _ = std::fs::remove_file(&next_key);
    Ok(Rotation::Rotated {
        previous: current,
        current: next_fp,
    })
}

/// Identity of a file's current contents, cheap to compare: (mtime, size, inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks, so a swapped symlink target counts as a change.
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

struct Loaded {
    key: Arc<CertifiedKey>,
    fingerprint: String,
    stamps: (Option<Stamp>, Option<Stamp>),
    checked: Instant,
    /// Stamps of a replacement that failed to load, so it is reported once.
    rejected: Option<(Option<Stamp>, Option<Stamp>)>,
}

/// Serves the certificate files, reloading them when they change.
struct ReloadingResolver {
    paths: TlsPaths,
    state: Mutex<Loaded>,
}

impl fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingResolver")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl ReloadingResolver {
    fn current(&self) -> (Arc<CertifiedKey>, String) {
        let mut s = self.state.lock().expect("tls state lock");
        if s.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            s.checked = Instant::now();
            let stamps = (stamp(&self.paths.cert), stamp(&self.paths.key));
            if stamps != s.stamps && s.rejected != Some(stamps) {
                match load_certified_key(&self.paths) {
                    Ok((key, fp)) => {
                        if fp != s.fingerprint {
                            tracing::info!(
                                "gateway tls: certificate reloaded from {} (sha256 {fp}, was {})",
                                self.paths.cert.display(),
                                s.fingerprint
                            );
                        }
                        s.key = key;
                        s.fingerprint = fp;
                        s.stamps = stamps;
                        s.rejected = None;
                    }
                    Err(e) => {
                        tracing::warn!(
                            "{e}; still serving the certificate sha256 {}",
                            s.fingerprint
                        );
                        s.rejected = Some(stamps);
                    }
                }
            }
        }
        (s.key.clone(), s.fingerprint.clone())
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().0)
    }
}

/// The TLS side of every listener: a rustls config (TLS 1.3, ALPN `http/1.1`) whose
/// certificate follows the files.
#[derive(Clone)]
pub struct TlsServer {
    resolver: Arc<ReloadingResolver>,
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("cert", &self.resolver.paths.cert)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl TlsServer {
    /// Loads the pair (see [`ensure_certificate`] to create it first).
    pub fn load(paths: &TlsPaths) -> Result<Self, TlsError> {
        let (key, fingerprint) = load_certified_key(paths)?;
        let resolver = Arc::new(ReloadingResolver {
            paths: paths.clone(),
            state: Mutex::new(Loaded {
                key,
                fingerprint,
                stamps: (stamp(&paths.cert), stamp(&paths.key)),
                checked: Instant::now(),
                rejected: None,
            }),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsServer {
            resolver,
            config: Arc::new(config),
        })
    }

    /// The fingerprint of the certificate served now (after checking the files).
    pub fn fingerprint(&self) -> String {
        self.resolver.current().1
    }

    pub fn cert_path(&self) -> &Path {
        &self.resolver.paths.cert
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings() {
        assert_eq!(
            sibling(Path::new("/a/gateway-cert.pem"), "next"),
            PathBuf::from("/a/gateway-cert.next.pem")
        );
        assert_eq!(
            sibling(Path::new("/a/cert"), "previous"),
            PathBuf::from("/a/cert.previous")
        );
    }

    fn paths(dir: &Path) -> TlsPaths {
        TlsPaths {
            cert: dir.join("tls/gateway-cert.pem"),
            key: dir.join("tls/gateway-key.pem"),
            ca: None,
            auto_generate: true,
        }
    }

    #[test]
    fn generate_reuse_rotate_and_reload() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let first = ensure_certificate(&p, &["100.101.102.103".into()]).unwrap();
        assert!(first.generated);
        assert_eq!(first.fingerprint.len(), 64);
        for f in [&p.cert, &p.key] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let again = ensure_certificate(&p, &[]).unwrap();
        assert!(!again.generated);
        assert_eq!(again.fingerprint, first.fingerprint);

        let server = TlsServer::load(&p).unwrap();
        assert_eq!(server.fingerprint(), first.fingerprint);

        let staged = rotate(&p, &[], true).unwrap();
        let Rotation::Staged { current, next } = staged else {
            panic!()
        };
        assert_eq!(current, first.fingerprint);
        // Staging twice keeps the same next certificate.
        assert_eq!(
            rotate(&p, &[], true).unwrap(),
            Rotation::Staged {
                current: current.clone(),
                next: next.clone()
            }
        );
        let inv = inventory(&p);
        assert_eq!(inv.next.as_deref(), Some(next.as_str()));
        let rotated = rotate(&p, &[], false).unwrap();
        assert_eq!(
            rotated,
            Rotation::Rotated {
                previous: first.fingerprint.clone(),
                current: next.clone()
            }
        );
        let inv = inventory(&p);
        assert_eq!(inv.current.as_deref(), Some(next.as_str()));
        assert_eq!(inv.previous.as_deref(), Some(first.fingerprint.as_str()));
        assert_eq!(inv.next, None);

        // The running server follows the files.
        server.resolver.state.lock().unwrap().checked -= RELOAD_CHECK_INTERVAL;
        assert_eq!(server.fingerprint(), next);

        // A broken replacement keeps the old certificate.
        std::fs::write(&p.cert, "garbage").unwrap();
        server.resolver.state.lock().unwrap().checked -= RELOAD_CHECK_INTERVAL;
        assert_eq!(server.fingerprint(), next);
    }

    #[test]
    fn partial_pairs_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = paths(dir.path());
        std::fs::create_dir_all(p.cert.parent().unwrap()).unwrap();
        std::fs::write(&p.cert, "x").unwrap();
        assert!(matches!(
            ensure_certificate(&p, &[]),
            Err(TlsError::PartialPair { .. })
        ));
        std::fs::remove_file(&p.cert).unwrap();
        p.auto_generate = false;
        assert!(matches!(
            ensure_certificate(&p, &[]),
            Err(TlsError::Missing { .. })
        ));
    }
}
