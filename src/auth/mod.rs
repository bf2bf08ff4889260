//! Tokens: HS256 JWTs in, an authenticated [`Caller`] out (SPEC section 3).
//!
//! A token comes from `Authorization: Bearer`, else `?token=` (EventSource cannot send
//! headers), else the `herald_token` cookie. Claims: the user in `sub` or `user_id` (string or
//! number), a required `exp`, optional `channels` grants and `scope` (`publish`). Django REST
//! framework simplejwt access tokens have exactly this shape; its refresh tokens
//! (`token_type: "refresh"`) are refused. Tokens are never logged.
//!
//! # Stream tokens
//! A page should not put the app's own token (which the app's whole API accepts) into URLs,
//! where proxies and browser history keep it. `POST /api/stream-token` trades it for a
//! *stream token*: same user and grants, at most [`STREAM_TOKEN_TTL`], audience
//! [`STREAM_AUDIENCE`], which no other service accepts. herald accepts it for everything a
//! page does (streams, lists, read state) but not to publish or to mint more tokens.
//!
//! # Where
//! - `token`: [`Auth`], which verifies (and for dev mode and the CLI mints) tokens;
//! - `extract`: the extractors, [`Caller`] and [`Publisher`], with the CSRF rule for cookies.

use std::sync::Arc;

use crate::channels;
use crate::error::{AppError, AppResult};

mod extract;
mod token;
mod verified;

pub use extract::Publisher;
pub use token::Auth;

/// The name of the cookie a token may come in.
pub const COOKIE: &str = "herald_token";

/// The `aud` of stream tokens: herald's alone.
pub const STREAM_AUDIENCE: &str = "herald:stream";

/// The longest a stream token lives (it is refreshed by herald.js long before).
pub const STREAM_TOKEN_TTL: i64 = 300;

/// The longest `name` claim kept, in characters.
const MAX_NAME_CHARS: usize = 100;

/// Who is asking, and what their token allows: what [`Auth::verify`] made of a token. A
/// request's extractors and handler, and the cache of verified tokens, share one: a clone is a
/// reference count, not a copy of the user id, grants and name (a long-poll's request is
/// short enough for those copies to show in its profile).
#[derive(Debug, Clone)]
pub struct Caller(Arc<Identity>);

/// What a verified token says.
#[derive(Debug)]
pub struct Identity {
    /// The user: their inbox is `user:<user_id>` plus `broadcast`.
    pub user_id: String,
    /// Extra channels granted, exactly or as `prefix*` patterns.
    pub grants: Vec<String>,
    /// The token's `scope` includes `publish`.
    pub can_publish: bool,
    /// When the token expires (seconds since the epoch); streams close then.
    pub expires_at: i64,
    /// It is a stream token: it may not publish or mint tokens.
    pub stream_token: bool,
    /// The token's optional `name` claim: how presence lists show the user.
    pub name: Option<String>,
}

impl From<Identity> for Caller {
    fn from(identity: Identity) -> Caller {
        Caller(Arc::new(identity))
    }
}

impl std::ops::Deref for Caller {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

impl Caller {
    /// True if the caller may read `channel`.
    pub fn may_read(&self, channel: &str) -> bool {
        channels::may_read(&self.user_id, &self.grants, channel)
    }

    /// The one way to check a grant: 403 unless the caller may read `channel`.
    pub fn require(&self, channel: &str) -> AppResult<()> {
        if self.may_read(channel) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this token does not grant channel {channel:?}"
            )))
        }
    }

    /// How long until the token expires (zero if it has): streams and long-polls end then.
    pub fn expires_in(&self) -> std::time::Duration {
        let expires_at =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.expires_at.max(0) as u64);
        expires_at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    }

    /// The caller's inbox channels.
    pub fn inbox(&self) -> Vec<String> {
        channels::inbox(&self.user_id)
    }

    /// The channels a request asks for (`?channels=a,b`), each checked; the inbox if absent.
    /// A 403 names every channel the token does not grant, so a client whose token lost a
    /// grant (an order delivered) can ask again without them and keep the rest live.
    pub fn channels(&self, requested: Option<&str>) -> AppResult<Vec<String>> {
        let Some(list) = requested else {
            return Ok(self.inbox());
        };
        let channels = channels::parse_list(list)
            .map_err(|message| AppError::bad_request("invalid_channels", message))?;
        let refused: Vec<String> = channels
            .iter()
            .filter(|channel| !self.may_read(channel))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(AppError::ChannelsRefused(refused));
        }
        Ok(channels)
    }
}
