//! Bounded strings and timestamps: the rules the schemas and real chargers impose.

use time::macros::datetime;

use crate::ocpp::v16::*;

#[test]
fn ci_strings_count_characters_not_bytes() {
    assert!(CiString20::new("a".repeat(20)).is_ok());
    assert!(CiString20::new("ü".repeat(20)).is_ok());
    assert_eq!(
        CiString20::new("ü".repeat(21)),
        Err(CiStringError::TooLong { max: 20, len: 21 })
    );
    let tag: IdToken = "04A2B3C4".parse().unwrap();
    assert_eq!(tag.as_str(), "04A2B3C4");
    assert_eq!(&*tag, "04A2B3C4");
    assert_eq!(tag.to_string(), "04A2B3C4");
    assert_eq!(serde_json::to_string(&tag).unwrap(), "\"04A2B3C4\"");
    assert!(serde_json::from_str::<CiString<3>>("\"abcd\"").is_err());
    assert_eq!(
        serde_json::from_str::<CiString<3>>("\"a\\u00e9c\"")
            .unwrap()
            .as_str(),
        "aéc"
    );
}

#[test]
fn timestamps_are_written_in_utc_with_milliseconds() {
    let at = Timestamp::from(datetime!(2026-11-24 07:46:01.123456789 +02:00));
    assert_eq!(at.to_string(), "2026-11-24T05:46:01.123Z");
    assert_eq!(
        serde_json::to_string(&at).unwrap(),
        "\"2026-11-24T05:46:01.123Z\""
    );
    assert_eq!(at.into_inner(), datetime!(2026-11-24 05:46:01.123 UTC));
    let whole = Timestamp::from(datetime!(0001-01-01 00:00:00 UTC));
    assert_eq!(whole.to_string(), "0001-01-01T00:00:00.000Z");
}

#[test]
fn timestamps_read_any_offset_and_tolerate_none() {
    let expected = Timestamp::from(datetime!(2026-11-24 05:46:01.120 UTC));
    for text in [
        "2026-11-24T05:46:01.12Z",
        "2026-11-24T05:46:01.120000Z",
        "2026-11-24T07:46:01.12+02:00",
        "2026-11-24T00:46:01.120-05:00",
        "2026-11-24T05:46:01.12",
        "2026-11-24T05:46:01.1209",
    ] {
        assert_eq!(Timestamp::parse(text), Ok(expected), "{text}");
    }
    assert_eq!(
        Timestamp::parse("2026-11-24T05:46:01"),
        Ok(Timestamp::from(datetime!(2026-11-24 05:46:01 UTC)))
    );
    for bad in [
        "",
        "2026-11-24",
        "24/11/2026 05:46",
        "2026-13-01T00:00:00Z",
        "now",
    ] {
        assert_eq!(Timestamp::parse(bad), Err(TimestampError), "{bad}");
    }
}

#[test]
fn timestamps_outside_rfc_3339_years_refuse_to_serialize() {
    let far = Timestamp::from(datetime!(-0001-06-01 00:00:00 UTC));
    assert!(serde_json::to_string(&far).is_err());
}

#[test]
fn charger_text_never_holds_nul() {
    assert_eq!(CiString20::new("v\0"), Err(CiStringError::Nul));
    assert!(serde_json::from_str::<CiString20>(r#""v\u0000""#).is_err());
    // The escape for a backslash followed by "u0000" is not a NUL.
    assert_eq!(
        serde_json::from_str::<CiString20>(r#""v\\u0000""#)
            .unwrap()
            .as_str(),
        "v\\u0000"
    );
}

#[test]
fn charger_timestamps_are_refused_outside_the_reportable_window() {
    let read = |text: &str| serde_json::from_str::<Timestamp>(&format!("\"{text}\""));
    for inside in [
        "2000-01-01T00:00:00Z",
        "2026-11-24T05:46:01Z",
        "2099-12-31T23:59:59.999Z",
    ] {
        assert!(read(inside).is_ok(), "{inside}");
    }
    for outside in [
        "9999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999Z",
        "1970-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
    ] {
        assert!(read(outside).is_err(), "{outside}");
        // Still a date-time: only the decoder of charger frames refuses it.
        assert!(Timestamp::parse(outside).is_ok(), "{outside}");
    }
}
