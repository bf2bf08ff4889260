//! Which subscription endpoints herald accepts. An endpoint is a URL the browser, and so any
//! user, chooses, and herald POSTs to it: unchecked, it would let anyone make herald request
//! addresses inside the operator's network. Only the push services' hosts are accepted.

use std::net::IpAddr;

use actix_web::http::Uri;

/// The push services of Chrome and Edge's Chromium (FCM), Firefox, Safari, and Edge's WNS.
pub const DEFAULT_HOSTS: &str = "fcm.googleapis.com,updates.push.services.mozilla.com,\
                                 web.push.apple.com,*.notify.windows.com";

/// The longest endpoint accepted (push services' are a few hundred bytes).
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// `HERALD_PUSH_HOSTS`, parsed.
#[derive(Debug, Clone)]
pub struct Hosts(Vec<Entry>);

#[derive(Debug, Clone)]
enum Entry {
    /// `host` (port 443) or `host:port`, lowercase.
    Exact { host: String, port: Option<u16> },
    /// `*.suffix`: any subdomain of `suffix` (port 443), stored as `.suffix`.
    Subdomains(String),
}

impl Hosts {
    /// The browsers' push services ([`DEFAULT_HOSTS`]) and `entries`: a host added for a
    /// test or a private push service does not take away the ones every browser uses.
    pub fn with_defaults(entries: &[String]) -> Result<Hosts, String> {
        let mut all: Vec<String> = DEFAULT_HOSTS.split(',').map(str::to_owned).collect();
        all.extend(entries.iter().cloned());
        Hosts::parse(&all)
    }

    /// Parses the comma-separated entries (already split).
    pub fn parse(entries: &[String]) -> Result<Hosts, String> {
        let mut parsed = Vec::new();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let lower = entry.to_ascii_lowercase();
            if let Some(suffix) = lower.strip_prefix("*.") {
                if suffix.is_empty() || suffix.contains(['*', ':', '/']) {
                    return Err(format!("{entry:?} is not a host, host:port or *.domain"));
                }
                parsed.push(Entry::Subdomains(format!(".{suffix}")));
                continue;
            }
            let uri: Uri = format!("https://{lower}/")
                .parse()
                .map_err(|_| format!("{entry:?} is not a host, host:port or *.domain"))?;
            let authority = uri.authority().expect("an absolute URI has one");
            if authority.as_str() != lower || lower.contains('@') {
                return Err(format!("{entry:?} is not a host, host:port or *.domain"));
            }
            let port = port_of(authority.as_str()).map_err(|why| format!("{entry:?}: {why}"))?;
            parsed.push(Entry::Exact {
                host: authority.host().to_owned(),
                port,
            });
        }
        Ok(Hosts(parsed))
    }

    /// Whether herald may POST pushes to `endpoint`; the error says why not, for the client.
    pub fn check(&self, endpoint: &str) -> Result<(), String> {
        if endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(format!("endpoint is over {MAX_ENDPOINT_LEN} bytes"));
        }
        let uri: Uri = endpoint
            .parse()
            .map_err(|_| "endpoint is not a URL".to_owned())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err("endpoint is not an absolute URL".into());
        };
        if authority.as_str().contains('@') {
            return Err("endpoint must not carry a user name or password".into());
        }
        let host = authority.host().to_ascii_lowercase();
        let port = port_of(authority.as_str()).map_err(|why| format!("endpoint: {why}"))?;
        let listed = self.0.iter().find(|entry| match entry {
            Entry::Exact { host: h, port: p } => {
                *h == host && (*p == port || (p.is_none() && port == Some(443)))
            }
            Entry::Subdomains(suffix) => {
                host.ends_with(suffix.as_str())
                    && host.len() > suffix.len()
                    && port.is_none_or(|p| p == 443)
            }
        });
        let Some(entry) = listed else {
            return Err(format!(
                "endpoint host {host} is not a push service herald sends to (HERALD_PUSH_HOSTS)"
            ));
        };
        let loopback_port =
            matches!(entry, Entry::Exact { port: Some(_), .. }) && is_loopback(&host);
        match scheme {
            "https" => Ok(()),
            "http" if loopback_port => Ok(()),
            _ => Err("endpoint must be https://".into()),
        }
    }
}

/// The port an authority (`host`, `host:port`, `[::1]:port`) names, if any. Anything but 1-5
/// digits for a port from 1 to 65535 is refused: the `http` crate parses `:65536`, `:-443`
/// and `:+443` as "no port", which would send to 443 what was meant for elsewhere.
pub fn port_of(authority: &str) -> Result<Option<u16>, String> {
    let after_host = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None => authority.find(':').map_or("", |at| &authority[at..]),
    };
    let Some(port) = after_host.strip_prefix(':') else {
        return Ok(None);
    };
    match port.parse::<u16>() {
        Ok(n) if n > 0 && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(n))
        }
        _ => Err(format!("{port:?} is not a port (1-65535)")),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &str) -> Hosts {
        Hosts::parse(&list.split(',').map(str::to_owned).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn hosts_added_by_the_setting_keep_the_browsers_push_services() {
        let hosts = Hosts::with_defaults(&["push.example.com".into()]).unwrap();
        assert_eq!(hosts.check("https://push.example.com/x"), Ok(()));
        assert_eq!(hosts.check("https://fcm.googleapis.com/fcm/send/x"), Ok(()));
        assert!(hosts.check("https://elsewhere.example.com/x").is_err());
    }

    #[test]
    fn the_default_push_services_are_accepted_over_https_only() {
        let hosts = hosts(DEFAULT_HOSTS);
        for ok in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
            "https://web.push.apple.com/QGx",
            "https://wns2-by3p.notify.windows.com/w/?token=BQY",
            "https://FCM.googleapis.com:443/fcm/send/x",
        ] {
            assert_eq!(hosts.check(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://fcm.googleapis.com/fcm/send/abc",
            "https://fcm.googleapis.com:8443/fcm/send/abc",
            "https://evil.example/fcm.googleapis.com",
            "https://fcm.googleapis.com.evil.example/x",
            "https://user@fcm.googleapis.com/x",
            "https://notify.windows.com/x",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/x",
            "ftp://fcm.googleapis.com/x",
            "/relative/path",
            "not a url",
        ] {
            assert!(hosts.check(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn plain_http_only_to_a_listed_loopback_port() {
        let hosts = hosts("127.0.0.1:9999,[::1]:9998,push.example:8443");
        assert_eq!(hosts.check("http://127.0.0.1:9999/push/1"), Ok(()));
        assert_eq!(hosts.check("http://[::1]:9998/push/1"), Ok(()));
        assert_eq!(hosts.check("https://push.example:8443/p"), Ok(()));
        assert!(hosts.check("http://127.0.0.1:9998/push/1").is_err());
        assert!(hosts.check("http://127.0.0.1/push/1").is_err());
        assert!(hosts.check("http://push.example:8443/p").is_err());
        assert!(hosts.check("https://push.example/p").is_err());
    }

    #[test]
    fn ports_are_1_to_65535_in_digits_or_refused() {
        assert_eq!(port_of("push.example.com"), Ok(None));
        assert_eq!(port_of("push.example.com:8443"), Ok(Some(8443)));
        assert_eq!(port_of("[::1]:9000"), Ok(Some(9000)));
        assert_eq!(port_of("[::1]"), Ok(None));
        for bad in [
            "h:65536", "h:-443", "h:+443", "h:", "h:0", "h:443:1", "[::1]:x", "h:123456",
        ] {
            assert!(port_of(bad).is_err(), "{bad}");
        }
        let listed = hosts("fcm.googleapis.com,127.0.0.1:9000");
        for endpoint in [
            "https://fcm.googleapis.com:65536/x",
            "https://fcm.googleapis.com:-443/x",
            "https://fcm.googleapis.com:+443/x",
        ] {
            assert!(listed.check(endpoint).is_err(), "{endpoint}");
        }
        assert!(Hosts::parse(&["127.0.0.1:99999".into()]).is_err());
    }

    #[test]
    fn entries_that_are_not_hosts_are_refused() {
        for bad in [
            "https://fcm.googleapis.com",
            "a/b",
            "*.",
            "user@host",
            "*.a:443",
        ] {
            assert!(Hosts::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
