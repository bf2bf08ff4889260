//! Token verification: every request's bearer token, `?token=` or cookie goes through
//! `Auth::verify` before anything else, so it must turn any input into a caller or a 401, never
//! a panic.
//!
//! The first input byte picks a mode:
//! - even: the rest, as text, is the token. The fuzzer cannot forge an HS256 signature, so
//!   this exercises the token splitting, base64 and header handling; it must not panic, and a
//!   token that does verify must name a user.
//! - odd: the rest is the claims JSON (any bytes). The target signs it itself, with a fixed
//!   header `{"alg":"HS256","typ":"JWT"}` and the verifier's secret, so the claims parsing and
//!   herald's own checks after it run on a valid signature. It must not panic, and a caller it
//!   accepts must have a user id that is non-empty and has no whitespace or control
//!   characters: the id becomes the inbox channel `user:<id>`, and an empty id would give a
//!   token an inbox no real user has.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald::auth::Auth;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use std::sync::LazyLock;

const SECRET: &[u8] = b"fuzz-secret";

static AUTH: LazyLock<Auth> = LazyLock::new(|| Auth::new(SECRET, None));

/// A compact JWS of `claims` (taken as is, valid JSON or not) signed HS256 with `SECRET`.
fn sign(claims: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(caller) = AUTH.verify(token) {
            assert!(
                !caller.user_id.is_empty(),
                "{token:?} verified with an empty user id"
            );
        }
    } else {
        let token = sign(rest);
        if let Ok(caller) = AUTH.verify(&token) {
            let id = &caller.user_id;
            let claims = String::from_utf8_lossy(rest);
            assert!(
                !id.is_empty(),
                "claims {claims} verified with an empty user id"
            );
            assert!(
                !id.chars().any(|c| c.is_whitespace() || c.is_control()),
                "claims {claims} verified with user id {id:?}"
            );
        }
    }
});
