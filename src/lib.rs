//! herald: real-time notifications for apps that live on PostgreSQL.
//!
//! A row inserted into `notifications` wakes herald through a trigger and `LISTEN/NOTIFY`;
//! herald streams it to browsers over Server-Sent Events and to older clients over polling.
//!
//! # How data flows
//! One way: [`listener`] → [`hub`] → [`routes`] (streams and long-polls), and
//! [`routes`] → [`inbox`] → [`store`]. Nothing points back up: `store` knows SQL, diesel, tokio-postgres
//! and tokio's blocking pool only (no actix, no hub; its [`store::StoreError`] becomes the HTTP error at
//! the edge), `hub` knows neither diesel nor actix, `channels` and `cursor` are pure,
//! `metrics` and `files` are leaves, and nothing imports `startup`.
//!
//! # Where things are
//! - A row is read in [`listener`] (its own connection), fanned out in [`hub`], sent by
//!   [`routes::events`] (SSE) and [`routes::notifications`] (polling). Every answer about a
//!   user's notifications, and every write to them, goes through [`inbox`], which keeps the
//!   hub's remembered answers exact.
//! - A request is authorised in [`auth`] (tokens, grants, CSRF) with [`channels`]' rules, and
//!   [`http`] puts CORS, limits and the access log in front of every route.
//! - Background work runs on [`jobs`]' runner: [`upkeep`] (count roll-up, txid repair,
//!   pruning), presence's tick and push's scan.
//! - Who is online where is [`presence`] (shared through PostgreSQL); ephemeral events between
//!   instances are [`signals`]; browser push while no tab is open is [`push`].
//! - [`startup`] assembles the service; [`state`] is what handlers share; [`config`] and
//!   [`cli`] read settings and commands; [`devdb`] runs the private cluster of dev mode and
//!   tests; [`pgtls`] gives the LISTEN connection libpq's TLS settings.
//! - [`cursor`]: what a client has had, exact under out-of-order commits; [`query`]: the
//!   query string, decoded only where asked.

pub mod auth;
pub mod channels;
pub mod cli;
pub mod config;
pub mod cursor;
pub mod devdb;
pub mod error;
pub mod files;
pub mod http;
pub mod hub;
pub mod inbox;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod models;
pub mod origins;
pub mod pgtls;
pub mod presence;
pub mod push;
pub mod query;
pub mod routes;
#[rustfmt::skip]
pub mod schema;
pub mod signals;
pub mod startup;
pub mod state;
pub mod store;
pub mod upkeep;
