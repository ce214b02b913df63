//! The config loader: a JSON5 file with `${VAR}` references, loaded against an environment,
//! then everything the gateway and the CLI derive from it (run settings, the client target,
//! the redacted view and hash of `config.get`, the diagnostics).
//!
//! Input: `NAME=value` lines (the environment), a line `---`, then the config text. Without
//! a `---` line the whole input is the config and the environment is empty.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use clawgate_config::{
    ClientFlags, GatewayRunInputs, LoadedConfig, config_hash, redacted, resolve_client_target,
    resolve_gateway_settings,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (env_text, config_text) = match input.split_once("\n---\n") {
        Some((env, config)) => (env, config),
        None => ("", input),
    };
    let vars: HashMap<&str, &str> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let env = |name: &str| vars.get(name).map(|v| (*v).to_owned());

    let path = Path::new("/fuzz/openclaw.json");
    let loaded = match LoadedConfig::from_json5(path, config_text, &env) {
        Ok(loaded) => loaded,
        Err(error) => {
            assert!(!error.to_string().is_empty(), "a refusal says why");
            return;
        }
    };
    loaded.diagnostics();
    // Two loads of the same text and environment agree (config.get's hash is stable).
    let hash = config_hash(&redacted(&loaded.raw));
    let again = LoadedConfig::from_json5(path, config_text, &env).expect("loaded once");
    assert_eq!(config_hash(&redacted(&again.raw)), hash);
    // Logging a config goes through the redaction walk.
    let _ = format!("{loaded:?}");
    if let Err(error) = resolve_gateway_settings(&GatewayRunInputs::default(), Some(&loaded), &env)
    {
        assert!(!error.to_string().is_empty(), "a refusal says why");
    }
    if let Err(error) = resolve_client_target(&ClientFlags::default(), Some(&loaded), &env) {
        assert!(!error.to_string().is_empty(), "a refusal says why");
    }
});
