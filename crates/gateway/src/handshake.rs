//! The connect decision without a socket: [`decide`] takes what the connection learned (the
//! accepted `connect` params, the peer, the outcome of the shared-secret or identity check,
//! the device tokens the gateway holds) and answers admit, ask the pairing store, or refuse.
//! The connection applies the effects: the rate limiter's accounting, the pairing store's
//! decision (it may write), the broadcasts and `hello-ok`.

use crate::PeerInfo;
use crate::auth::{self, SharedAuth};
use crate::ingress::{Cidr, IngressKind};
use crate::pairing::{self, AutoApproval, TokenRefusal};
use clawgate_protocol::connect::{ClientInfo, ConnectParams, Role};
use clawgate_protocol::errors::{self, AuthFailure, HandshakeError};

/// The tokens issued to paired devices, as the handshake checks one.
pub(crate) trait DeviceTokens {
    fn check_token(
        &self,
        device_id: &str,
        role: &str,
        presented: &str,
        wanted: &[String],
    ) -> Result<(), TokenRefusal>;
}

impl DeviceTokens for pairing::Pairing {
    fn check_token(
        &self,
        device_id: &str,
        role: &str,
        presented: &str,
        wanted: &[String],
    ) -> Result<(), TokenRefusal> {
        pairing::Pairing::check_token(self, device_id, role, presented, wanted).map(|_| ())
    }
}

/// What the configuration says about approving devices without an operator.
pub(crate) struct PairingPolicy<'a> {
    /// Pair devices on direct loopback sockets without asking
    /// (`gateway.nodes.pairing.autoApproveLocal`).
    pub auto_approve_local: bool,
    /// `gateway.nodes.pairing.autoApproveCidrs`.
    pub node_auto_approve_cidrs: &'a [Cidr],
}

/// One `connect`, already past the schema and protocol checks.
pub(crate) struct Connect<'a> {
    pub params: &'a ConnectParams,
    pub role: Role,
    /// The challenge's nonce, which the device signed.
    pub nonce: &'a str,
}

#[derive(Debug)]
pub(crate) enum Admission<'a> {
    /// No device: admitted with these scopes, before the connection's identity grant and
    /// scope cap. `method` is `hello-ok.auth.method`.
    Admit {
        method: &'static str,
        scopes: Vec<String>,
    },
    /// A verified device with a valid credential: the pairing store decides next.
    Pair {
        method: &'static str,
        applicant: pairing::Applicant<'a>,
        auto: Option<AutoApproval>,
    },
    Refuse {
        error: HandshakeError,
        /// A wrong credential, which the rate limiter counts as a failed guess.
        wrong_credential: bool,
    },
}

/// Whether the connect offers a credential the rate limiter must account for.
pub(crate) fn offers_credential(shared: SharedAuth, params: &ConnectParams) -> bool {
    matches!(shared, SharedAuth::Ok { .. } | SharedAuth::Wrong(_))
        || params
            .auth
            .as_ref()
            .is_some_and(|a| a.device_token.is_some())
}

/// Decides one connect: see the module's doc.
pub(crate) fn decide<'a>(
    connect: &Connect<'a>,
    peer: &PeerInfo,
    shared: SharedAuth,
    tokens: &dyn DeviceTokens,
    policy: &PairingPolicy<'_>,
    now_ms: i64,
) -> Admission<'a> {
    let (p, role) = (connect.params, connect.role);
    let requested: &'a [String] = p.scopes.as_deref().unwrap_or_default();
    let auth = p.auth.as_ref();
    let remote_cli = p.client.mode == "cli" && !peer.is_local;
    let refuse = |error, wrong_credential| Admission::Refuse {
        error,
        wrong_credential,
    };
    let Some(proof) = &p.device else {
        return match shared {
            // Tailscale identity never replaces the device identity.
            SharedAuth::Ok {
                method: "tailscale",
            } => refuse(errors::device_identity_required(), false),
            SharedAuth::Ok { method } => Admission::Admit {
                method,
                scopes: match role {
                    Role::Operator if keeps_deviceless_scopes(peer, &p.client) => {
                        requested.to_vec()
                    }
                    _ => Vec::new(),
                },
            },
            SharedAuth::NotRequired | SharedAuth::Missing(_) => {
                refuse(errors::device_identity_required(), false)
            }
            SharedAuth::NotConfigured(f) => {
                refuse(errors::auth_failed(f, remote_cli, false), false)
            }
            SharedAuth::Wrong(f) => refuse(errors::auth_failed(f, remote_cli, false), true),
        };
    };
    if let Err(failure) = auth::verify_device(p, proof, role.as_str(), connect.nonce, now_ms) {
        // A wrong secret still counts as a failed guess; the device error is what is answered.
        return refuse(
            errors::device_auth_failed(failure),
            matches!(shared, SharedAuth::Wrong(_)),
        );
    }
    // With a device, a failed (or absent) shared secret can be made up for by the device's
    // own token: `auth.deviceToken`, or `auth.token` holding one.
    let device_token = auth.and_then(|a| a.device_token.as_deref());
    let method = match shared {
        SharedAuth::Ok { method } => method,
        SharedAuth::NotRequired if device_token.is_none() => "none",
        other => {
            let candidates = [device_token, auth.and_then(|a| a.token.as_deref())];
            let mut refusal = None;
            let mut accepted = false;
            for t in candidates.into_iter().flatten() {
                match tokens.check_token(&proof.id, role.as_str(), t, requested) {
                    Ok(()) => {
                        accepted = true;
                        break;
                    }
                    Err(r) => refusal = refusal.or(Some(r)),
                }
            }
            if !accepted {
                let failure = match (other, refusal) {
                    (_, Some(TokenRefusal::ScopeMismatch)) => AuthFailure::ScopeMismatch,
                    (SharedAuth::Wrong(f), _) => f,
                    (_, Some(TokenRefusal::Mismatch)) => AuthFailure::DeviceTokenMismatch,
                    (SharedAuth::Missing(f) | SharedAuth::NotConfigured(f), None) => f,
                    _ => AuthFailure::DeviceTokenMismatch,
                };
                let can_retry = matches!(failure, AuthFailure::TokenMismatch)
                    && auth.is_some_and(|a| a.token.is_some() && a.device_token.is_none());
                return refuse(
                    errors::auth_failed(failure, remote_cli, can_retry),
                    failure.is_wrong_credential(),
                );
            }
            "device-token"
        }
    };
    // Verified Tailscale and trusted-proxy operators skip the approval round trip.
    let auto = if ((peer.is_local || local_browser_ui(peer, &p.client))
        && policy.auto_approve_local)
        || (role == Role::Operator && matches!(method, "tailscale" | "trusted-proxy"))
    {
        Some(AutoApproval::Silent)
    } else if unattended_node_floor(peer, role, requested, &p.client)
        && policy
            .node_auto_approve_cidrs
            .iter()
            .any(|c| c.contains(peer.client_ip))
    {
        Some(AutoApproval::FreshFromTrustedCidr)
    } else {
        None
    };
    let applicant = pairing::Applicant {
        device_id: &proof.id,
        public_key: &proof.public_key,
        role: role.as_str(),
        scopes: requested,
        display_name: p.client.display_name.as_deref(),
        platform: &p.client.platform,
        device_family: p.client.device_family.as_deref(),
        client_id: &p.client.id,
        client_mode: &p.client.mode,
    };
    Admission::Pair {
        method,
        applicant,
        auto,
    }
}

/// The Control UI or WebChat in a browser on this host: a direct loopback socket whose `Host`
/// names loopback. Its `Origin` keeps it from being [`PeerInfo::is_local`], but OpenClaw pairs
/// it silently as `direct_local` all the same (the origin policy has already admitted the
/// page); any other client sending an `Origin` still asks.
fn local_browser_ui(peer: &PeerInfo, client: &ClientInfo) -> bool {
    peer.ingress == IngressKind::DirectLocal
        && crate::ingress::is_local_host_header(peer.host.as_deref())
        && is_browser_client(client)
}

/// Device-less operators keep their requested scopes only as a local CLI (`cli`/`cli`) or a
/// local backend (`gateway-client`/`backend`); every other device-less operator gets none.
fn keeps_deviceless_scopes(peer: &PeerInfo, client: &ClientInfo) -> bool {
    peer.is_local
        && matches!(
            (client.id.as_str(), client.mode.as_str()),
            ("cli", "cli") | ("gateway-client", "backend")
        )
}

/// OpenClaw's floor for approving a node without an operator (trusted CIDRs, SSH
/// verification): a node asking no scopes, not a browser or Control UI client, whose
/// address the gateway attributes itself (a direct socket, or a trusted proxy that is not
/// on loopback, where headers could be anyone's). Whether it is a first pairing is the
/// pairing store's part.
pub(crate) fn unattended_node_floor(
    peer: &PeerInfo,
    role: Role,
    scopes: &[String],
    client: &ClientInfo,
) -> bool {
    let attributed = match peer.ingress {
        IngressKind::DirectLocal | IngressKind::DirectRemote => true,
        IngressKind::TrustedProxy => !peer.addr.ip().is_loopback(),
        _ => false,
    };
    role == Role::Node
        && scopes.is_empty()
        && peer.origin.is_none()
        && !is_browser_client(client)
        && attributed
}

/// The Control UI and webchat clients, which speak from a browser.
pub(crate) fn is_browser_client(client: &ClientInfo) -> bool {
    matches!(
        client.id.as_str(),
        "openclaw-control-ui" | "openclaw-browser-copilot" | "webchat-ui"
    ) || client.mode == "webchat"
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_protocol::connect::{self, AcceptedConnect};
    use clawgate_protocol::device::{self, SignedFields};
    use ed25519_dalek::SigningKey;
    use serde_json::{Value, json};

    const NONCE: &str = "4b8e6f0e-0d8a-4c1e-9a57-3f1b2a9c7d10";
    const NOW: i64 = 1_795_513_871_430;

    /// The real CLI's connect, asking `scopes`.
    fn cli(scopes: &[&str]) -> Value {
        json!({"minProtocol":4,"maxProtocol":4,
            "client":{"id":"cli","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"cli"},
            "caps":[],"auth":{"token":"secret"},"role":"operator","scopes":scopes})
    }

    /// `params` with a device proof over [`NONCE`].
    fn with_device(mut params: Value) -> (Value, String) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let id = device::device_id(&key.verifying_key());
        let scopes: Vec<String> = serde_json::from_value(params["scopes"].clone()).unwrap();
        let client = &params["client"];
        let signature = device::sign_v3(
            &key,
            &SignedFields {
                device_id: &id,
                client_id: client["id"].as_str().unwrap(),
                client_mode: client["mode"].as_str().unwrap(),
                role: "operator",
                scopes: &scopes,
                signed_at_ms: NOW,
                token: params["auth"]["token"]
                    .as_str()
                    .or(params["auth"]["deviceToken"].as_str())
                    .unwrap_or(""),
                nonce: NONCE,
                platform: client["platform"].as_str(),
                device_family: client["deviceFamily"].as_str(),
            },
        );
        params["device"] = json!({"id": id, "publicKey": device::b64url(key.verifying_key().as_bytes()),
            "signature": signature, "signedAt": NOW, "nonce": NONCE});
        (params, id)
    }

    fn peer(is_local: bool) -> PeerInfo {
        let addr = if is_local {
            "127.0.0.1:50000"
        } else {
            "192.0.2.7:50000"
        };
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        PeerInfo {
            addr,
            is_local,
            host: None,
            origin: None,
            ingress: if is_local {
                IngressKind::DirectLocal
            } else {
                IngressKind::DirectRemote
            },
            client_ip: addr.ip(),
            identity_headers: Vec::new(),
        }
    }

    /// A gateway that issued no device token.
    struct NoTokens;

    impl DeviceTokens for NoTokens {
        fn check_token(&self, _: &str, _: &str, _: &str, _: &[String]) -> Result<(), TokenRefusal> {
            Err(TokenRefusal::Mismatch)
        }
    }

    const NO_AUTO_APPROVAL: PairingPolicy<'static> = PairingPolicy {
        auto_approve_local: false,
        node_auto_approve_cidrs: &[],
    };

    fn decide_for(
        params: &ConnectParams,
        peer: &PeerInfo,
        shared: SharedAuth,
        policy: &PairingPolicy<'_>,
    ) -> Admission<'static> {
        // The params outlive the test; leaking them keeps the answer's borrows simple.
        let params: &'static ConnectParams = Box::leak(Box::new(params.clone()));
        let connect = Connect {
            params,
            role: Role::Operator,
            nonce: NONCE,
        };
        decide(&connect, peer, shared, &NoTokens, policy, NOW)
    }

    fn accepted(params: Value) -> ConnectParams {
        let AcceptedConnect { params, .. } = connect::accept(params).unwrap();
        params
    }

    const TOKEN_OK: SharedAuth = SharedAuth::Ok { method: "token" };

    #[test]
    fn a_local_cli_with_the_shared_token_is_admitted_with_its_scopes() {
        let params = accepted(cli(&["operator.read", "operator.admin"]));
        match decide_for(&params, &peer(true), TOKEN_OK, &NO_AUTO_APPROVAL) {
            Admission::Admit { method, scopes } => {
                assert_eq!(method, "token");
                assert_eq!(scopes, ["operator.read", "operator.admin"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_deviceless_remote_operator_is_admitted_without_scopes() {
        let params = accepted(cli(&["operator.read", "operator.admin"]));
        match decide_for(&params, &peer(false), TOKEN_OK, &NO_AUTO_APPROVAL) {
            Admission::Admit { scopes, .. } => assert!(scopes.is_empty(), "{scopes:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_token_is_refused_and_counted_as_a_guess() {
        let params = accepted(cli(&["operator.read"]));
        let wrong = SharedAuth::Wrong(AuthFailure::TokenMismatch);
        match decide_for(&params, &peer(false), wrong, &NO_AUTO_APPROVAL) {
            Admission::Refuse {
                error,
                wrong_credential,
            } => {
                assert!(wrong_credential);
                assert_eq!(
                    error,
                    errors::auth_failed(AuthFailure::TokenMismatch, true, false)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_a_secret_a_deviceless_client_is_told_to_bring_a_device() {
        let params = accepted(cli(&["operator.read"]));
        let missing = SharedAuth::Missing(AuthFailure::TokenMissing);
        match decide_for(&params, &peer(true), missing, &NO_AUTO_APPROVAL) {
            Admission::Refuse {
                error,
                wrong_credential: false,
            } => assert_eq!(error, errors::device_identity_required()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_verified_device_goes_to_pairing_approved_silently_only_where_allowed() {
        let (params, device_id) = with_device(cli(&["operator.read"]));
        let params = accepted(params);
        match decide_for(&params, &peer(false), TOKEN_OK, &NO_AUTO_APPROVAL) {
            Admission::Pair {
                method,
                applicant,
                auto,
            } => {
                assert_eq!(method, "token");
                assert_eq!(applicant.device_id, device_id);
                assert_eq!(applicant.scopes, ["operator.read"]);
                assert_eq!(auto, None);
            }
            other => panic!("{other:?}"),
        }
        let local_auto = PairingPolicy {
            auto_approve_local: true,
            node_auto_approve_cidrs: &[],
        };
        match decide_for(&params, &peer(true), TOKEN_OK, &local_auto) {
            Admission::Pair { auto, .. } => assert_eq!(auto, Some(AutoApproval::Silent)),
            other => panic!("{other:?}"),
        }
    }

    /// The browser UI on this host sends an `Origin`, so it is not `is_local`; it still pairs
    /// silently there (OpenClaw's `direct_local`), and only there.
    #[test]
    fn the_browser_ui_on_loopback_pairs_silently() {
        let mut ui = cli(&["operator.read"]);
        ui["client"] = json!({"id":"openclaw-control-ui","version":"x","platform":"Linux x86_64","mode":"webchat"});
        let (params, _) = with_device(ui);
        let params = accepted(params);
        let policy = PairingPolicy {
            auto_approve_local: true,
            node_auto_approve_cidrs: &[],
        };
        let mut browser = peer(true);
        browser.is_local = false;
        browser.origin = Some("http://127.0.0.1:18789".into());
        browser.host = Some("127.0.0.1:18789".into());
        let auto = |peer: &PeerInfo, policy: &PairingPolicy<'_>| match decide_for(
            &params, peer, TOKEN_OK, policy,
        ) {
            Admission::Pair { auto, .. } => auto,
            other => panic!("{other:?}"),
        };
        assert_eq!(auto(&browser, &policy), Some(AutoApproval::Silent));
        assert_eq!(auto(&browser, &NO_AUTO_APPROVAL), None);
        let mut via_name = browser.clone();
        via_name.host = Some("gateway.example:18789".into());
        assert_eq!(auto(&via_name, &policy), None);
        let mut remote = peer(false);
        remote.origin = browser.origin.clone();
        remote.host = browser.host.clone();
        assert_eq!(auto(&remote, &policy), None);
    }

    #[test]
    fn a_device_with_neither_secret_nor_a_valid_device_token_is_refused() {
        let mut params = cli(&["operator.read"]);
        params["auth"] = json!({"deviceToken": "not-issued"});
        let (params, _) = with_device(params);
        let params = accepted(params);
        let missing = SharedAuth::Missing(AuthFailure::TokenMissing);
        match decide_for(&params, &peer(false), missing, &NO_AUTO_APPROVAL) {
            Admission::Refuse {
                error,
                wrong_credential,
            } => {
                assert_eq!(
                    error,
                    errors::auth_failed(AuthFailure::DeviceTokenMismatch, true, false)
                );
                assert!(wrong_credential);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_device_signature_is_refused_before_any_token_check() {
        let (mut params, _) = with_device(cli(&["operator.read"]));
        params["device"]["signedAt"] = json!(NOW - 1);
        let params = accepted(params);
        match decide_for(&params, &peer(false), TOKEN_OK, &NO_AUTO_APPROVAL) {
            Admission::Refuse {
                wrong_credential: false,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
    }
}
