//! Which origins herald trusts besides its own: `HERALD_ALLOWED_ORIGINS`. Two policies ask:
//! CORS (which pages may read herald's answers, [`crate::http`]) and the CSRF check on
//! cookie-authenticated state changes ([`crate::auth`]).

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap};

/// The origins trusted besides herald's own: they may call herald cross-origin (CORS, with
/// credentials) and send cookie-authenticated state changes.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    allowed: Vec<String>,
}

impl Origins {
    /// `allowed` as configured (`https://app.example.com`); case and a trailing `/` ignored.
    pub fn new(allowed: &[String]) -> Origins {
        Origins {
            allowed: allowed
                .iter()
                .map(|o| normalize(o))
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    /// True if `origin` is one of the configured origins.
    pub fn is_allowed(&self, origin: &str) -> bool {
        let origin = normalize(origin);
        self.allowed.contains(&origin)
    }

    /// True if the request demonstrably comes from a page of herald's own origin or of an
    /// allowed one. Browsers send `Origin` on every POST, and when it is there it decides;
    /// `Referer` is the fallback for old ones. Neither (or `Origin: null`, from sandboxed
    /// frames and redirects): false.
    ///
    /// herald's own origin is the scheme and host the client used, as a proxy reports them
    /// (`Forwarded`, `X-Forwarded-Proto`/`-Host`) or else as seen here. A page that makes a
    /// browser post cross-site can set neither header, so trusting them is sound here.
    pub fn request_is_trusted(&self, req: &HttpRequest) -> bool {
        let headers = req.headers();
        let origin = match headers.get(header::ORIGIN) {
            Some(origin) => match origin.to_str() {
                Ok(origin) => origin.to_owned(),
                Err(_) => return false,
            },
            None => match header_str(headers, &header::REFERER).and_then(origin_of_url) {
                Some(origin) => origin,
                None => return false,
            },
        };
        if self.is_allowed(&origin) {
            return true;
        }
        let info = req.connection_info();
        let own = format!("{}://{}", info.scheme(), info.host());
        normalize(&origin) == normalize(&own)
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `scheme://host[:port]` of a URL, if it has one.
fn origin_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn origins() -> Origins {
        Origins::new(&["https://App.example.com/".into()])
    }

    #[test]
    fn configured_origins_match_exactly_ignoring_case_and_trailing_slash() {
        let origins = origins();
        assert!(origins.is_allowed("https://app.example.com"));
        assert!(!origins.is_allowed("http://app.example.com"));
        assert!(!origins.is_allowed("https://app.example.com.evil.io"));
        assert!(!origins.is_allowed("null"));
    }

    #[test]
    fn a_request_is_trusted_from_its_own_host_or_an_allowed_origin_only() {
        let origins = origins();
        let request = |headers: &[(&'static str, &'static str)]| {
            let mut req = TestRequest::post()
                .insert_header(("host", "herald.example.com"))
                .insert_header(("x-forwarded-proto", "https"));
            for header in headers {
                req = req.insert_header(*header);
            }
            req.to_http_request()
        };
        let trusted = |headers| origins.request_is_trusted(&request(headers));
        assert!(trusted(&[("origin", "https://herald.example.com")]));
        assert!(trusted(&[("origin", "https://app.example.com")]));
        assert!(trusted(&[(
            "referer",
            "https://herald.example.com/page?x=1"
        )]));
        assert!(!trusted(&[("origin", "https://evil.example.com")]));
        assert!(
            !trusted(&[("origin", "http://herald.example.com")]),
            "another scheme"
        );
        assert!(
            !trusted(&[("origin", "https://herald.example.com:8443")]),
            "another port"
        );
        assert!(
            !trusted(&[
                ("origin", "https://evil.example.com"),
                ("referer", "https://herald.example.com/")
            ]),
            "Origin decides when present"
        );
        assert!(!trusted(&[("origin", "null")]));
        assert!(!trusted(&[(
            "referer",
            "https://evil.example.com/herald.example.com"
        )]));
        assert!(!trusted(&[]));
    }
}
