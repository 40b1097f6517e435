//! The OCPP-J frame parser on arbitrary bytes: it never panics, every message id it hands out
//! fits OCPP's 36 characters, and the CALLERROR the server answers a bad frame with is a valid
//! 1.6 CALLERROR. A CALL it accepts also goes through the request decoders.

#![no_main]

use echarging_fuzz::ocpp::v16::{ChargePointRequest, Frame, MAX_MESSAGE_ID_LEN, encode_call_error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // The session closes non-UTF-8 text with 1007 before parsing.
    };
    match Frame::parse(text) {
        Ok(frame) => {
            assert!(frame.message_id().chars().count() <= MAX_MESSAGE_ID_LEN);
            if let Frame::Call(call) = frame
                && let Err(e) = ChargePointRequest::decode(&call.action, call.payload)
            {
                let reply = encode_call_error(&call.id, e.code, &e.description, None);
                ocpp_schemas::assert_frames_valid([reply.as_str()], [text]);
            }
        }
        Err(e) => {
            assert!(e.reply_id().chars().count() <= MAX_MESSAGE_ID_LEN);
            assert!(!e.description.is_empty());
            let reply = encode_call_error(e.reply_id(), e.code, &e.description, None);
            ocpp_schemas::assert_frames_valid([reply.as_str()], [text]);
        }
    }
});
