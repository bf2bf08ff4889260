//! `GET /api/presence`: who is present on channels now (SPEC section 8; how presence is
//! kept is in [`crate::presence`]).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::presence::MAX_LISTED;
use crate::state::AppState;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/presence", web::get().to(presence));
}

#[derive(Deserialize)]
struct PresenceQuery {
    channels: Option<String>,
}

/// GET /api/presence?channels=a,b → `{"presence": {"a": [{"user", "name", "since"}], ...}}`,
/// each list oldest first, at most 1,000 users.
async fn presence(
    caller: Caller,
    query: web::Query<PresenceQuery>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Some(list) = query.into_inner().channels else {
        return Err(AppError::bad_request(
            "invalid_channels",
            "channels is required: GET /api/presence?channels=project:5",
        ));
    };
    let channels = caller.channels(Some(&list))?;
    let mut lists = state.presence.lists(channels.clone()).await?;
    let presence: serde_json::Map<String, serde_json::Value> = channels
        .into_iter()
        .map(|channel| {
            let mut members = lists.remove(&channel).unwrap_or_default();
            members.truncate(MAX_LISTED);
            (channel, serde_json::json!(members))
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "presence": presence })))
}
