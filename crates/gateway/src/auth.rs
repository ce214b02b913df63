//! Shared-secret checks, the failed-auth rate limiter, and device proof verification.

use crate::{AuthMode, GatewayOptions, RateLimit};
use clawgate_protocol::connect::{ConnectAuth, ConnectParams, DeviceProof};
use clawgate_protocol::device::{self, SignedFields};
use clawgate_protocol::errors::{AuthFailure, DeviceAuthFailure};
use clawgate_protocol::limits::DEVICE_SIGNATURE_SKEW_MS;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Outcome of checking the shared secret a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedAuth {
    /// The secret matched; `method` is what hello-ok reports.
    Ok { method: &'static str },
    /// Auth mode `none`: there is no shared secret to check.
    NotRequired,
    /// Nothing was offered.
    Missing(AuthFailure),
    /// A secret was offered and it is wrong (counts towards the rate limit).
    Wrong(AuthFailure),
    /// The gateway has no secret configured for its mode.
    NotConfigured(AuthFailure),
}

/// A proxy (or client) narrowing a connection's scopes: only the listed scopes are kept.
pub(crate) const SCOPE_CAP_HEADER: &str = "x-openclaw-scopes";

/// The scopes `gateway.auth.identityScopes` grants a verified login: its exact key, else (for
/// email-like logins) a key equal ignoring case.
pub(crate) fn identity_grant<'a>(grants: &'a [(String, Vec<String>)], login: &str) -> &'a [String] {
    let exact = grants.iter().find(|(k, _)| k == login);
    let folded = || {
        login.contains('@').then(|| {
            grants
                .iter()
                .find(|(k, _)| k.contains('@') && k.eq_ignore_ascii_case(login))
        })?
    };
    exact.or_else(folded).map_or(&[], |(_, scopes)| scopes)
}

/// Applies the `x-openclaw-scopes` cap: absent keeps every scope, present keeps only the ones
/// it lists (an empty list keeps none).
pub(crate) fn cap_scopes(scopes: Vec<String>, cap: Option<&str>) -> Vec<String> {
    let Some(cap) = cap else {
        return scopes;
    };
    let declared: Vec<&str> = cap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    scopes
        .into_iter()
        .filter(|s| declared.contains(&s.as_str()))
        .collect()
}

/// Either field works: token mode reads `auth.token ?? auth.password`, password mode
/// `auth.password ?? auth.token`. Compared in constant time.
pub(crate) fn check_shared_secret(
    options: &GatewayOptions,
    auth: Option<&ConnectAuth>,
) -> SharedAuth {
    let token = auth.and_then(|a| a.token.as_deref());
    let password = auth.and_then(|a| a.password.as_deref());
    match options.auth_mode {
        AuthMode::None => SharedAuth::NotRequired,
        AuthMode::Token => {
            let Some(expected) = &options.token else {
                return SharedAuth::NotConfigured(AuthFailure::TokenNotConfigured);
            };
            match token.or(password) {
                None => SharedAuth::Missing(AuthFailure::TokenMissing),
                Some(given) if expected.ct_eq(given.as_bytes()) => {
                    SharedAuth::Ok { method: "token" }
                }
                Some(_) => SharedAuth::Wrong(AuthFailure::TokenMismatch),
            }
        }
        AuthMode::Password | AuthMode::TrustedProxy => {
            let Some(expected) = &options.password else {
                return SharedAuth::NotConfigured(AuthFailure::PasswordNotConfigured);
            };
            match password.or(token) {
                None => SharedAuth::Missing(AuthFailure::PasswordMissing),
                Some(given) if expected.ct_eq(given.as_bytes()) => {
                    SharedAuth::Ok { method: "password" }
                }
                Some(_) => SharedAuth::Wrong(AuthFailure::PasswordMismatch),
            }
        }
    }
}

/// OpenClaw's trusted-proxy checks: the socket peer must be in `gateway.trustedProxies`, not
/// loopback (unless `allowLoopback`), not one of this host's own addresses; every required
/// header present and non-empty; the user header set; the user in `allowUsers` when that is
/// set. `Ok(user)` or `Err((auth reason, what to fix))`.
pub(crate) fn check_trusted_proxy(
    options: &GatewayOptions,
    peer: &crate::PeerInfo,
) -> Result<String, (&'static str, String)> {
    let Some(tp) = &options.trusted_proxy else {
        return Err((
            "trusted_proxy_config_missing",
            "set gateway.auth.trustedProxy.userHeader".into(),
        ));
    };
    let source = crate::ingress::canonical(peer.addr.ip());
    if !options.ingress.is_trusted_proxy(source) {
        return Err((
            "trusted_proxy_untrusted_source",
            format!(
                "{source} is not in gateway.trustedProxies; connect through the proxy, or add the proxy's address to gateway.trustedProxies"
            ),
        ));
    }
    if source.is_loopback() && !tp.allow_loopback {
        return Err((
            "trusted_proxy_loopback_source",
            "the proxy connects from loopback; set gateway.auth.trustedProxy.allowLoopback=true if a proxy on this host fronts the gateway".into(),
        ));
    }
    if !source.is_loopback() && options.local_addresses.contains(&source) {
        return Err((
            "trusted_proxy_local_interface_source",
            format!(
                "{source} is one of this host's own addresses; a same-host proxy must connect over loopback with gateway.auth.trustedProxy.allowLoopback=true"
            ),
        ));
    }
    for h in &tp.required_headers {
        if peer.header(h).is_none_or(str::is_empty) {
            return Err((
                "trusted_proxy_missing_required_header",
                format!(
                    "the proxy did not send {h}, which gateway.auth.trustedProxy.requiredHeaders lists"
                ),
            ));
        }
    }
    let user = match peer.header(&tp.user_header) {
        Some(u) if !u.is_empty() => u.to_owned(),
        _ => {
            return Err((
                "trusted_proxy_user_missing",
                format!(
                    "the proxy did not send the user header {} (gateway.auth.trustedProxy.userHeader)",
                    tp.user_header
                ),
            ));
        }
    };
    if !tp.allow_users.is_empty() && !tp.allow_users.iter().any(|u| u.trim() == user) {
        return Err((
            "trusted_proxy_user_not_allowed",
            format!("user {user:?} is not in gateway.auth.trustedProxy.allowUsers"),
        ));
    }
    Ok(user)
}

/// Checks a device proof against the challenge nonce, in the real gateway's order: id, age,
/// nonce, signature (v3 then v2), key.
pub(crate) fn verify_device(
    p: &ConnectParams,
    proof: &DeviceProof,
    role: &str,
    nonce: &str,
    now_ms: i64,
) -> Result<(), DeviceAuthFailure> {
    let key = device::decode_public_key(&proof.public_key);
    match &key {
        Some(k) if device::device_id(k) == proof.id => {}
        _ => return Err(DeviceAuthFailure::DeviceIdMismatch),
    }
    if (now_ms - proof.signed_at).abs() > DEVICE_SIGNATURE_SKEW_MS {
        return Err(DeviceAuthFailure::SignatureExpired);
    }
    let given_nonce = proof.nonce.trim();
    if given_nonce.is_empty() {
        return Err(DeviceAuthFailure::NonceRequired);
    }
    if given_nonce != nonce {
        return Err(DeviceAuthFailure::NonceMismatch);
    }
    let token = p.auth.as_ref().map(ConnectAuth::signed_token).unwrap_or("");
    let scopes = p.scopes.as_deref().unwrap_or(&[]);
    let fields = SignedFields {
        device_id: &proof.id,
        client_id: &p.client.id,
        client_mode: &p.client.mode,
        role,
        scopes,
        signed_at_ms: proof.signed_at,
        token,
        nonce: given_nonce,
        platform: Some(&p.client.platform),
        device_family: p.client.device_family.as_deref(),
    };
    let key = key.ok_or(DeviceAuthFailure::PublicKeyInvalid)?;
    device::verify(&key, &proof.signature, &fields).ok_or(DeviceAuthFailure::SignatureInvalid)?;
    Ok(())
}

/// Per-client-address record of failed attempts.
struct Entry {
    /// Held while one attempt from this address is checked (whois included), so parallel
    /// attempts from one address are checked one after another and the lockout counts every
    /// one of them. Never held during a failure's delay: that delay is the failing
    /// connection's alone, and the next attempt from the address goes ahead meanwhile.
    gate: Arc<tokio::sync::Mutex<()>>,
    failures: Vec<Instant>,
    consecutive: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

/// Failed-auth limiter keyed by client address ([`client_bucket`]): `max_attempts` wrong
/// secrets within `window` lock the address out for `lockout` (loopback exempt by default),
/// and every failure delays its own answer by an escalating amount. A correct secret is never
/// held up by the failures of others from the same address.
pub(crate) struct RateLimiter {
    cfg: RateLimit,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

/// Entries kept at most; the stalest are dropped beyond this.
const MAX_ENTRIES: usize = 10_000;

pub(crate) struct Attempt {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    ip: IpAddr,
}

impl RateLimiter {
    pub fn new(cfg: RateLimit) -> Self {
        RateLimiter {
            cfg,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Waits while another attempt from this address is being checked (not while one sleeps
    /// its failure's delay). Returns the milliseconds to wait when the address is locked out.
    pub async fn begin(&self, ip: IpAddr) -> Result<Attempt, u64> {
        let ip = client_bucket(ip);
        let gate = {
            let mut entries = self.entries.lock().expect("limiter lock");
            let now = Instant::now();
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&ip) {
                prune(&mut entries, now, self.cfg.window.max(self.cfg.lockout));
            }
            let e = entries.entry(ip).or_insert_with(|| Entry {
                gate: Arc::new(tokio::sync::Mutex::new(())),
                failures: Vec::new(),
                consecutive: 0,
                locked_until: None,
                last_seen: now,
            });
            e.last_seen = now;
            if let Some(until) = e.locked_until {
                if until > now {
                    return Err((until - now).as_millis().max(1) as u64);
                }
                e.locked_until = None;
            }
            e.gate.clone()
        };
        let guard = gate.lock_owned().await;
        // A lockout may have started while waiting for the gate.
        let entries = self.entries.lock().expect("limiter lock");
        if let Some(until) = entries.get(&ip).and_then(|e| e.locked_until) {
            let now = Instant::now();
            if until > now {
                return Err((until - now).as_millis().max(1) as u64);
            }
        }
        drop(entries);
        Ok(Attempt { _guard: guard, ip })
    }

    /// Records a wrong secret, lets the next attempt from the address be checked, and sleeps
    /// the escalating delay before the caller answers; the failure that reaches `max_attempts`
    /// starts the lockout for the attempts after it.
    pub async fn fail(&self, attempt: Attempt) {
        let delay = {
            let mut entries = self.entries.lock().expect("limiter lock");
            let now = Instant::now();
            let Some(e) = entries.get_mut(&attempt.ip) else {
                return;
            };
            e.failures
                .retain(|t| now.duration_since(*t) < self.cfg.window);
            e.failures.push(now);
            e.consecutive = e.consecutive.saturating_add(1);
            let exempt = self.cfg.exempt_loopback && attempt.ip.is_loopback();
            if !exempt && e.failures.len() as u32 >= self.cfg.max_attempts {
                e.locked_until = Some(now + self.cfg.lockout);
                e.failures.clear();
            }
            let shift = e.consecutive.saturating_sub(1).min(16);
            self.cfg
                .base_delay
                .saturating_mul(1u32 << shift)
                .min(self.cfg.max_delay)
        };
        drop(attempt);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// A correct secret resets the address's failure count.
    pub fn succeed(&self, attempt: Attempt) {
        let mut entries = self.entries.lock().expect("limiter lock");
        if let Some(e) = entries.get_mut(&attempt.ip) {
            e.failures.clear();
            e.consecutive = 0;
        }
    }
}

/// The address failures are counted under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64, the block one host picks its addresses from (counting exact addresses would give a
/// /64 unlimited guesses); `::1` as itself, so loopback stays loopback.
fn client_bucket(ip: IpAddr) -> IpAddr {
    match crate::ingress::canonical(ip) {
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let network = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        other => other,
    }
}

fn prune(entries: &mut HashMap<IpAddr, Entry>, now: Instant, keep: Duration) {
    entries.retain(|_, e| {
        now.duration_since(e.last_seen) < keep || e.locked_until.is_some_and(|u| u > now)
    });
    if entries.len() >= MAX_ENTRIES
        && let Some(oldest) = entries
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.gate) == 1)
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(k, _)| *k)
    {
        entries.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_grants_match_exactly_or_emails_ignoring_case() {
        let grants = vec![
            (
                "Alice@Example.com".to_owned(),
                vec!["operator.admin".to_owned()],
            ),
            ("bob".to_owned(), vec!["operator.read".to_owned()]),
        ];
        assert_eq!(
            identity_grant(&grants, "alice@example.com"),
            ["operator.admin"]
        );
        assert_eq!(identity_grant(&grants, "bob"), ["operator.read"]);
        // Only email-like logins fold case.
        assert!(identity_grant(&grants, "BOB").is_empty());
        assert!(identity_grant(&grants, "carol@example.com").is_empty());
    }

    #[test]
    fn the_scope_cap_header_only_narrows() {
        let scopes = || vec!["operator.read".to_owned(), "operator.write".to_owned()];
        assert_eq!(cap_scopes(scopes(), None), scopes());
        assert_eq!(
            cap_scopes(scopes(), Some("operator.read, operator.admin")),
            ["operator.read"]
        );
        assert!(cap_scopes(scopes(), Some("")).is_empty());
    }

    fn limiter() -> RateLimiter {
        RateLimiter::new(RateLimit {
            max_attempts: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            exempt_loopback: true,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn remote_addresses_are_locked_out_and_delays_escalate() {
        let l = limiter();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let start = Instant::now();
        for _ in 0..2 {
            let a = l.begin(ip).await.unwrap();
            l.fail(a).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(250 + 500));
        let a = l.begin(ip).await.unwrap();
        l.fail(a).await;
        // The lockout started with the third failure, whose answer was delayed 1 s.
        assert_eq!(l.begin(ip).await.err(), Some(299_000));
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(l.begin(ip).await.is_ok());
    }

    /// One IPv6 /64 is one client (a host gets a whole /64 to pick addresses from), and an
    /// IPv4-mapped address is its IPv4 address.
    #[tokio::test(start_paused = true)]
    async fn ipv6_addresses_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let l = limiter();
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
            let a = l.begin(ip.parse().unwrap()).await.unwrap();
            l.fail(a).await;
        }
        assert!(
            l.begin("2001:db8:1:2:abcd::9".parse().unwrap())
                .await
                .is_err()
        );
        assert!(l.begin("2001:db8:1:3::1".parse().unwrap()).await.is_ok());

        for ip in ["::ffff:192.0.2.7", "192.0.2.7", "::ffff:192.0.2.7"] {
            let a = l.begin(ip.parse().unwrap()).await.unwrap();
            l.fail(a).await;
        }
        assert!(l.begin("192.0.2.7".parse().unwrap()).await.is_err());

        // ::1 stays loopback: slowed, never locked out.
        let lo: IpAddr = "::1".parse().unwrap();
        for _ in 0..4 {
            let a = l.begin(lo).await.unwrap();
            l.fail(a).await;
        }
        assert!(l.begin(lo).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn loopback_is_never_locked_but_slowed() {
        let l = limiter();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..8 {
            let a = l.begin(ip).await.unwrap();
            l.fail(a).await;
        }
        // 250 + 500 + 1000 + 2000 + 4000 + 3 × 5000 ms: eight guesses take almost 23 s.
        assert_eq!(start.elapsed(), Duration::from_millis(22_750));
        let a = l.begin(ip).await.unwrap();
        l.succeed(a);
        let a = l.begin(ip).await.unwrap();
        let before = Instant::now();
        l.fail(a).await;
        assert_eq!(before.elapsed(), Duration::from_millis(250));
    }

    /// Parallel guesses from one address each wait their own escalating delay (they used to
    /// be answered one after another, 3.75 s for these four), and a correct attempt among
    /// them is not held up at all.
    #[tokio::test(start_paused = true)]
    async fn parallel_guesses_are_each_slowed_and_hold_up_no_one() {
        let l = Arc::new(limiter());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                let a = l.begin(ip).await.unwrap();
                l.fail(a).await;
                start.elapsed()
            }));
        }
        tokio::task::yield_now().await;
        let a = l.begin(ip).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        l.succeed(a);
        let mut answered = Vec::new();
        for t in tasks {
            answered.push(t.await.unwrap());
        }
        answered.sort();
        assert_eq!(answered, [250, 500, 1000, 2000].map(Duration::from_millis));
    }
}
