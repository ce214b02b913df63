//! The browser UI on the gateway's own port (`crates/ui`'s files): `index.html` at the base
//! path (`gateway.controlUi.basePath`) and for any deep link under it that asks for HTML,
//! fingerprinted assets under `<base>/assets/` cached for a year, brotli/gzip chosen from
//! `Accept-Encoding`, and a strict CSP with the framing, sniffing and referrer headers on
//! every answer. `gateway.controlUi.enabled: false` answers 404 naming that key.
//!
//! Everything served is `'static` data in the binary; the one thing built at run time is
//! `index.html` for the base path, once, at the first request.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// `script-src 'self'` and no inline anything: the page is one module script and one
/// stylesheet of its own origin; it talks only to its own gateway.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Fingerprinted names change with their content: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` names the current assets: revalidate it every time (ETag → 304).
const REVALIDATE: &str = "no-cache";

/// `gateway.controlUi.enabled` and `basePath`, as the gateway runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlUiOptions {
    pub enabled: bool,
    /// `""` for the root, else `/a/b` (normalized by `clawgate-config`).
    pub base_path: String,
}

impl Default for ControlUiOptions {
    fn default() -> Self {
        ControlUiOptions {
            enabled: true,
            base_path: String::new(),
        }
    }
}

/// The UI as one gateway serves it.
pub(crate) struct UiSite {
    options: ControlUiOptions,
    index: OnceLock<Index>,
}

struct Index {
    body: Bytes,
    etag: HeaderValue,
}

type Body = Full<Bytes>;

impl UiSite {
    pub(crate) fn new(options: ControlUiOptions) -> Self {
        UiSite {
            options,
            index: OnceLock::new(),
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let html = clawgate_ui::index_html(&self.options.base_path);
            let digest = Sha256::digest(html.as_bytes());
            let etag = format!("\"{}\"", clawgate_protocol::device::hex(&digest[..12]));
            Index {
                body: Bytes::from(html),
                etag: HeaderValue::from_str(&etag).expect("hex is a valid header value"),
            }
        })
    }

    /// The answer to a request for `path`, or `None` when the path is not the UI's (the
    /// caller answers its own 404).
    pub(crate) fn respond(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        let rest = under_base(path, &self.options.base_path)?;
        if !self.options.enabled {
            return Some(disabled());
        }
        if method != Method::GET && method != Method::HEAD {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(r);
        }
        if matches!(rest, "" | "/" | "/index.html") {
            return Some(self.serve_index(headers));
        }
        if let Some(name) = rest
            .strip_prefix('/')
            .and_then(|r| r.strip_prefix(clawgate_ui::ASSETS_DIR))
            .and_then(|r| r.strip_prefix('/'))
        {
            return Some(match clawgate_ui::asset(name) {
                Some(asset) => serve_asset(asset, headers),
                None => plain(StatusCode::NOT_FOUND, "no such asset\n"),
            });
        }
        // A deep link of the single-page app: the page, when a browser asks for a page.
        accepts_html(headers).then(|| self.serve_index(headers))
    }

    fn serve_index(&self, headers: &HeaderMap) -> Response<Body> {
        let index = self.index();
        let fresh = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag.as_bytes() == index.etag.as_bytes());
        let mut r = if fresh {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let mut r = Response::new(Full::new(index.body.clone()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        };
        let h = r.headers_mut();
        h.insert(header::ETAG, index.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
        secure(r)
    }
}

/// The part of `path` after the base path, when it is under it.
fn under_base<'p>(path: &'p str, base: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The request's `Accept` names HTML (what a browser's navigation sends).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let mut parts = t.split(';');
            let media = parts.next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/html") && parts.all(|p| q_value(p) != Some(0.0))
        })
}

/// `q=0.5` → `Some(0.5)`; other parameters → `None`.
fn q_value(param: &str) -> Option<f32> {
    let (k, v) = param.trim().split_once('=')?;
    k.trim()
        .eq_ignore_ascii_case("q")
        .then(|| v.trim().parse().unwrap_or(0.0))
}

/// The content codings the client takes, in the order the server prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// Whether `Accept-Encoding` allows `coding` (a listed token or `*`, with a non-zero q;
/// an explicit `coding;q=0` wins over `*`).
fn accepts_coding(headers: &HeaderMap, coding: &str) -> bool {
    let mut star = false;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let allowed = parts.all(|p| q_value(p) != Some(0.0));
        if name.eq_ignore_ascii_case(coding) {
            return allowed;
        }
        if name == "*" {
            star = allowed;
        }
    }
    star
}

fn negotiate(headers: &HeaderMap, asset: &clawgate_ui::Asset) -> (Coding, &'static [u8]) {
    if let Some(br) = asset.brotli
        && accepts_coding(headers, "br")
    {
        return (Coding::Brotli, br);
    }
    if let Some(gz) = asset.gzip
        && accepts_coding(headers, "gzip")
    {
        return (Coding::Gzip, gz);
    }
    (Coding::Identity, asset.identity)
}

fn serve_asset(asset: &'static clawgate_ui::Asset, headers: &HeaderMap) -> Response<Body> {
    let (coding, bytes) = negotiate(headers, asset);
    let mut r = Response::new(Full::new(Bytes::from_static(bytes)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    match coding {
        Coding::Brotli => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        }
        Coding::Gzip => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Coding::Identity => {}
    }
    secure(r)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(r)
}

fn disabled() -> Response<Body> {
    let body = json!({"error": {
        "message": "the browser UI is turned off on this gateway (gateway.controlUi.enabled is false); set gateway.controlUi.enabled to true in the gateway's config to serve it",
        "type": "not_found",
    }});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// The headers every UI answer carries.
fn secure(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_static(v));
        }
        h
    }

    fn site(base: &str) -> UiSite {
        UiSite::new(ControlUiOptions {
            enabled: true,
            base_path: base.into(),
        })
    }

    fn get(site: &UiSite, path: &str, h: &HeaderMap) -> Option<Response<Body>> {
        site.respond(&Method::GET, path, h)
    }

    fn app_js() -> &'static clawgate_ui::Asset {
        clawgate_ui::ASSETS
            .iter()
            .find(|a| a.name.ends_with(".js"))
            .expect("the UI has a script")
    }

    #[test]
    fn coding_follows_accept_encoding() {
        use header::ACCEPT_ENCODING as AE;
        let asset = app_js();
        for (given, want) in [
            ("gzip, deflate, br, zstd", Coding::Brotli),
            ("gzip", Coding::Gzip),
            ("br;q=0, gzip;q=0.8", Coding::Gzip),
            ("*", Coding::Brotli),
            ("*, br;q=0", Coding::Gzip),
            ("identity", Coding::Identity),
            ("gzip;q=0", Coding::Identity),
        ] {
            assert_eq!(
                negotiate(&headers(&[(AE, given)]), asset).0,
                want,
                "{given}"
            );
        }
        assert_eq!(negotiate(&HeaderMap::new(), asset).0, Coding::Identity);
    }

    #[test]
    fn only_paths_under_the_base_are_the_uis() {
        assert_eq!(under_base("/ui", "/ui"), Some(""));
        assert_eq!(under_base("/ui/x", "/ui"), Some("/x"));
        assert_eq!(under_base("/uix", "/ui"), None);
        assert_eq!(under_base("/x", ""), Some("/x"));
        let s = site("/ui");
        assert!(get(&s, "/other", &HeaderMap::new()).is_none());
    }

    #[test]
    fn deep_links_get_the_page_only_when_html_is_asked() {
        let s = site("");
        let html = headers(&[(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")]);
        let r = get(&s, "/chat/agent:main:main", &html).expect("page");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            get(
                &s,
                "/api/thing",
                &headers(&[(header::ACCEPT, "application/json")])
            )
            .is_none()
        );
        assert!(get(&s, "/x", &headers(&[(header::ACCEPT, "text/html;q=0")])).is_none());
        let missing = get(&s, "/assets/app.0000.js", &html).expect("asset path");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let post = s.respond(&Method::POST, "/", &html).expect("ui path");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn disabled_names_the_key() {
        let s = UiSite::new(ControlUiOptions {
            enabled: false,
            base_path: String::new(),
        });
        let r = get(&s, "/", &HeaderMap::new()).expect("answered");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = format!("{:?}", r.body());
        assert!(body.contains("gateway.controlUi.enabled"), "{body}");
    }
}
