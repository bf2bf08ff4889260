//! Tokens in and out: HS256 only, the claims herald reads, the stream audience, and minting.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Caller, Identity, MAX_NAME_CHARS, STREAM_AUDIENCE, STREAM_TOKEN_TTL, verified};
use crate::channels;
use crate::error::{AppError, AppResult};

/// Verifies and (for dev mode and the CLI) mints tokens with one HS256 secret.
pub struct Auth {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    /// `HERALD_JWT_AUDIENCE`: the one `aud` an app token may carry.
    audience: Option<String>,
    /// Tokens verified lately.
    verified: verified::Verified,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<Value>,
    user_id: Option<Value>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    /// Any JSON: only a string is a name.
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    aud: Option<Audience>,
    exp: i64,
}

/// `aud`: one name or a list (RFC 7519 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self) -> &[String] {
        match self {
            Audience::One(name) => std::slice::from_ref(name),
            Audience::Many(names) => names,
        }
    }
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    channels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

impl Auth {
    /// Tokens signed with `secret`; those carrying `aud` must name `audience`.
    pub fn new(secret: &[u8], audience: Option<&str>) -> Auth {
        // Only HS256: a token's header cannot pick `none` or an RSA key to be checked with.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        // Checked in `verify`: a token may name herald's stream audience too.
        validation.validate_aud = false;
        Auth {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
            validation,
            audience: audience.map(str::to_owned),
            verified: Default::default(),
        }
    }

    /// The caller a token speaks for, or 401.
    pub fn verify(&self, token: &str) -> AppResult<Caller> {
        if let Some(caller) = self.verified.get(token) {
            // The same check as below: time is all that changes a verified token.
            if caller.expires_at <= chrono::Utc::now().timestamp() {
                return Err(AppError::Unauthorized("token expired"));
            }
            return Ok(caller);
        }
        let caller = self.check(token)?;
        self.verified.verified(token, &caller);
        Ok(caller)
    }

    /// [`Auth::verify`] without the cache: the signature, then the claims.
    fn check(&self, token: &str) -> AppResult<Caller> {
        // RFC 7515 4.1.11: a token may name header extensions its reader must understand
        // (`crit`); herald understands none, so such a token is refused, not half-read.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AppError::Unauthorized("token invalid"))?;
        if header.crit.is_some() {
            return Err(AppError::Unauthorized(
                "token has critical header extensions herald does not support",
            ));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => AppError::Unauthorized("token expired"),
                ErrorKind::ImmatureSignature => AppError::Unauthorized("token not yet valid"),
                ErrorKind::InvalidSignature => AppError::Unauthorized("token signature invalid"),
                _ => AppError::Unauthorized("token invalid"),
            })?;
        let claims = data.claims;
        // RFC 7519: refused "on or after" exp; jsonwebtoken still accepts the exp second itself.
        if claims.exp <= chrono::Utc::now().timestamp() {
            return Err(AppError::Unauthorized("token expired"));
        }
        if claims.token_type.as_deref().is_some_and(|t| t != "access") {
            return Err(AppError::Unauthorized("only access tokens are accepted"));
        }
        // No `aud`: an app's token. Otherwise it must be ours: the configured audience, or
        // a stream token.
        let stream_token = match &claims.aud {
            None => false,
            Some(aud) if aud.names().iter().any(|a| a == STREAM_AUDIENCE) => true,
            Some(aud)
                if aud
                    .names()
                    .iter()
                    .any(|a| Some(a) == self.audience.as_ref()) =>
            {
                false
            }
            Some(_) => return Err(AppError::Unauthorized("token is for another audience")),
        };
        // A stream token travels in URLs, where it may be kept: whoever mints one (herald, or
        // an app sharing the key) must keep it short. The minute allows for clocks that
        // differ a little between the app's machine and herald's.
        if stream_token && claims.exp > chrono::Utc::now().timestamp() + STREAM_TOKEN_TTL + 60 {
            return Err(AppError::Unauthorized(
                "a stream token may live 5 minutes at most",
            ));
        }
        let user_id = match claims.sub.or(claims.user_id) {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => {
                return Err(AppError::Unauthorized(
                    "token names no user (sub or user_id)",
                ));
            }
        };
        if !channels::is_valid_user_id(&user_id) {
            return Err(AppError::Unauthorized("token user id is not usable"));
        }
        let can_publish = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|scope| scope == "publish"));
        Ok(Caller::from(Identity {
            user_id,
            grants: claims.channels,
            can_publish: can_publish && !stream_token,
            expires_at: claims.exp,
            stream_token,
            name: match claims.name {
                // Shown to other users as it is; only kept to a sane length.
                Some(Value::String(name)) if !name.trim().is_empty() => {
                    Some(name.chars().take(MAX_NAME_CHARS).collect())
                }
                _ => None,
            },
        }))
    }

    /// A stream token for `caller`: same user and grants, no publishing, until
    /// [`STREAM_TOKEN_TTL`] from now or the caller's own token's expiry, whichever is first.
    /// Returns it and its lifetime in seconds.
    pub fn mint_stream_token(&self, caller: &Caller) -> (String, i64) {
        let now = chrono::Utc::now().timestamp();
        let exp = (now + STREAM_TOKEN_TTL).min(caller.expires_at);
        let claims = MintedClaims {
            sub: &caller.user_id,
            exp,
            iat: now,
            channels: &caller.grants,
            scope: None,
            aud: Some(STREAM_AUDIENCE),
            name: caller.name.as_deref(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serializable claims cannot fail");
        (token, exp - now)
    }

    /// A token for `user_id` with extra channel grants, valid for `ttl_secs`.
    pub fn mint(&self, user_id: &str, grants: &[String], publish: bool, ttl_secs: i64) -> String {
        self.mint_named(user_id, None, grants, publish, ttl_secs)
    }

    /// [`Auth::mint`] with a `name` claim: how presence lists show the user.
    pub fn mint_named(
        &self,
        user_id: &str,
        name: Option<&str>,
        grants: &[String],
        publish: bool,
        ttl_secs: i64,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = MintedClaims {
            sub: user_id,
            exp: now + ttl_secs,
            iat: now,
            channels: grants,
            scope: publish.then_some("publish"),
            aud: None,
            name,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serializable claims cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn later() -> i64 {
        chrono::Utc::now().timestamp() + 600
    }

    #[test]
    fn a_minted_token_verifies_with_its_grants() {
        let auth = Auth::new(b"secret", None);
        let caller = auth
            .verify(&auth.mint("42", &["order:*".into()], true, 60))
            .unwrap();
        assert_eq!(caller.user_id, "42");
        assert_eq!(caller.grants, vec!["order:*".to_string()]);
        assert!(caller.can_publish);
    }

    #[test]
    fn a_token_verified_before_still_expires() {
        let auth = Auth::new(b"secret", None);
        let soon = chrono::Utc::now().timestamp() + 2;
        let token = sign(serde_json::json!({"sub": "1", "exp": soon}), b"secret");
        // Twice: the second keeps it, the third is answered from what was kept.
        for _ in 0..3 {
            assert_eq!(auth.verify(&token).unwrap().user_id, "1");
        }
        while chrono::Utc::now().timestamp() < soon {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let refused = auth.verify(&token).unwrap_err();
        assert_eq!(
            refused.to_string(),
            AppError::Unauthorized("token expired").to_string()
        );
        // Another key never takes this one's word for a token.
        let other = Auth::new(b"another secret", None);
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn simplejwt_access_tokens_are_accepted_and_refresh_tokens_refused() {
        let auth = Auth::new(b"django-key", None);
        let access = serde_json::json!({"token_type": "access", "exp": later(), "iat": 1,
            "jti": "abc", "user_id": 7});
        assert_eq!(
            auth.verify(&sign(access, b"django-key")).unwrap().user_id,
            "7"
        );
        let refresh = serde_json::json!({"token_type": "refresh", "exp": later(), "user_id": 7});
        assert!(auth.verify(&sign(refresh, b"django-key")).is_err());
    }

    #[test]
    fn bad_tokens_are_refused() {
        let auth = Auth::new(b"secret", None);
        let expired = serde_json::json!({"sub": "1", "exp": 1_000});
        let no_exp = serde_json::json!({"sub": "1"});
        let no_user = serde_json::json!({"exp": later()});
        let bad_user = serde_json::json!({"sub": "a b", "exp": later()});
        let float_user = serde_json::json!({"sub": 1.5, "exp": later()});
        // Found by the `token` fuzz target: an empty id passed as the inbox `user:`.
        let empty_sub = serde_json::json!({"sub": "", "exp": later()});
        let empty_user_id = serde_json::json!({"user_id": "", "exp": later()});
        let with_aud = serde_json::json!({"sub": "1", "exp": later(), "aud": "x"});
        for claims in [
            expired,
            no_exp,
            no_user,
            bad_user,
            float_user,
            empty_sub,
            empty_user_id,
            with_aud,
        ] {
            assert!(
                auth.verify(&sign(claims.clone(), b"secret")).is_err(),
                "{claims}"
            );
        }
        let good = serde_json::json!({"sub": "1", "exp": later()});
        assert!(auth.verify(&sign(good, b"other secret")).is_err());
        assert!(auth.verify("garbage").is_err());
        let mut crit = Header::new(Algorithm::HS256);
        crit.crit = Some(vec!["exp".into()]);
        let critical = jsonwebtoken::encode(
            &crit,
            &serde_json::json!({"sub": "1", "exp": later()}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(auth.verify(&critical).is_err(), "RFC 7515: crit is refused");
        // alg "none": header {"alg":"none"}, no signature.
        assert!(
            auth.verify("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIiwiZXhwIjo5OTk5OTk5OTk5fQ.")
                .is_err()
        );
    }

    #[test]
    fn a_stream_token_keeps_the_user_and_grants_but_not_publishing_nor_a_long_life() {
        let auth = Auth::new(b"secret", None);
        let app = auth
            .verify(&auth.mint("42", &["order:*".into()], true, 3600))
            .unwrap();
        let (token, expires_in) = auth.mint_stream_token(&app);
        let stream = auth.verify(&token).unwrap();
        assert!(stream.stream_token && !stream.can_publish);
        assert_eq!(
            (stream.user_id.as_str(), &stream.grants),
            ("42", &app.grants)
        );
        assert!((1..=STREAM_TOKEN_TTL).contains(&expires_in));
        // Never longer than the token it was traded for.
        let short = auth.verify(&auth.mint("42", &[], false, 20)).unwrap();
        assert!(auth.mint_stream_token(&short).1 <= 20);
        // Another service's audience is refused; herald's configured one is an app token.
        // Minted elsewhere (an app sharing the key), a long-lived one is refused.
        let long = serde_json::json!({"sub": "1", "exp": later() + 3600, "aud": STREAM_AUDIENCE});
        assert!(auth.verify(&sign(long, b"secret")).is_err());
        let other = serde_json::json!({"sub": "1", "exp": later(), "aud": ["billing"]});
        assert!(auth.verify(&sign(other, b"secret")).is_err());
        let ours = Auth::new(b"secret", Some("herald"));
        let aud = serde_json::json!({"sub": "1", "exp": later(), "aud": "herald"});
        assert!(!ours.verify(&sign(aud, b"secret")).unwrap().stream_token);
    }

    #[test]
    fn the_configured_audience_is_required_to_match() {
        let auth = Auth::new(b"secret", Some("herald"));
        let ok = serde_json::json!({"sub": "1", "exp": later(), "aud": "herald"});
        let wrong = serde_json::json!({"sub": "1", "exp": later(), "aud": "other"});
        assert!(auth.verify(&sign(ok, b"secret")).is_ok());
        assert!(auth.verify(&sign(wrong, b"secret")).is_err());
    }
}
