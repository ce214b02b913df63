//! The `connect` request's params: schema validation (the real gateway's error texts), the
//! typed params, role and protocol negotiation, then what the gateway derives from an accepted
//! node's declaration (platform, approval surface, allowlist).
//!
//! Seeds: fuzz/corpus/connect (connect params from real OpenClaw traffic).
#![no_main]

use clawgate_protocol::connect::{self, Role};
use clawgate_protocol::frames;
use clawgate_protocol::nodes;
use clawgate_protocol::schema::{self, Schema};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(params) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let schema_ok = schema::validate(Schema::ConnectParams, &params).is_ok();
    match connect::accept(params) {
        Ok(accepted) => {
            assert!(schema_ok, "accepted params passed the schema");
            assert!(
                (clawgate_protocol::MIN_NODE_PROTOCOL..=clawgate_protocol::PROTOCOL_VERSION)
                    .contains(&accepted.protocol),
                "negotiated protocol {} is one this gateway speaks",
                accepted.protocol
            );
            let p = &accepted.params;
            nodes::platform_id(&p.client.platform, p.client.device_family.as_deref());
            if accepted.role == Role::Node {
                let mut caps = p.caps.clone();
                let mut commands = p.commands.clone().unwrap_or_default();
                if accepted.protocol < clawgate_protocol::PROTOCOL_VERSION {
                    nodes::withhold_plugin_surface(&mut caps, &mut commands);
                }
                let surface = nodes::approval_surface(&commands);
                nodes::required_approve_scopes(&surface);
                let allowed = nodes::allowlist(&p.client.platform, &surface, &[], &[]);
                for command in &commands {
                    let _ = nodes::check_command(command, &allowed, &commands);
                }
            }
        }
        Err(refusal) => {
            frames::response_err("connect", &refusal.error);
        }
    }
});
