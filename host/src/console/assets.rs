//! The console's static files, compiled into the binary: the page, its script and styles,
//! and the vendored chart library (uPlot 1.6.32, MIT; see `host/console/vendor/README.md`).
//! Nothing is fetched from a CDN: the page works on a machine without internet.

/// One static file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The page every console path starts from.
pub const INDEX: Asset = Asset {
    content_type: HTML,
    body: include_bytes!("../../console/index.html"),
};

/// The file served at `/console/{name}`, if there is one.
pub fn get(name: &str) -> Option<Asset> {
    let (content_type, body): (&str, &[u8]) = match name {
        "console.js" => (JS, include_bytes!("../../console/console.js")),
        "console.css" => (CSS, include_bytes!("../../console/console.css")),
        "uPlot.iife.min.js" => (
            JS,
            include_bytes!("../../console/vendor/uplot-1.6.32/uPlot.iife.min.js"),
        ),
        "uPlot.min.css" => (
            CSS,
            include_bytes!("../../console/vendor/uplot-1.6.32/uPlot.min.css"),
        ),
        "uPlot.LICENSE" => (
            TEXT,
            include_bytes!("../../console/vendor/uplot-1.6.32/LICENSE"),
        ),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// The `Content-Security-Policy` of every console response: scripts, styles, images and
/// requests only from the host itself, no inline script, no frames.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn sha256(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn the_vendored_chart_library_is_the_pinned_release_unchanged() {
        // SHA-256 of dist/uPlot.iife.min.js and LICENSE in the npm tarball uplot-1.6.32.tgz.
        assert_eq!(
            sha256(get("uPlot.iife.min.js").unwrap().body),
            "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
        );
        assert_eq!(
            sha256(get("uPlot.LICENSE").unwrap().body),
            "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"
        );
    }

    #[test]
    fn the_page_loads_only_files_the_binary_serves() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        let mut refs = 0;
        for part in page.split("\"/console/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(get(name).is_some(), "the page refers to /console/{name}");
            refs += 1;
        }
        assert!(refs >= 4, "{page}");
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(
            !page.contains("<script>"),
            "no inline script: the CSP forbids it"
        );
    }
}
