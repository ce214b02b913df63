//! The Telegram channel's settings: `channels.telegram.*` (one bot; `accounts.*` is not read
//! yet), with OpenClaw's meanings and defaults.
//!
//! The bot token comes from `botToken` (a string or an env SecretRef), else the file named by
//! `tokenFile`, else `TELEGRAM_BOT_TOKEN`. It is a [`Secret`]: it is part of every Bot API
//! URL, so nothing here ever prints it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::gateway_config::{Reader, shown};
use crate::secret::Secret;

/// The environment variable the bot token is read from when the file names none.
pub const TELEGRAM_TOKEN_ENV: &str = "TELEGRAM_BOT_TOKEN";

/// The Bot API's own address, the default of `channels.telegram.apiRoot`.
pub const TELEGRAM_API_ROOT: &str = "https://api.telegram.org";

/// Telegram's hard limit on one message's text.
pub const TELEGRAM_MAX_TEXT: u64 = 4096;

/// Who may talk to the bot in a direct chat (`channels.telegram.dmPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DmPolicy {
    /// Unknown senders get a pairing code the owner approves (the default).
    #[default]
    Pairing,
    /// Only `allowFrom` (and approved senders).
    Allowlist,
    /// Everyone (`allowFrom` must contain `"*"`).
    Open,
    /// No direct messages at all.
    Disabled,
}

impl DmPolicy {
    pub const ALLOWED: &'static [&'static str] = &["pairing", "allowlist", "open", "disabled"];

    pub fn as_str(self) -> &'static str {
        match self {
            DmPolicy::Pairing => "pairing",
            DmPolicy::Allowlist => "allowlist",
            DmPolicy::Open => "open",
            DmPolicy::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Option<DmPolicy> {
        Some(match s {
            "pairing" => DmPolicy::Pairing,
            "allowlist" => DmPolicy::Allowlist,
            "open" => DmPolicy::Open,
            "disabled" => DmPolicy::Disabled,
            _ => return None,
        })
    }
}

/// Which group chats the bot answers in (`channels.telegram.groupPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupPolicy {
    /// Only the chats listed in `groups` (the default).
    #[default]
    Allowlist,
    /// Every group.
    Open,
    /// None.
    Disabled,
}

impl GroupPolicy {
    pub const ALLOWED: &'static [&'static str] = &["allowlist", "open", "disabled"];

    fn parse(s: &str) -> Option<GroupPolicy> {
        Some(match s {
            "allowlist" => GroupPolicy::Allowlist,
            "open" => GroupPolicy::Open,
            "disabled" => GroupPolicy::Disabled,
            _ => return None,
        })
    }
}

/// Whether replies quote the message they answer (`channels.telegram.replyToMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyToMode {
    /// Never (the default).
    #[default]
    Off,
    /// The first chunk of a reply quotes the message.
    First,
    /// Every chunk does.
    All,
}

impl ReplyToMode {
    pub const ALLOWED: &'static [&'static str] = &["off", "first", "all"];

    fn parse(s: &str) -> Option<ReplyToMode> {
        Some(match s {
            "off" => ReplyToMode::Off,
            "first" => ReplyToMode::First,
            "all" => ReplyToMode::All,
            _ => return None,
        })
    }
}

/// Whether a failed turn's error reaches the chat (`channels.telegram.errorPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Every error is sent (the default).
    #[default]
    Always,
    /// The first error of a run of failures is sent, the rest only logged.
    Once,
    /// Errors are only logged.
    Silent,
}

impl ErrorPolicy {
    pub const ALLOWED: &'static [&'static str] = &["always", "once", "silent"];

    fn parse(s: &str) -> Option<ErrorPolicy> {
        Some(match s {
            "always" => ErrorPolicy::Always,
            "once" => ErrorPolicy::Once,
            "silent" => ErrorPolicy::Silent,
            _ => return None,
        })
    }
}

/// Where the bot token came from (for status lines; never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `channels.telegram.botToken`.
    Config,
    /// The file named by `channels.telegram.tokenFile`.
    File(PathBuf),
    /// `TELEGRAM_BOT_TOKEN`.
    Env,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Config => f.write_str("channels.telegram.botToken"),
            TokenSource::File(p) => write!(f, "channels.telegram.tokenFile ({})", p.display()),
            TokenSource::Env => f.write_str(TELEGRAM_TOKEN_ENV),
        }
    }
}

/// One `channels.telegram.groups.<chatId|*>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramGroupConfig {
    /// Messages must mention the bot (default true).
    pub require_mention: bool,
    /// Senders allowed in this group (numeric user ids or `*`); empty means `groupAllowFrom`.
    pub allow_from: Vec<String>,
}

/// `channels.telegram`, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramConfig {
    /// `enabled` (default true once the section exists).
    pub enabled: bool,
    /// The bot token, if any source gave one.
    pub token: Option<Secret>,
    pub token_source: Option<TokenSource>,
    /// `apiRoot` without a trailing `/`.
    pub api_root: String,
    pub dm_policy: DmPolicy,
    /// Numeric user ids (as text) or `*`; `telegram:`/`tg:` prefixes removed.
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    pub groups: BTreeMap<String, TelegramGroupConfig>,
    pub group_allow_from: Vec<String>,
    /// Longest text per message, in UTF-16 code units as Telegram counts (default 4000).
    pub text_chunk_limit: usize,
    /// Whether Telegram shows link previews (default true).
    pub link_preview: bool,
    pub reply_to_mode: ReplyToMode,
    pub error_policy: ErrorPolicy,
    /// An `http://` or `https://` proxy for Bot API requests.
    pub proxy: Option<String>,
    /// `execApprovals.enabled`: `None` is `"auto"` (on when there is an approver).
    pub exec_approvals_enabled: Option<bool>,
    /// `execApprovals.approvers`: Telegram user ids who may answer exec approvals.
    pub exec_approvers: Vec<String>,
    /// The Telegram entries of the top-level `commands.ownerAllowFrom` (`telegram:<id>`), the
    /// approvers when `execApprovals.approvers` names none (as OpenClaw).
    pub owner_allow_from: Vec<String>,
    /// `webhookUrl`: Telegram posts updates there instead of being long-polled.
    pub webhook_url: Option<String>,
    /// `webhookSecret`: the `X-Telegram-Bot-Api-Secret-Token` every webhook post must carry
    /// (required with `webhookUrl`).
    pub webhook_secret: Option<Secret>,
    /// `webhookPath`: where the gateway takes the posts on its own port
    /// (default `/telegram-webhook`).
    pub webhook_path: String,
    /// This account's id: [`DEFAULT_ACCOUNT_ID`] for the top level.
    pub account_id: String,
    /// `accounts.<id>`, each merged over the top level (top level only).
    pub accounts: Vec<TelegramConfig>,
}

impl TelegramConfig {
    /// The bots to run: the enabled accounts of `accounts`, and the top level as the
    /// `default` account when it has a token of its own and `accounts` has no `default`;
    /// without `accounts`, the top level alone.
    pub fn bots(&self) -> Vec<&TelegramConfig> {
        if self.accounts.is_empty() {
            return vec![self];
        }
        let mut bots: Vec<&TelegramConfig> = Vec::new();
        if self.token.is_some()
            && !self
                .accounts
                .iter()
                .any(|a| a.account_id == DEFAULT_ACCOUNT_ID)
        {
            bots.push(self);
        }
        bots.extend(self.accounts.iter().filter(|a| a.enabled));
        bots
    }
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            enabled: true,
            token: None,
            token_source: None,
            api_root: TELEGRAM_API_ROOT.to_owned(),
            dm_policy: DmPolicy::default(),
            allow_from: Vec::new(),
            group_policy: GroupPolicy::default(),
            groups: BTreeMap::new(),
            group_allow_from: Vec::new(),
            text_chunk_limit: 4000,
            link_preview: true,
            reply_to_mode: ReplyToMode::default(),
            error_policy: ErrorPolicy::default(),
            proxy: None,
            exec_approvals_enabled: None,
            exec_approvers: Vec::new(),
            owner_allow_from: Vec::new(),
            webhook_url: None,
            webhook_secret: None,
            webhook_path: DEFAULT_WEBHOOK_PATH.to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            accounts: Vec::new(),
        }
    }
}

/// The keys of `channels.telegram` clawgate reads; the others are reported as ignored.
pub(crate) const TELEGRAM_KEYS: &[&str] = &[
    "enabled",
    "botToken",
    "tokenFile",
    "apiRoot",
    "dmPolicy",
    "allowFrom",
    "textChunkLimit",
    "linkPreview",
    "replyToMode",
    "errorPolicy",
    "proxy",
    "groupPolicy",
    "groups",
    "groupAllowFrom",
    "execApprovals",
    "accounts",
    "webhookUrl",
    "webhookSecret",
    "webhookPath",
];

const PREFIX: &str = "channels.telegram";

fn choice<T>(
    r: &Reader<'_>,
    (tg, prefix): (&Map<String, Value>, &str),
    name: &str,
    allowed: &[&str],
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let key = format!("{prefix}.{name}");
    match r.string(tg, name, &key)? {
        None => Ok(None),
        Some(v) => parse(&v).map(Some).ok_or_else(|| {
            r.invalid(
                &key,
                format!(
                    "{key} must be one of {} (got {})",
                    allowed.join(", "),
                    Value::String(v)
                ),
            )
        }),
    }
}

/// `text` without a leading `telegram:` or `tg:` (any case).
fn without_channel_prefix(text: String) -> String {
    let lower = text.to_ascii_lowercase();
    ["telegram:", "tg:"]
        .iter()
        .find_map(|p| {
            lower
                .strip_prefix(p)
                .map(|_| text[p.len()..].trim().to_owned())
        })
        .unwrap_or(text)
}

/// A list of Telegram user ids: numbers or numeric strings, optionally `telegram:` / `tg:`
/// prefixed, or `*`.
fn id_list(
    r: &Reader<'_>,
    parent: &Map<String, Value>,
    name: &str,
    key: &str,
) -> Result<Vec<String>, ConfigError> {
    let items = match parent.get(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(r.invalid(
                key,
                format!(
                    "{key} must be an array of Telegram user ids, e.g. [\"123456789\"] (got {})",
                    shown(other)
                ),
            ));
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_key = format!("{key}[{i}]");
        let text = match item {
            Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            Value::String(s) => s.trim().to_owned(),
            other => {
                return Err(r.invalid(
                    &item_key,
                    format!(
                        "{item_key} must be a Telegram user id (got {})",
                        shown(other)
                    ),
                ));
            }
        };
        let id = without_channel_prefix(text);
        let numeric = id.strip_prefix('-').unwrap_or(&id);
        if id != "*" && (numeric.is_empty() || !numeric.bytes().all(|b| b.is_ascii_digit())) {
            return Err(r.invalid(
                &item_key,
                format!(
                    "{item_key} must be a numeric Telegram user id or \"*\" (got {}); the bot tells an unknown sender their id, or approve them with clawgate pairing approve telegram <CODE>",
                    Value::String(id)
                ),
            ));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn url(
    r: &Reader<'_>,
    (tg, prefix): (&Map<String, Value>, &str),
    name: &str,
    example: &str,
) -> Result<Option<String>, ConfigError> {
    let key = format!("{prefix}.{name}");
    let Some(v) = r.string(tg, name, &key)? else {
        return Ok(None);
    };
    let trimmed = v.trim().trim_end_matches('/');
    let ok = ["http://", "https://"]
        .iter()
        .any(|p| trimmed.len() > p.len() && trimmed[..p.len()].eq_ignore_ascii_case(p));
    if !ok {
        return Err(r.invalid(
            &key,
            format!(
                "{key} must be an http:// or https:// URL such as {example} (got {})",
                Value::String(v.clone())
            ),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

/// Reads `channels.telegram`; `None` when the section is absent.
pub(crate) fn read_telegram(
    r: &Reader<'_>,
    root: &Map<String, Value>,
) -> Result<Option<TelegramConfig>, ConfigError> {
    let Some(channels) = r.object(root, "channels", "channels")? else {
        return Ok(None);
    };
    let Some(tg) = r.object(channels, "telegram", PREFIX)? else {
        return Ok(None);
    };
    let mut cfg = read_account(r, root, tg, PREFIX, true)?;
    if let Some(accounts) = r.object(tg, "accounts", &format!("{PREFIX}.accounts"))? {
        // An account's keys override the top-level ones; the rest it inherits.
        let mut inherited = tg.clone();
        inherited.remove("accounts");
        inherited.remove("defaultAccount");
        for (id, value) in accounts {
            let at = format!("{PREFIX}.accounts.{id}");
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(r.invalid(
                    &at,
                    format!("{at}: an account id is letters, digits, - and _ (e.g. \"work\")"),
                ));
            }
            let Value::Object(own) = value else {
                return Err(r.invalid(
                    &at,
                    format!("{at} must be an object (got {})", shown(value)),
                ));
            };
            let mut merged = inherited.clone();
            // A token of the top level is the default account's, not every account's.
            if id != DEFAULT_ACCOUNT_ID {
                merged.remove("botToken");
                merged.remove("tokenFile");
            }
            merged.extend(own.clone());
            let mut account = read_account(r, root, &merged, &at, id == DEFAULT_ACCOUNT_ID)?;
            account.account_id = id.clone();
            account.enabled = cfg.enabled && account.enabled;
            cfg.accounts.push(account);
        }
    }
    let mut paths = std::collections::HashSet::new();
    for bot in cfg.bots() {
        if bot.webhook_url.is_some() && !paths.insert(bot.webhook_path.clone()) {
            let at = format!("{PREFIX}.accounts.{}.webhookPath", bot.account_id);
            return Err(r.invalid(
                &at,
                format!("{at}: another account already takes webhook posts at {}; give each account its own webhookPath", bot.webhook_path),
            ));
        }
    }
    Ok(Some(cfg))
}

/// Where the gateway takes webhook posts unless `webhookPath` says otherwise.
pub const DEFAULT_WEBHOOK_PATH: &str = "/telegram-webhook";

/// The account id of the top-level `channels.telegram` (and of `accounts.default`).
pub const DEFAULT_ACCOUNT_ID: &str = "default";

/// One account's settings from `tg` (the top level, or an account merged over it), its errors
/// named under `prefix`. Only the default account falls back to `TELEGRAM_BOT_TOKEN`.
fn read_account(
    r: &Reader<'_>,
    root: &Map<String, Value>,
    tg: &Map<String, Value>,
    prefix: &str,
    default_account: bool,
) -> Result<TelegramConfig, ConfigError> {
    let key = |name: &str| format!("{prefix}.{name}");
    let at = (tg, prefix);
    let mut cfg = TelegramConfig::default();
    if let Some(enabled) = r.bool(tg, "enabled", &key("enabled"))? {
        cfg.enabled = enabled;
    }

    if let Some(token) = r.secret(tg, "botToken", &key("botToken"))? {
        cfg.token = Some(token);
        cfg.token_source = Some(TokenSource::Config);
    } else if let Some(path) = r.path(tg, "tokenFile", &key("tokenFile"))? {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            r.invalid(
                &key("tokenFile"),
                format!(
                    "{}: cannot read {}: {e}; write the bot token from @BotFather into that file, or set channels.telegram.botToken",
                    key("tokenFile"),
                    path.display()
                ),
            )
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(r.invalid(
                &key("tokenFile"),
                format!(
                    "{}: {} is empty; write the bot token from @BotFather into it",
                    key("tokenFile"),
                    path.display()
                ),
            ));
        }
        cfg.token = Some(Secret::new(token));
        cfg.token_source = Some(TokenSource::File(path));
    } else if let Some(token) =
        (r.env)(TELEGRAM_TOKEN_ENV).filter(|t| default_account && !t.trim().is_empty())
    {
        cfg.token = Some(Secret::new(token.trim()));
        cfg.token_source = Some(TokenSource::Env);
    }
    if let Some(token) = &cfg.token {
        let t = token.expose();
        if t.contains(char::is_whitespace) || t.contains('/') || !t.contains(':') {
            let source = cfg
                .token_source
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(r.invalid(
                &key("botToken"),
                format!(
                    "the Telegram bot token from {source} does not look like one (a token is <bot id>:<secret>, as @BotFather gives it); correct channels.telegram.botToken"
                ),
            ));
        }
    }

    if let Some(api_root) = url(r, at, "apiRoot", TELEGRAM_API_ROOT)? {
        cfg.api_root = api_root;
    }
    cfg.proxy = url(r, at, "proxy", "http://127.0.0.1:3128")?;
    if let Some(p) = choice(r, at, "dmPolicy", DmPolicy::ALLOWED, DmPolicy::parse)? {
        cfg.dm_policy = p;
    }
    cfg.allow_from = id_list(r, tg, "allowFrom", &key("allowFrom"))?;
    if cfg.dm_policy == DmPolicy::Open && !cfg.allow_from.iter().any(|a| a == "*") {
        return Err(r.invalid(
            &key("dmPolicy"),
            format!(
                "{} \"open\" lets anyone on Telegram use the bot, so it must be confirmed with {}: [\"*\"]; add it, or use dmPolicy \"pairing\"",
                key("dmPolicy"),
                key("allowFrom")
            ),
        ));
    }
    if let Some(p) = choice(
        r,
        at,
        "groupPolicy",
        GroupPolicy::ALLOWED,
        GroupPolicy::parse,
    )? {
        cfg.group_policy = p;
    }
    cfg.group_allow_from = id_list(r, tg, "groupAllowFrom", &key("groupAllowFrom"))?;
    if let Some(groups) = r.object(tg, "groups", &key("groups"))? {
        for (chat, value) in groups {
            let at = format!("{}.{chat}", key("groups"));
            let numeric = chat.strip_prefix('-').unwrap_or(chat);
            if chat != "*" && (numeric.is_empty() || !numeric.bytes().all(|b| b.is_ascii_digit())) {
                return Err(r.invalid(
                    &at,
                    format!("{at}: a group is named by its numeric chat id (e.g. \"-1001234567890\") or \"*\""),
                ));
            }
            let empty = Map::new();
            let g = match value {
                Value::Object(o) => o,
                Value::Null => &empty,
                other => {
                    return Err(r.invalid(
                        &at,
                        format!("{at} must be an object (got {})", shown(other)),
                    ));
                }
            };
            let group = TelegramGroupConfig {
                require_mention: r
                    .bool(g, "requireMention", &format!("{at}.requireMention"))?
                    .unwrap_or(true),
                allow_from: id_list(r, g, "allowFrom", &format!("{at}.allowFrom"))?,
            };
            cfg.groups.insert(chat.clone(), group);
        }
    }
    if let Some(limit) = r.int(
        tg,
        "textChunkLimit",
        &key("textChunkLimit"),
        1,
        TELEGRAM_MAX_TEXT,
    )? {
        cfg.text_chunk_limit = limit as usize;
    }
    if let Some(b) = r.bool(tg, "linkPreview", &key("linkPreview"))? {
        cfg.link_preview = b;
    }
    if let Some(m) = choice(
        r,
        at,
        "replyToMode",
        ReplyToMode::ALLOWED,
        ReplyToMode::parse,
    )? {
        cfg.reply_to_mode = m;
    }
    if let Some(p) = choice(
        r,
        at,
        "errorPolicy",
        ErrorPolicy::ALLOWED,
        ErrorPolicy::parse,
    )? {
        cfg.error_policy = p;
    }
    if let Some(approvals) = r.object(tg, "execApprovals", &key("execApprovals"))? {
        let at = key("execApprovals.enabled");
        cfg.exec_approvals_enabled = match approvals.get("enabled") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s == "auto" => None,
            Some(other) => {
                return Err(r.invalid(
                    &at,
                    format!(
                        "{at} must be true, false or \"auto\" (got {})",
                        shown(other)
                    ),
                ));
            }
        };
        cfg.exec_approvers = id_list(r, approvals, "approvers", &key("execApprovals.approvers"))?;
    }
    cfg.webhook_url = url(
        r,
        at,
        "webhookUrl",
        "https://gateway.example.com/telegram-webhook",
    )?;
    cfg.webhook_secret = r.secret(tg, "webhookSecret", &key("webhookSecret"))?;
    if let Some(secret) = &cfg.webhook_secret {
        let s = secret.expose();
        if s.is_empty()
            || s.len() > 256
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(r.invalid(
                &key("webhookSecret"),
                format!("{} must be 1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule for secret_token)", key("webhookSecret")),
            ));
        }
    }
    if cfg.webhook_url.is_some() && cfg.webhook_secret.is_none() {
        return Err(r.invalid(
            &key("webhookSecret"),
            format!(
                "{} is set, so {} is required: every post must prove it comes from Telegram (e.g. the output of `openssl rand -hex 32`)",
                key("webhookUrl"),
                key("webhookSecret")
            ),
        ));
    }
    if let Some(path) = r.string(tg, "webhookPath", &key("webhookPath"))? {
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(r.invalid(
                &key("webhookPath"),
                format!(
                    "{} must be a path such as {DEFAULT_WEBHOOK_PATH}",
                    key("webhookPath")
                ),
            ));
        }
        cfg.webhook_path = path;
    }
    cfg.owner_allow_from = owner_allow_from(root);
    Ok(cfg)
}

/// The Telegram user ids of `commands.ownerAllowFrom` (`telegram:<id>` or `tg:<id>`; entries
/// of other channels are theirs).
fn owner_allow_from(root: &Map<String, Value>) -> Vec<String> {
    let entries = root
        .get("commands")
        .and_then(|c| c.get("ownerAllowFrom"))
        .and_then(Value::as_array);
    let mut out: Vec<String> = Vec::new();
    for entry in entries.into_iter().flatten() {
        let text = match entry {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let id = without_channel_prefix(text);
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LoadedConfig;
    use serde_json::json;
    use std::path::Path;

    const TOKEN: &str = "123456:AAH-secret-part";

    fn load_with(
        doc: Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<TelegramConfig>, String> {
        LoadedConfig::from_value(Path::new("/t/openclaw.json"), doc, env)
            .map(|l| l.telegram)
            .map_err(|e| e.to_string())
    }

    fn load(doc: Value) -> Result<Option<TelegramConfig>, String> {
        load_with(doc, &|_| None)
    }

    #[test]
    fn exec_approvers_come_from_exec_approvals_and_owner_allow_from() {
        let cfg = load(json!({
            "commands": {"ownerAllowFrom": ["telegram:11", "discord:12", "tg:13", 14, "telegram:11"]},
            "channels": {"telegram": {"execApprovals": {"enabled": "auto", "approvers": ["21", "telegram:22"]}}},
        }))
        .unwrap()
        .unwrap();
        assert_eq!(cfg.exec_approvals_enabled, None);
        assert_eq!(cfg.exec_approvers, ["21", "22"]);
        assert_eq!(cfg.owner_allow_from, ["11", "13", "14"]);
        let cfg = load(json!({"channels": {"telegram": {"execApprovals": {"enabled": false}}}}))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.exec_approvals_enabled, Some(false));
        let err = load(json!({"channels": {"telegram": {"execApprovals": {"enabled": "yes"}}}}))
            .unwrap_err();
        assert!(
            err.contains("channels.telegram.execApprovals.enabled must be true, false or \"auto\""),
            "{err}"
        );
        let err =
            load(json!({"channels": {"telegram": {"execApprovals": {"approvers": ["bob"]}}}}))
                .unwrap_err();
        assert!(
            err.contains("channels.telegram.execApprovals.approvers[0]"),
            "{err}"
        );
    }

    #[test]
    fn accounts_inherit_the_top_level_and_override_it() {
        let cfg = load_with(
            json!({"channels": {"telegram": {
                "botToken": TOKEN,
                "dmPolicy": "allowlist",
                "allowFrom": ["1"],
                "accounts": {
                    "work": {"botToken": "222:work-token", "allowFrom": ["2"]},
                    "off": {"botToken": "333:off-token", "enabled": false},
                    "bare": {},
                },
            }}}),
            &|k| (k == TELEGRAM_TOKEN_ENV).then(|| "444:env-token".to_owned()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(cfg.account_id, "default");
        let work = cfg
            .accounts
            .iter()
            .find(|a| a.account_id == "work")
            .unwrap();
        assert_eq!(work.token.as_ref().unwrap().expose(), "222:work-token");
        assert_eq!(work.dm_policy, DmPolicy::Allowlist, "inherited");
        assert_eq!(work.allow_from, ["2"], "overridden");
        // Neither the top-level token nor TELEGRAM_BOT_TOKEN is another account's.
        let bare = cfg
            .accounts
            .iter()
            .find(|a| a.account_id == "bare")
            .unwrap();
        assert!(bare.token.is_none());
        let bots: Vec<&str> = cfg.bots().iter().map(|b| b.account_id.as_str()).collect();
        assert_eq!(
            bots,
            ["default", "work", "bare"],
            "in file order, the disabled one left out"
        );

        let err =
            load(json!({"channels": {"telegram": {"accounts": {"w": {"dmPolicy": "nope"}}}}}))
                .unwrap_err();
        assert!(
            err.contains("channels.telegram.accounts.w.dmPolicy must be one of"),
            "{err}"
        );
        let err = load(json!({"channels": {"telegram": {"accounts": {"a b": {}}}}})).unwrap_err();
        assert!(err.contains("an account id is letters"), "{err}");
    }

    #[test]
    fn webhook_keys() {
        let cfg = load(json!({"channels": {"telegram": {
            "webhookUrl": "https://gw.example.com/tg", "webhookSecret": "s3cret_-X", "webhookPath": "/tg",
        }}}))
        .unwrap()
        .unwrap();
        assert_eq!(
            cfg.webhook_url.as_deref(),
            Some("https://gw.example.com/tg")
        );
        assert_eq!(cfg.webhook_secret.as_ref().unwrap().expose(), "s3cret_-X");
        assert_eq!(cfg.webhook_path, "/tg");
        let err =
            load(json!({"channels": {"telegram": {"webhookUrl": "https://gw.example.com/tg"}}}))
                .unwrap_err();
        assert!(
            err.contains("channels.telegram.webhookSecret is required"),
            "{err}"
        );
        let err = load(json!({"channels": {"telegram": {"webhookUrl": "https://x/y", "webhookSecret": "a b"}}}))
            .unwrap_err();
        assert!(err.contains("secret_token"), "{err}");
        let err = load(json!({"channels": {"telegram": {
            "botToken": TOKEN, "webhookUrl": "https://x/y", "webhookSecret": "abc",
            "accounts": {"work": {"botToken": "9:other"}},
        }}}))
        .unwrap_err();
        assert!(
            err.contains("channels.telegram.accounts.work.webhookPath"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_every_key() {
        assert_eq!(load(json!({})).unwrap(), None);
        let cfg = load(json!({"channels": {"telegram": {}}}))
            .unwrap()
            .unwrap();
        assert_eq!(cfg, TelegramConfig::default());
        assert_eq!(cfg.dm_policy, DmPolicy::Pairing);
        assert_eq!(cfg.text_chunk_limit, 4000);

        let cfg = load(json!({"channels": {"telegram": {
            "enabled": false,
            "botToken": TOKEN,
            "apiRoot": "http://127.0.0.1:9/",
            "dmPolicy": "allowlist",
            "allowFrom": [42, "tg:43", "telegram:44", "42"],
            "groupPolicy": "open",
            "groups": {"-100123": {"requireMention": false, "allowFrom": ["7"]}, "*": {}},
            "groupAllowFrom": ["8"],
            "textChunkLimit": 1000,
            "linkPreview": false,
            "replyToMode": "first",
            "errorPolicy": "silent",
            "proxy": "http://proxy:3128",
        }}}))
        .unwrap()
        .unwrap();
        assert!(!cfg.enabled);
        assert_eq!(cfg.token.as_ref().unwrap().expose(), TOKEN);
        assert_eq!(cfg.token_source, Some(TokenSource::Config));
        assert_eq!(cfg.api_root, "http://127.0.0.1:9");
        assert_eq!(cfg.dm_policy, DmPolicy::Allowlist);
        assert_eq!(cfg.allow_from, vec!["42", "43", "44"]);
        assert_eq!(cfg.group_policy, GroupPolicy::Open);
        assert!(!cfg.groups["-100123"].require_mention);
        assert_eq!(cfg.groups["-100123"].allow_from, vec!["7"]);
        assert!(cfg.groups["*"].require_mention);
        assert_eq!(cfg.group_allow_from, vec!["8"]);
        assert_eq!(cfg.text_chunk_limit, 1000);
        assert!(!cfg.link_preview);
        assert_eq!(cfg.reply_to_mode, ReplyToMode::First);
        assert_eq!(cfg.error_policy, ErrorPolicy::Silent);
        assert_eq!(cfg.proxy.as_deref(), Some("http://proxy:3128"));
    }

    #[test]
    fn token_sources_in_order() {
        let env = |name: &str| (name == TELEGRAM_TOKEN_ENV).then(|| "9:from-env".to_owned());
        let cfg = load_with(json!({"channels": {"telegram": {}}}), &env)
            .unwrap()
            .unwrap();
        assert_eq!(cfg.token.unwrap().expose(), "9:from-env");
        assert_eq!(cfg.token_source, Some(TokenSource::Env));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "9:from-file\n").unwrap();
        let doc = json!({"channels": {"telegram": {"tokenFile": file}}});
        let cfg = load_with(doc, &env).unwrap().unwrap();
        assert_eq!(cfg.token.unwrap().expose(), "9:from-file");
        assert_eq!(cfg.token_source, Some(TokenSource::File(file.clone())));

        let doc = json!({"channels": {"telegram": {"tokenFile": file, "botToken": "9:cfg"}}});
        assert_eq!(
            load_with(doc, &env)
                .unwrap()
                .unwrap()
                .token
                .unwrap()
                .expose(),
            "9:cfg"
        );

        let err = load(json!({"channels": {"telegram": {"tokenFile": dir.path().join("nope")}}}))
            .unwrap_err();
        assert!(
            err.contains("channels.telegram.tokenFile: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key_and_never_show_the_token() {
        let err = load(json!({"channels": {"telegram": {"dmPolicy": "everyone"}}})).unwrap_err();
        assert!(
            err.contains(
                "channels.telegram.dmPolicy must be one of pairing, allowlist, open, disabled"
            ),
            "{err}"
        );
        let err = load(json!({"channels": {"telegram": {"dmPolicy": "open"}}})).unwrap_err();
        assert!(
            err.contains("channels.telegram.allowFrom: [\"*\"]"),
            "{err}"
        );
        assert!(
            load(json!({"channels": {"telegram": {"dmPolicy": "open", "allowFrom": ["*"]}}}))
                .is_ok()
        );
        let err = load(json!({"channels": {"telegram": {"allowFrom": ["@alice"]}}})).unwrap_err();
        assert!(
            err.contains("channels.telegram.allowFrom[0] must be a numeric Telegram user id"),
            "{err}"
        );
        let err = load(json!({"channels": {"telegram": {"textChunkLimit": 5000}}})).unwrap_err();
        assert!(
            err.contains("channels.telegram.textChunkLimit must be an integer between 1 and 4096"),
            "{err}"
        );
        let err =
            load(json!({"channels": {"telegram": {"apiRoot": "api.telegram.org"}}})).unwrap_err();
        assert!(
            err.contains("channels.telegram.apiRoot must be an http:// or https:// URL"),
            "{err}"
        );
        let err = load(json!({"channels": {"telegram": {"groups": {"family": {}}}}})).unwrap_err();
        assert!(err.contains("channels.telegram.groups.family"), "{err}");

        let bad = "123456 secret-with-space";
        let err = load(json!({"channels": {"telegram": {"botToken": bad}}})).unwrap_err();
        assert!(err.contains("channels.telegram.botToken"), "{err}");
        assert!(!err.contains("secret-with-space"), "{err}");
        let err = load(json!({"channels": {"telegram": {"botToken": 123}}})).unwrap_err();
        assert!(
            err.contains("channels.telegram.botToken must be a string or a SecretRef"),
            "{err}"
        );

        let cfg = load(json!({"channels": {"telegram": {"botToken": TOKEN}}}))
            .unwrap()
            .unwrap();
        assert!(!format!("{cfg:?}").contains("secret-part"));
    }
}
