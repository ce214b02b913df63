//! Which `gateway.*` and `discovery.*` keys OpenClaw 2026.9.6's schema knows, which of them
//! clawgate implements, and the walk that sorts a config's keys into implemented / ignored /
//! unknown.

use serde_json::{Map, Value};

use crate::subst::join_key;
use crate::telegram::TELEGRAM_KEYS;

/// Shape of one key in OpenClaw's schema, as far as the key walk needs it.
pub(crate) enum Shape {
    /// A value whose insides are not checked (scalars, arrays, open or union shapes).
    Any,
    /// An object with exactly these keys.
    Obj(&'static [(&'static str, Shape)]),
    /// An object with free-form keys whose values have this shape.
    Map(&'static Shape),
}

use Shape::{Any, Map as MapOf, Obj};

const URL_FETCH_LIMITS: Shape = Obj(&[
    ("allowUrl", Any),
    ("urlAllowlist", Any),
    ("allowedMimes", Any),
    ("maxBytes", Any),
    ("maxRedirects", Any),
    ("timeoutMs", Any),
]);

/// Every `gateway.*` key of OpenClaw's config schema (`openclaw config schema`, 2026.9.6).
pub(crate) const GATEWAY_KEYS: &[(&str, Shape)] = &[
    ("port", Any),
    ("mode", Any),
    ("bind", Any),
    ("customBindHost", Any),
    ("publicOrigin", Any),
    (
        "portals",
        Obj(&[("ingress", Obj(&[("domain", Any), ("port", Any)]))]),
    ),
    (
        "controlUi",
        Obj(&[
            ("enabled", Any),
            ("basePath", Any),
            ("root", Any),
            ("allowedOrigins", Any),
            ("dangerouslyAllowHostHeaderOriginFallback", Any),
            ("dangerouslyDisableDeviceAuth", Any),
            ("experimental", Obj(&[("customPlugins", Any)])),
            ("environment", Obj(&[("label", Any), ("color", Any)])),
            ("communityInvite", Any),
            ("github", Obj(&[("token", Any)])),
            ("sessionObserver", Any),
            ("embedSandbox", Any),
            ("allowExternalEmbedUrls", Any),
            ("automaticallyFetchFavicons", Any),
        ]),
    ),
    ("cliAgents", Obj(&[("enabled", Any)])),
    (
        "terminal",
        Obj(&[
            ("enabled", Any),
            ("shell", Any),
            ("detachedSessionTimeoutSeconds", Any),
        ]),
    ),
    (
        "auth",
        Obj(&[
            ("mode", Any),
            ("token", Any),
            ("password", Any),
            ("allowTailscale", Any),
            ("identityScopes", MapOf(&Any)),
            (
                "rateLimit",
                Obj(&[
                    ("maxAttempts", Any),
                    ("windowMs", Any),
                    ("lockoutMs", Any),
                    ("exemptLoopback", Any),
                ]),
            ),
            (
                "trustedProxy",
                Obj(&[
                    ("userHeader", Any),
                    ("requiredHeaders", Any),
                    ("allowUsers", Any),
                    ("allowLoopback", Any),
                    (
                        "cloudflareAccessOidc",
                        Obj(&[
                            ("issuer", Any),
                            ("providerId", Any),
                            ("githubAccountIdClaim", Any),
                        ]),
                    ),
                    (
                        "deviceAutoApprove",
                        Obj(&[("enabled", Any), ("scopes", Any)]),
                    ),
                ]),
            ),
        ]),
    ),
    (
        "roles",
        Obj(&[
            ("default", Any),
            (
                "definitions",
                MapOf(&Obj(&[
                    ("sessions", Obj(&[("others", Any)])),
                    ("sandbox", Any),
                    ("agents", Any),
                    ("scopes", Any),
                    ("accessPolicyPlugin", Any),
                ])),
            ),
        ]),
    ),
    ("trustedProxies", Any),
    ("allowRealIpFallback", Any),
    ("tools", Obj(&[("deny", Any), ("allow", Any)])),
    ("tailscale", Obj(&[("mode", Any), ("preserveFunnel", Any)])),
    (
        "remote",
        Obj(&[
            ("url", Any),
            ("transport", Any),
            ("remotePort", Any),
            ("token", Any),
            ("password", Any),
            ("edgeAuth", MapOf(&Any)),
            ("tlsFingerprint", Any),
            ("sshTarget", Any),
            ("sshIdentity", Any),
            ("sshHostKeyPolicy", Any),
        ]),
    ),
    ("reload", Obj(&[("mode", Any)])),
    (
        "tls",
        Obj(&[
            ("enabled", Any),
            ("autoGenerate", Any),
            ("certPath", Any),
            ("keyPath", Any),
            ("caPath", Any),
        ]),
    ),
    (
        "http",
        Obj(&[
            (
                "endpoints",
                Obj(&[
                    (
                        "chatCompletions",
                        Obj(&[("enabled", Any), ("images", URL_FETCH_LIMITS)]),
                    ),
                    (
                        "responses",
                        Obj(&[
                            ("enabled", Any),
                            ("maxUrlParts", Any),
                            ("files", Any),
                            ("images", Any),
                        ]),
                    ),
                ]),
            ),
            ("securityHeaders", Obj(&[("strictTransportSecurity", Any)])),
        ]),
    ),
    (
        "push",
        Obj(&[(
            "apns",
            Obj(&[("relay", Obj(&[("baseUrl", Any), ("timeoutMs", Any)]))]),
        )]),
    ),
    (
        "nodes",
        Obj(&[
            ("browser", Obj(&[("mode", Any), ("node", Any)])),
            (
                "pairing",
                Obj(&[
                    ("autoApproveLocal", Any),
                    ("autoApproveCidrs", Any),
                    ("sshVerify", Any),
                ]),
            ),
            ("pluginTools", Obj(&[("enabled", Any)])),
            ("allowSkills", Any),
            ("commands", Obj(&[("allow", Any), ("deny", Any)])),
        ]),
    ),
];

/// Every `discovery.*` key of OpenClaw's config schema (2026.9.6).
pub(crate) const DISCOVERY_KEYS: &[(&str, Shape)] = &[
    ("wideArea", Obj(&[("domain", Any)])),
    ("mdns", Obj(&[("mode", Any)])),
];

/// One `models.providers.<id>` entry of OpenClaw's schema (2026.9.6).
const PROVIDER_KEYS: Shape = Obj(&[
    ("baseUrl", Any),
    ("apiKey", Any),
    ("auth", Any),
    ("api", Any),
    ("maxTokens", Any),
    ("timeoutSeconds", Any),
    ("region", Any),
    ("injectNumCtxForOpenAICompat", Any),
    ("params", Any),
    ("agentRuntime", Any),
    ("localService", Any),
    ("headers", Any),
    ("authHeader", Any),
    ("request", Any),
    ("models", Any),
]);

/// Every `models.*` key of OpenClaw's config schema (2026.9.6).
pub(crate) const MODELS_KEYS: &[(&str, Shape)] = &[
    ("mode", Any),
    ("providers", MapOf(&PROVIDER_KEYS)),
    ("catalogRefresh", Any),
];

/// The top-level keys whose insides are sorted key by key, with their schema.
const WALKED: &[(&str, &[(&str, Shape)])] = &[
    ("gateway", GATEWAY_KEYS),
    ("discovery", DISCOVERY_KEYS),
    ("models", MODELS_KEYS),
];

/// The `gateway.*`, `discovery.*` and `models.*` keys clawgate reads. A listed object
/// (`gateway.tls`) is implemented with everything inside it; a `*` segment stands for any
/// key of a free-form map (a provider id). `agents.defaults.model` is read too; the
/// `agents` section is sorted separately (see [`classify`]) because clawgate does not walk
/// its schema.
pub(crate) const IMPLEMENTED: &[&str] = &[
    "gateway.port",
    "gateway.mode",
    "gateway.bind",
    "gateway.customBindHost",
    "gateway.auth.mode",
    "gateway.auth.token",
    "gateway.auth.password",
    "gateway.auth.rateLimit",
    "gateway.auth.allowTailscale",
    "gateway.auth.identityScopes",
    "gateway.auth.trustedProxy.userHeader",
    "gateway.auth.trustedProxy.requiredHeaders",
    "gateway.auth.trustedProxy.allowUsers",
    "gateway.auth.trustedProxy.allowLoopback",
    "gateway.remote.url",
    "gateway.remote.token",
    "gateway.remote.password",
    "gateway.remote.tlsFingerprint",
    "gateway.remote.transport",
    "gateway.remote.sshTarget",
    "gateway.remote.sshIdentity",
    "gateway.remote.remotePort",
    "gateway.remote.sshHostKeyPolicy",
    "gateway.trustedProxies",
    "gateway.allowRealIpFallback",
    "gateway.controlUi.enabled",
    "gateway.controlUi.basePath",
    "gateway.controlUi.allowedOrigins",
    "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback",
    "gateway.nodes.pairing.autoApproveLocal",
    "gateway.nodes.pairing.autoApproveCidrs",
    "gateway.nodes.pairing.sshVerify",
    "gateway.nodes.commands",
    "gateway.tls",
    "gateway.tailscale.mode",
    // Read by the gateway crate's discovery module (the Bonjour beacon) and its wide_area
    // module (the unicast DNS-SD zone).
    "discovery.mdns.mode",
    "discovery.wideArea.domain",
    // Read by clawgate-config's models module, used by clawgate-llm.
    "models.providers.*.baseUrl",
    "models.providers.*.apiKey",
    "models.providers.*.api",
    "models.providers.*.maxTokens",
    "models.providers.*.timeoutSeconds",
    "models.providers.*.headers",
    "models.providers.*.authHeader",
    "models.providers.*.models",
];

/// Top-level keys that only record bookkeeping (written by OpenClaw's own tools) and
/// change no behaviour, so listing them as "ignored" would only be noise.
const BOOKKEEPING_KEYS: &[&str] = &["$schema", "meta", "wizard"];

/// Keys that OpenClaw once accepted and users still have; each gets a specific hint
/// instead of "typo?".
pub(crate) const LEGACY_HINTS: &[(&str, &str)] = &[
    (
        "gateway.token",
        "use gateway.auth.token (this key does not enable gateway auth)",
    ),
    (
        "gateway.password",
        "use gateway.auth.password (this key does not enable gateway auth)",
    ),
    (
        "gateway.tailscale.resetOnExit",
        "retired: Tailscale routes now follow the gateway's lifetime; remove it",
    ),
    (
        "gateway.tailscale.serviceName",
        "retired: named Tailscale Services are not supported; remove it",
    ),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Coverage {
    /// The key and everything under it is read by clawgate.
    Implemented,
    /// Some keys under it are read.
    Partial,
    /// Nothing under it is read (already reported at a higher level).
    Ignored,
}

/// Result of sorting a config's keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyReport {
    /// Known to OpenClaw, not implemented (reported at the highest such key).
    pub ignored: Vec<String>,
    /// Under `gateway` or `discovery`, not in OpenClaw's schema.
    pub unknown: Vec<String>,
    /// `(unknown key, suggestion)`: a likely intended key or a legacy-key hint.
    pub suggestions: Vec<(String, String)>,
}

/// Sorts the keys of a whole config (an object).
pub(crate) fn classify(root: &Map<String, Value>) -> KeyReport {
    let mut report = KeyReport::default();
    for (key, value) in root {
        if let Some((_, shape)) = WALKED.iter().find(|(k, _)| k == key) {
            if let Value::Object(obj) = value {
                walk(obj, shape, key, Coverage::Partial, &mut report);
            }
            continue;
        }
        if BOOKKEEPING_KEYS.contains(&key.as_str()) {
            continue;
        }
        // One entry per channel, so a log line says which channels this gateway will not
        // run ("channels.telegram"), not just "channels".
        match value {
            // Of the agent settings, only `agents.defaults.model` is read.
            Value::Object(agents) if key == "agents" => {
                for (name, v) in agents {
                    let path = join_key(key, name);
                    match v {
                        Value::Object(defaults) if name == "defaults" => report.ignored.extend(
                            defaults
                                .keys()
                                .filter(|k| {
                                    !["model", "maxConcurrent", "timeoutSeconds"]
                                        .contains(&k.as_str())
                                })
                                .map(|k| join_key(&path, k)),
                        ),
                        _ => report.ignored.push(path),
                    }
                }
            }
            Value::Object(channels) if key == "channels" && !channels.is_empty() => {
                for (name, v) in channels {
                    let path = join_key(key, name);
                    match v {
                        // Of the Telegram channel, the keys of `crate::telegram` are read.
                        Value::Object(tg) if name == "telegram" => report.ignored.extend(
                            tg.keys()
                                .filter(|k| !TELEGRAM_KEYS.contains(&k.as_str()))
                                .map(|k| join_key(&path, k)),
                        ),
                        _ => report.ignored.push(path),
                    }
                }
            }
            // Of the plugins, only the Bonjour switch is read (`plugins.entries.bonjour.enabled`).
            Value::Object(plugins) if key == "plugins" => {
                for (name, v) in plugins {
                    let path = join_key(key, name);
                    match v {
                        Value::Object(entries) if name == "entries" => {
                            for (plugin, entry) in entries {
                                let at = join_key(&path, plugin);
                                match entry {
                                    Value::Object(e) if plugin == "bonjour" => {
                                        report.ignored.extend(
                                            e.keys()
                                                .filter(|k| *k != "enabled")
                                                .map(|k| join_key(&at, k)),
                                        )
                                    }
                                    _ => report.ignored.push(at),
                                }
                            }
                        }
                        _ => report.ignored.push(path),
                    }
                }
            }
            _ => report.ignored.push(key.clone()),
        }
    }
    report
}

fn coverage_of(path: &str) -> Coverage {
    let segments: Vec<&str> = path.split('.').collect();
    // Whether the first segments of `imp` match `segments` (`*` matches any one).
    let prefix_matches = |imp: &[&str]| {
        imp.iter()
            .zip(&segments)
            .all(|(pattern, seg)| *pattern == "*" || pattern == seg)
    };
    let implemented: Vec<Vec<&str>> = IMPLEMENTED.iter().map(|i| i.split('.').collect()).collect();
    if implemented
        .iter()
        .any(|imp| imp.len() == segments.len() && prefix_matches(imp))
    {
        Coverage::Implemented
    } else if implemented
        .iter()
        .any(|imp| imp.len() > segments.len() && prefix_matches(imp))
    {
        Coverage::Partial
    } else {
        Coverage::Ignored
    }
}

fn walk(
    obj: &Map<String, Value>,
    shape: &'static [(&'static str, Shape)],
    path: &str,
    coverage: Coverage,
    report: &mut KeyReport,
) {
    for (key, value) in obj {
        let full = join_key(path, key);
        let Some((_, child)) = shape.iter().find(|(k, _)| k == key) else {
            if let Some((_, hint)) = LEGACY_HINTS.iter().find(|(k, _)| *k == full) {
                report.suggestions.push((full.clone(), (*hint).to_owned()));
            } else if let Some(near) = nearest(key, shape.iter().map(|(k, _)| *k)) {
                report.suggestions.push((
                    full.clone(),
                    format!("did you mean {}?", join_key(path, near)),
                ));
            }
            report.unknown.push(full);
            continue;
        };
        let child_coverage = match coverage {
            Coverage::Partial => {
                let c = coverage_of(&full);
                if c == Coverage::Ignored {
                    report.ignored.push(full.clone());
                }
                c
            }
            other => other,
        };
        descend(value, child, &full, child_coverage, report);
    }
}

fn descend(
    value: &Value,
    shape: &'static Shape,
    path: &str,
    coverage: Coverage,
    report: &mut KeyReport,
) {
    match (shape, value) {
        (Obj(children), Value::Object(obj)) => walk(obj, children, path, coverage, report),
        (MapOf(inner), Value::Object(obj)) => {
            for (k, v) in obj {
                descend(v, inner, &join_key(path, k), coverage, report);
            }
        }
        _ => {}
    }
}

/// The known key closest to `key` by edit distance (case-insensitive), if close enough to
/// be a typo.
fn nearest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let key_l = key.to_ascii_lowercase();
    candidates
        .map(|c| (levenshtein(&key_l, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(v: Value) -> KeyReport {
        classify(v.as_object().unwrap())
    }

    #[test]
    fn sorts_keys() {
        let r = report(json!({
            "meta": {"lastTouchedVersion": "2026.9.6"},
            "agents": {"defaults": {"model": "openai/gpt-4o", "workspace": "~/w"}, "list": []},
            "channels": {"telegram": {"botToken": "1:x", "dmPolicy": "pairing", "streaming": {}}, "discord": {}},
            "models": {"mode": "merge", "providers": {"mock": {"baseUrl": "http://x", "region": "eu", "bogus": 1}}},
            "discovery": {"mdns": {"mode": "full"}, "wideArea": {"domain": "x.", "enabled": true}, "dnsSd": 1},
            "plugins": {"entries": {"bonjour": {"enabled": true, "config": {}}, "ollama": {}}, "allow": []},
            "gateway": {
                "port": 1,
                "controlUi": {"enabled": true, "bogus": 1},
                "auth": {"token": "x", "identityScopes": {}, "rateLimit": {"maxAttempts": 3, "nope": 1}},
                "nodes": {"pairing": {"autoApproveLocal": true, "autoApproveCidrs": [], "sshVerify": {"timeoutMs": 1000}}, "browser": {}},
                "roles": {"definitions": {"ops": {"scopes": [], "weird": 1}}},
                "prot": 1,
                "token": "legacy"
            }
        }));
        assert_eq!(
            r.ignored,
            vec![
                "agents.defaults.workspace",
                "agents.list",
                "channels.telegram.streaming",
                "channels.discord",
                "models.mode",
                "models.providers.mock.region",
                "plugins.entries.bonjour.config",
                "plugins.entries.ollama",
                "plugins.allow",
                "gateway.nodes.browser",
                "gateway.roles",
            ]
        );
        assert_eq!(
            r.unknown,
            vec![
                "models.providers.mock.bogus",
                "discovery.wideArea.enabled",
                "discovery.dnsSd",
                "gateway.controlUi.bogus",
                "gateway.auth.rateLimit.nope",
                "gateway.roles.definitions.ops.weird",
                "gateway.prot",
                "gateway.token",
            ]
        );
        assert_eq!(
            r.suggestions,
            vec![
                (
                    "gateway.prot".to_owned(),
                    "did you mean gateway.port?".to_owned()
                ),
                (
                    "gateway.token".to_owned(),
                    "use gateway.auth.token (this key does not enable gateway auth)".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn implemented_paths_exist_in_the_schema() {
        for imp in IMPLEMENTED {
            let root = imp.split('.').next().unwrap();
            let (_, mut shape) = *WALKED
                .iter()
                .find(|(k, _)| *k == root)
                .unwrap_or_else(|| panic!("{imp}: {root} is not walked"));
            let parts: Vec<&str> = imp.split('.').skip(1).collect();
            let mut i = 0;
            while i < parts.len() {
                let part = parts[i];
                let (_, child) = shape
                    .iter()
                    .find(|(k, _)| *k == part)
                    .unwrap_or_else(|| panic!("{imp} not in schema"));
                i += 1;
                if i == parts.len() {
                    break;
                }
                let mut child = child;
                if parts[i] == "*" {
                    match child {
                        MapOf(inner) => child = inner,
                        _ => panic!("{imp}: {part} is not a map"),
                    }
                    i += 1;
                }
                match child {
                    Obj(c) => shape = c,
                    _ => panic!("{imp}: {part} is not an object"),
                }
            }
        }
    }

    #[test]
    fn typo_distance() {
        assert_eq!(nearest("bnid", ["bind", "port"].into_iter()), Some("bind"));
        assert_eq!(nearest("xyz", ["bind", "port"].into_iter()), None);
        assert_eq!(
            nearest("trustedProxy", ["trustedProxies", "tls"].into_iter()),
            Some("trustedProxies")
        );
    }
}
