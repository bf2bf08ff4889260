//! Black-box tests: real PostgreSQL, real HTTP. One binary; modules by area.

mod auth;
mod cli;
mod events;
mod helpers;
mod input;
mod limits;
mod listener;
mod polling;
mod reads;
