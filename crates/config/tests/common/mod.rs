//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use clawgate_config::{ConfigError, LoadedConfig};

/// An injected environment made of `pairs`; everything else is unset.
pub fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

pub const PATH: &str = "/home/u/.openclaw/openclaw.json";

/// Parses `text` as if it were the file at [`PATH`].
pub fn parse(text: &str, pairs: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    LoadedConfig::from_json5(Path::new(PATH), text, &env(pairs))
}

/// The error message for `text`, which must fail.
pub fn parse_err(text: &str, pairs: &[(&str, &str)]) -> String {
    match parse(text, pairs) {
        Ok(c) => panic!("expected an error, loaded {:?}", c.gateway),
        Err(e) => e.to_string(),
    }
}
