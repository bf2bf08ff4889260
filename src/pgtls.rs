//! TLS for herald's own tokio-postgres connections (the LISTEN connection), with the meaning
//! libpq gives the same URL, so `DATABASE_URL` and `HERALD_LISTEN_DATABASE_URL` behave alike.
//!
//! diesel's pool goes through libpq, which reads `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey` itself. tokio-postgres knows only `sslmode=disable|prefer|require` and refuses the
//! rest, so they are taken out of the URL here and turned into an OpenSSL connector:
//!
//! | `sslmode` | TLS | certificate checked | host name checked |
//! | --- | --- | --- | --- |
//! | `disable` | no | | |
//! | `prefer` (default), `require` | if offered / always | only if a root certificate is given (or `~/.postgresql/root.crt` exists), as libpq does | no |
//! | `verify-ca` | always | yes | no |
//! | `verify-full` | always | yes | yes |
//!
//! `sslrootcert` is a PEM file of CA certificates (only those are trusted), or `system` for
//! the machine's trust store.

use std::path::PathBuf;

use native_tls::{Certificate, Identity, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::config::SslMode;

/// A connection URL made ready for tokio-postgres: its config, and the TLS connector that
/// does what its `ssl*` parameters ask.
pub struct Connector {
    /// The connection settings, the `ssl*` ones applied to `tls`.
    pub config: tokio_postgres::Config,
    /// What connects TLS as `sslmode` asks.
    pub tls: MakeTlsConnector,
}

/// A connection string herald cannot use, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsSettingError(String);

fn refuse(message: impl Into<String>) -> TlsSettingError {
    TlsSettingError(message.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Connector {
    /// Reads `url` (a `postgres://` URL or `key=value` pairs) as libpq would.
    pub fn new(url: &str) -> Result<Connector, TlsSettingError> {
        let (rest, ssl) = split_ssl_params(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|err| refuse(format!("invalid database URL: {err}")))?;
        let param = |name: &str| {
            ssl.iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let mode = match param("sslmode").unwrap_or("prefer") {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => return Err(refuse(format!("sslmode={other} is not a libpq sslmode"))),
        };
        config.ssl_mode(match mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });

        let mut builder = TlsConnector::builder();
        let roots = match param("sslrootcert") {
            Some("system") => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
            // libpq's default: a root certificate file in the user's home, if there is one.
            None => std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
                .filter(|path| path.is_file())
                .map(Roots::File),
        };
        let verify = match (mode, &roots) {
            (Mode::VerifyCa | Mode::VerifyFull, None) => {
                return Err(refuse(format!(
                    "sslmode={} needs sslrootcert: a PEM file of the server's CA, or `system`",
                    param("sslmode").unwrap_or_default()
                )));
            }
            (Mode::Disable, _) | (_, None) => false,
            _ => true,
        };
        if verify {
            if let Some(Roots::File(path)) = &roots {
                builder.disable_built_in_roots(true);
                for cert in read_certificates(path)? {
                    builder.add_root_certificate(cert);
                }
            }
            builder.danger_accept_invalid_hostnames(mode != Mode::VerifyFull);
        } else {
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        match (param("sslcert"), param("sslkey")) {
            (Some(cert), Some(key)) => {
                let read = |path: &str| {
                    std::fs::read(path).map_err(|err| refuse(format!("cannot read {path}: {err}")))
                };
                let identity = Identity::from_pkcs8(&read(cert)?, &read(key)?).map_err(|err| {
                    refuse(format!(
                        "sslcert/sslkey: {err} (the key must be PEM PKCS#8: \
                         `openssl pkcs8 -topk8 -nocrypt -in key.pem`)"
                    ))
                })?;
                builder.identity(identity);
            }
            (None, None) => {}
            _ => return Err(refuse("sslcert and sslkey go together")),
        }
        let tls = builder
            .build()
            .map_err(|err| refuse(format!("TLS setup failed: {err}")))?;
        Ok(Connector {
            config,
            tls: MakeTlsConnector::new(tls),
        })
    }
}

enum Roots {
    System,
    File(PathBuf),
}

/// Every certificate in a PEM file (a CA bundle may hold several).
fn read_certificates(path: &std::path::Path) -> Result<Vec<Certificate>, TlsSettingError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|err| refuse(format!("sslrootcert {}: {err}", path.display())))?;
    const END: &str = "-----END CERTIFICATE-----";
    let certs: Vec<Certificate> = pem
        .split_inclusive(END)
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .map(|block| Certificate::from_pem(block.trim().as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|err| refuse(format!("sslrootcert {}: {err}", path.display())))?;
    if certs.is_empty() {
        return Err(refuse(format!(
            "sslrootcert {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// Parameters libpq reads for TLS, and those herald takes out but does not support.
const SSL_PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];
const IGNORED: &[&str] = &["sslsni", "sslcompression", "gssencmode"];

/// `url` without its `ssl*` parameters, and those parameters.
fn split_ssl_params(url: &str) -> Result<(String, Vec<(String, String)>), TlsSettingError> {
    let pairs = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (keep, ssl) = partition(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )?;
        let rest = if keep.is_empty() {
            base.to_owned()
        } else {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(keep)
                .finish();
            format!("{base}?{query}")
        };
        return Ok((rest, ssl));
    } else {
        key_value_pairs(url)?
    };
    let (keep, ssl) = partition(pairs)?;
    let rest = keep
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ");
    Ok((rest, ssl))
}

type Pairs = Vec<(String, String)>;

fn partition(pairs: Pairs) -> Result<(Pairs, Pairs), TlsSettingError> {
    let mut keep = Vec::new();
    let mut ssl = Vec::new();
    for (key, value) in pairs {
        if SSL_PARAMS.contains(&key.as_str()) {
            ssl.push((key, value));
        } else if IGNORED.contains(&key.as_str()) {
        } else if key.starts_with("ssl") {
            return Err(refuse(format!(
                "{key} is not supported for herald's connections (only {})",
                SSL_PARAMS.join(", ")
            )));
        } else {
            keep.push((key, value));
        }
    }
    Ok((keep, ssl))
}

/// libpq's `key=value` form: values may be single-quoted, with `\` escapes.
fn key_value_pairs(text: &str) -> Result<Pairs, TlsSettingError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(refuse(format!("invalid connection string near {key:?}")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(refuse("unterminated quote in connection string")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_taken_out_of_urls_and_the_rest_kept() {
        let (rest, ssl) = split_ssl_params(
            "postgres://u:p@db:5432/x?sslmode=verify-full&application_name=a%20b&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/x?application_name=a+b");
        assert_eq!(
            ssl,
            vec![
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/ca.pem".into())
            ]
        );
        let (rest, ssl) =
            split_ssl_params("host=db dbname='my db' sslmode = require password='it\\'s'").unwrap();
        assert_eq!(rest, "host='db' dbname='my db' password='it\\'s'");
        assert_eq!(ssl, vec![("sslmode".into(), "require".into())]);
        assert!(rest.parse::<tokio_postgres::Config>().is_ok());
    }

    #[test]
    fn libpq_modes_map_to_tokio_postgres_and_verification_needs_a_root() {
        let mode = |url: &str| Connector::new(url).map(|c| c.config.get_ssl_mode());
        assert_eq!(mode("postgres://db/x").unwrap(), SslMode::Prefer);
        assert_eq!(
            mode("postgres://db/x?sslmode=disable").unwrap(),
            SslMode::Disable
        );
        assert_eq!(
            mode("postgres://db/x?sslmode=require").unwrap(),
            SslMode::Require
        );
        assert_eq!(
            mode("postgres://db/x?sslmode=verify-full&sslrootcert=system").unwrap(),
            SslMode::Require
        );
        let err = mode("postgres://db/x?sslmode=verify-ca").err().unwrap();
        assert!(err.to_string().contains("sslrootcert"), "{err}");
        assert!(mode("postgres://db/x?sslmode=sometimes").is_err());
        assert!(mode("postgres://db/x?sslcrl=/crl.pem").is_err());
        let err = mode("postgres://db/x?sslmode=verify-full&sslrootcert=/nonexistent")
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent"), "{err}");
    }
}
