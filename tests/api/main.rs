//! Black-box tests: real PostgreSQL, real HTTP. One binary; modules by area.

mod auth;
mod cli;
mod counts;
mod deploy;
mod events;
mod faults;
mod fuzz;
mod helpers;
mod inbox;
mod input;
mod limits;
mod listener;
mod managed;
mod polling;
mod presence;
mod push;
mod reads;
mod remembered;
mod retention;
mod signals;
mod stress;
