//! Tests of the OCPP layer against the official 1.6 JSON schemas and the OCPP-J rules.
//!
//! `schema` holds the schema-driven checks (round trip, validation, and a mutation walk that
//! proves each schema rule is enforced with the right error code); `samples` feeds it one
//! realistic message per request and response (`samples_outbound`: the operator's toolbox
//! actions). The other files cover frames, the decode-error table, the enum spellings and
//! property tests.

mod decoding;
mod enums;
mod frames;
mod lenient;
mod properties;
mod samples;
mod samples_outbound;
mod schema;
mod types;
