//! The charger protocols, pure: WebSocket text in, typed messages out, and back. No I/O, no
//! async, no state. One module per protocol version, so a second version (OCPP 2.0.1) is a
//! sibling of [`v16`] and the layers above never see a version's message types except where
//! they speak to a charger (`crate::central`).

pub mod v16;
