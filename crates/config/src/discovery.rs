//! `discovery.*` and the Bonjour plugin's switch: how the gateway announces itself.

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::gateway_config::Reader;
use crate::modes::MdnsMode;

/// `discovery.*` and `plugins.entries.bonjour.enabled`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// `discovery.mdns.mode` (the beacon's default is `minimal`).
    pub mdns_mode: Option<MdnsMode>,
    /// `discovery.wideArea.domain`, trimmed; `None` when unset or blank.
    pub wide_area_domain: Option<String>,
    /// `plugins.entries.bonjour.enabled` when it is a boolean. Of the plugins only this
    /// switch is read; OpenClaw's Bonjour plugin is on by default only on macOS.
    pub bonjour_plugin: Option<bool>,
}

/// Builds the typed view from the (substituted) document's root.
pub(crate) fn read_discovery(
    r: &Reader<'_>,
    root: &Map<String, Value>,
) -> Result<DiscoveryConfig, ConfigError> {
    let mut cfg = DiscoveryConfig {
        bonjour_plugin: root
            .get("plugins")
            .and_then(|p| p.get("entries"))
            .and_then(|e| e.get("bonjour"))
            .and_then(|b| b.get("enabled"))
            .and_then(Value::as_bool),
        ..DiscoveryConfig::default()
    };
    let Some(discovery) = r.object(root, "discovery", "discovery")? else {
        return Ok(cfg);
    };
    if let Some(mdns) = r.object(discovery, "mdns", "discovery.mdns")? {
        cfg.mdns_mode = r.enumeration(mdns, "mode", "discovery.mdns.mode", MdnsMode::ALLOWED)?;
    }
    if let Some(wide_area) = r.object(discovery, "wideArea", "discovery.wideArea")? {
        cfg.wide_area_domain = r
            .string(wide_area, "domain", "discovery.wideArea.domain")?
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn discovery(config: Value) -> Result<DiscoveryConfig, String> {
        crate::LoadedConfig::from_value(
            std::path::Path::new("/c/openclaw.json"),
            config,
            &|_: &str| None,
        )
        .map(|l| l.discovery)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn mdns_mode() {
        let mode =
            |v: Value| discovery(json!({"discovery": {"mdns": {"mode": v}}})).map(|d| d.mdns_mode);
        assert_eq!(discovery(json!({})).unwrap().mdns_mode, None);
        assert_eq!(MdnsMode::default(), MdnsMode::Minimal);
        assert_eq!(mode(json!("off")), Ok(Some(MdnsMode::Off)));
        assert_eq!(mode(json!("full")), Ok(Some(MdnsMode::Full)));
        let err = mode(json!("loud")).unwrap_err();
        assert!(
            err.ends_with("discovery.mdns.mode must be one of off, minimal, full (got \"loud\")"),
            "{err}"
        );
        assert!(discovery(json!({"discovery": 1})).is_err());
    }

    #[test]
    fn wide_area_domain() {
        let domain = |v: Value| {
            discovery(json!({"discovery": {"wideArea": {"domain": v}}})).map(|d| d.wide_area_domain)
        };
        assert_eq!(domain(json!(" x.y ")), Ok(Some("x.y".into())));
        assert_eq!(domain(json!("")), Ok(None));
        assert_eq!(discovery(json!({})).unwrap().wide_area_domain, None);
        let err = domain(json!(5)).unwrap_err();
        assert!(err.contains(": discovery.wideArea.domain must be"), "{err}");
    }

    #[test]
    fn bonjour_switch() {
        let bonjour = |v: Value| {
            discovery(json!({"plugins": {"entries": {"bonjour": {"enabled": v}}}}))
                .unwrap()
                .bonjour_plugin
        };
        assert_eq!(bonjour(json!(true)), Some(true));
        assert_eq!(bonjour(json!(false)), Some(false));
        assert_eq!(bonjour(json!("yes")), None);
    }
}
