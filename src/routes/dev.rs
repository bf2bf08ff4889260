//! Dev mode only (no `HERALD_JWT_SECRET`): mint tokens so the demo page works at once.
//! Never registered in production.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::Auth;
use crate::channels;
use crate::error::{AppError, AppResult};

/// How long a dev token lives.
const DEV_TOKEN_TTL_SECS: i64 = 24 * 3600;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev/token", web::get().to(token));
}

#[derive(Deserialize)]
struct TokenQuery {
    user: String,
    channels: Option<String>,
    /// Shown in presence lists.
    name: Option<String>,
}

/// GET /dev/token?user=42&channels=order:*&name=Ada: a token for any user, with publish scope.
async fn token(query: web::Query<TokenQuery>, auth: web::Data<Auth>) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    if !channels::is_valid_user_id(&query.user) {
        return Err(AppError::bad_request(
            "invalid_user",
            "user must be a usable user id",
        ));
    }
    let grants: Vec<String> = query
        .channels
        .as_deref()
        .map(|list| {
            list.split(',')
                .map(|g| g.trim().to_owned())
                .filter(|g| !g.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let name = query.name.as_deref().filter(|name| !name.trim().is_empty());
    let token = auth.mint_named(&query.user, name, &grants, true, DEV_TOKEN_TTL_SECS);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "token": token, "user_id": query.user, "channels": grants,
        "expires_in": DEV_TOKEN_TTL_SECS,
    })))
}
