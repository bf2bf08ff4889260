//! The VAPID key pair (RFC 8292): push services take herald's pushes only with a JWT signed by
//! the private key whose public half the browser subscribed with.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use serde::Serialize;

/// How long a signed JWT is valid: push services refuse more than 24 hours.
const JWT_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A cached JWT is signed again this long before it expires.
const JWT_RENEW: Duration = Duration::from_secs(3600);

/// The key pair and the JWTs signed with it, one per push service.
pub struct Vapid {
    public_key: String,
    signing: EncodingKey,
    subject: String,
    /// Audience (`https://push.example`) → its `Authorization` value and when to sign anew: a
    /// broadcast to thousands signs once per push service, not once per push.
    signed: Mutex<HashMap<String, (String, Instant)>>,
}

impl Vapid {
    /// The pair whose private key is `private_key` (the raw 32-byte scalar, base64url).
    pub fn from_private_key(private_key: &str, subject: &str) -> Result<Vapid, String> {
        let raw = URL_SAFE_NO_PAD
            .decode(private_key.trim().trim_end_matches('='))
            .map_err(|_| "not base64url".to_owned())?;
        if raw.len() != 32 {
            return Err(format!(
                "{} bytes; a P-256 private key is 32 (web-push generate-vapid-keys)",
                raw.len()
            ));
        }
        let key = (|| {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let scalar = BigNum::from_slice(&raw)?;
            let mut ctx = BigNumContext::new()?;
            let mut public = EcPoint::new(&group)?;
            public.mul_generator2(&group, &scalar, &mut ctx)?;
            let key = EcKey::from_private_components(&group, &scalar, &public)?;
            key.check_key()?;
            Ok::<_, openssl::error::ErrorStack>(key)
        })()
        .map_err(|_| "not a valid P-256 private key".to_owned())?;
        let mut ctx = BigNumContext::new().map_err(|e| e.to_string())?;
        let public = key
            .public_key()
            .to_bytes(key.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
            .map_err(|e| e.to_string())?;
        let pkcs8 = PKey::from_ec_key(key)
            .and_then(|k| k.private_key_to_pkcs8())
            .map_err(|e| e.to_string())?;
        Ok(Vapid {
            public_key: URL_SAFE_NO_PAD.encode(public),
            signing: EncodingKey::from_ec_der(&pkcs8),
            subject: subject.to_owned(),
            signed: Mutex::default(),
        })
    }

    /// A new private key, base64url.
    pub fn generate_private_key() -> Result<String, String> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| e.to_string())?;
        let key = EcKey::generate(&group).map_err(|e| e.to_string())?;
        let raw = key
            .private_key()
            .to_vec_padded(32)
            .map_err(|e| e.to_string())?;
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Dev mode's private key, kept in `dir` so browsers' subscriptions outlive a restart.
    pub fn dev_private_key(dir: &Path) -> std::io::Result<String> {
        let path = dir.join("dev-vapid-private-key");
        match std::fs::read_to_string(&path) {
            Ok(key) if Vapid::from_private_key(&key, "mailto:check").is_ok() => {
                return Ok(key.trim().to_owned());
            }
            Ok(_) => std::fs::remove_file(&path)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let key = Vapid::generate_private_key().map_err(std::io::Error::other)?;
        crate::files::write_private(&path, key.as_bytes())?;
        Ok(key)
    }

    /// The public key, as `pushManager.subscribe({applicationServerKey})` takes it: the
    /// uncompressed point, base64url.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header for a push to `audience` (the endpoint's origin).
    pub fn authorization(&self, audience: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let mut signed = self.signed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((value, renew)) = signed.get(audience)
            && Instant::now() < *renew
        {
            return Ok(value.clone());
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            aud: &'a str,
            exp: u64,
            sub: &'a str,
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            aud: audience,
            exp: (now + JWT_LIFETIME).as_secs(),
            sub: &self.subject,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.signing)?;
        let value = format!("vapid t={jwt}, k={}", self.public_key);
        // A handful of push services, but WNS gives each browser a host of its own
        // (`*.notify.windows.com`): past this many, start over rather than grow.
        if signed.len() >= 1000 {
            signed.clear();
        }
        signed.insert(
            audience.to_owned(),
            (value.clone(), Instant::now() + JWT_LIFETIME - JWT_RENEW),
        );
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_and_its_public_half_is_an_uncompressed_point() {
        let private = Vapid::generate_private_key().unwrap();
        let vapid = Vapid::from_private_key(&private, "mailto:ops@example.com").unwrap();
        let public = URL_SAFE_NO_PAD.decode(vapid.public_key()).unwrap();
        assert_eq!(public.len(), 65);
        assert_eq!(public[0], 4);
        let again = Vapid::from_private_key(&private, "mailto:ops@example.com").unwrap();
        assert_eq!(again.public_key(), vapid.public_key());
    }

    #[test]
    fn what_is_not_a_p256_private_key_is_refused() {
        assert!(Vapid::from_private_key("not base64!", "mailto:a@b").is_err());
        let short = URL_SAFE_NO_PAD.encode([7u8; 31]);
        assert!(Vapid::from_private_key(&short, "mailto:a@b").is_err());
        let zero = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert!(Vapid::from_private_key(&zero, "mailto:a@b").is_err());
        let above_the_order = URL_SAFE_NO_PAD.encode([0xffu8; 32]);
        assert!(Vapid::from_private_key(&above_the_order, "mailto:a@b").is_err());
    }

    #[test]
    fn a_push_service_gets_one_jwt_for_many_pushes() {
        let vapid =
            Vapid::from_private_key(&Vapid::generate_private_key().unwrap(), "mailto:a@b").unwrap();
        let first = vapid.authorization("https://push.example").unwrap();
        assert_eq!(vapid.authorization("https://push.example").unwrap(), first);
        assert_ne!(vapid.authorization("https://other.example").unwrap(), first);
        assert!(first.starts_with("vapid t="));
        assert!(first.ends_with(&format!(", k={}", vapid.public_key())));
    }
}
