//! The gateway's browser UI, as data: `index.html` and its fingerprinted assets (content
//! hash in the name), each with the gzip and brotli copies `build.rs` made when they are
//! smaller. Everything is `'static` bytes in the binary, so a gateway that no browser visits
//! pages none of it in.

/// One fingerprinted file under `<basePath>/assets/`.
#[derive(Debug)]
pub struct Asset {
    /// `app.<hash>.js`: changes whenever the content does.
    pub name: &'static str,
    pub content_type: &'static str,
    pub identity: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The folder under the base path that holds [`ASSETS`].
pub const ASSETS_DIR: &str = "assets";

/// The asset called `name` (its fingerprinted name).
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `index.html` for a UI served under `base_path` (`""` for the root, else `/a/b`): asset
/// links and the page's own idea of where the gateway is are absolute under it, so any
/// deep link the SPA fallback answers loads the same files.
pub fn index_html(base_path: &str) -> String {
    INDEX_TEMPLATE.replace("%BASE%", base_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_links_every_asset_under_the_base_path() {
        let html = index_html("/ui");
        for a in ASSETS {
            assert!(
                html.contains(&format!("/ui/assets/{}", a.name)),
                "{}",
                a.name
            );
            assert_eq!(asset(a.name).map(|x| x.name), Some(a.name));
            let (stem, rest) = a.name.split_once('.').expect("fingerprinted name");
            assert!(!stem.is_empty() && rest.len() > 12, "{}", a.name);
        }
        assert!(!html.contains("%BASE%") && !html.contains("{{"));
        assert!(asset("app.js").is_none());
    }

    #[test]
    fn compressed_copies_are_smaller() {
        for a in ASSETS {
            let br = a.brotli.expect("text assets compress");
            let gz = a.gzip.expect("text assets compress");
            assert!(br.len() < a.identity.len() && gz.len() < a.identity.len());
            // gzip magic
            assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        }
    }
}
