//! herald: real-time notifications for apps that live on PostgreSQL.
//!
//! A row inserted into `notifications` wakes herald through a trigger and `LISTEN/NOTIFY`;
//! herald streams it to browsers over Server-Sent Events and to older clients over polling.
//!
//! Dependencies point one way: `routes → store, hub, auth → models, schema`. `store` never
//! sees actix, `hub` never sees diesel, `channels` and `cursor` see neither.
//!
//! - [`startup`] builds the service; [`config`] and [`cli`] read settings and commands.
//! - [`cursor`]: what a client has had, exact under out-of-order commits.
//! - [`listener`] → [`hub`] → [`routes`]: commits become batches become events.
//! - [`store`]: every SQL query. [`auth`] and [`channels`]: who may read what.
//! - [`http`]: CORS, request-head limits, connection tuning.
//! - [`devdb`]: the private PostgreSQL cluster of dev mode and tests.

pub mod auth;
pub mod channels;
pub mod cli;
pub mod config;
pub mod cursor;
pub mod devdb;
pub mod error;
pub mod http;
pub mod hub;
pub mod listener;
pub mod metrics;
pub mod models;
pub mod origins;
pub mod pgtls;
pub mod retention;
pub mod routes;
#[rustfmt::skip]
pub mod schema;
pub mod startup;
pub mod state;
pub mod store;
