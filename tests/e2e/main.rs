//! The end-to-end suite, one test binary (linking the whole crate once, not once per file): the
//! real application on `127.0.0.1:0` or the real `echarging` binary, a fresh SQLite file or a
//! fresh PostgreSQL schema each, real HTTP and real WebSocket chargers from the simulator's
//! library. [`support`] is the one harness; each module is one part of the product, told as a
//! user would check it.

mod support;

mod availability;
mod booking_api;
mod charger_hardening;
mod charger_sessions;
mod chargers_api;
mod charging_story;
mod cli;
mod cluster;
mod console;
mod deployment;
mod diagnostics;
mod durability;
mod field_corpus;
mod firmware;
mod fleet_ops;
mod layers;
mod ledger_hardening;
mod lenient;
mod local_list;
mod many_chargers;
mod mypage;
mod openapi;
mod operations;
mod rest_hardening;
mod security_events;
mod store_conformance;
mod tag_lifecycle;
mod tls;
mod toolbox;
mod transactions_paging;
mod unknown_chargers;
mod whole_charger;
