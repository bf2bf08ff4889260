//! HTTP-level policy in front of every route: which origins may call herald (CORS), how big
//! a request head may be, how connections are tuned and counted, and what the access log
//! says. The CSRF rule (a cookie-authenticated POST must come from a trusted origin) lives in
//! [`crate::auth`], where the token's source is known; both ask [`crate::origins`].

mod access_log;
mod cors;
mod limits;
mod requests;

pub use access_log::{access_log, redact_query};
pub use cors::{cors, json_cors_errors};
pub use limits::{HeadLimit, limit_head, on_connect};
pub use requests::count_requests;
