//! Field types the OCPP 1.6 messages share: bounded strings, timestamps, every enum the
//! official schemas define (spelled exactly as there, misspellings included), and the
//! composite values (IdTagInfo, MeterValue, ChargingProfile, …) several messages embed.
//! Each type enforces its schema constraint on the way in, so an invalid value cannot exist.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::lenient::{self, Rule};
use super::wire::{WireEnum, json_object, other_case, present, property_violation, wire_enum};

// ---------------------------------------------------------------------------------------------
// Bounded strings
// ---------------------------------------------------------------------------------------------

/// OCPP's `CiString{N}Type`: a string of at most `N` characters (the schemas' `maxLength`
/// counts characters, not bytes).
///
/// "Ci" means the spec compares these case-insensitively; equality here is exact, because only
/// some comparisons (idTag lookups) want that and they should say so with
/// `eq_ignore_ascii_case` where they happen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CiString<const N: usize>(String);

pub type CiString20 = CiString<20>;
pub type CiString25 = CiString<25>;
pub type CiString50 = CiString<50>;
pub type CiString255 = CiString<255>;
pub type CiString500 = CiString<500>;
/// OCPP's `IdToken`: what a driver presents (RFID UID, app token, …).
pub type IdToken = CiString20;

/// A string did not fit its `CiString` bound, or held a character no charger text may hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiStringError {
    #[error("string of {len} characters is longer than {max}")]
    TooLong { max: usize, len: usize },
    /// See [`NUL_REFUSED`].
    #[error("{NUL_REFUSED}")]
    Nul,
}

/// Why a string holding U+0000 is refused everywhere a charger sends text: the schemas allow
/// any JSON string, but PostgreSQL cannot store NUL in `text` (the write fails, which would
/// answer a charger InternalError forever), C firmware and log readers truncate at it, and no
/// OCPP field has a use for it. Refused as PropertyConstraintViolation, free text included
/// (`DataTransfer.data`, `sampledValue.value`): dropping the character silently would hand a
/// vendor different data than it sent.
pub const NUL_REFUSED: &str = "string contains U+0000";

impl<const N: usize> CiString<N> {
    pub const MAX_LEN: usize = N;

    pub fn new(value: impl Into<String>) -> Result<Self, CiStringError> {
        let value = value.into();
        if !fits::<N>(&value) {
            Err(CiStringError::TooLong {
                max: N,
                len: value.chars().count(),
            })
        } else if has_nul(&value) {
            Err(CiStringError::Nul)
        } else {
            Ok(CiString(value))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Byte length bounds character count from above, so the count is only needed for long or
/// non-ASCII strings.
fn fits<const N: usize>(value: &str) -> bool {
    value.len() <= N || value.chars().count() <= N
}

fn has_nul(value: &str) -> bool {
    value.as_bytes().contains(&0)
}

/// Checks one string a charger sent against the rules every charger string obeys (today: no
/// U+0000, see [`NUL_REFUSED`]), as a serde error `decode` maps to PropertyConstraintViolation.
fn charger_text<E: de::Error>(value: &str) -> Result<(), E> {
    if has_nul(value) {
        Err(property_violation(NUL_REFUSED))
    } else {
        Ok(())
    }
}

/// `deserialize_with` for a free-text `String` field (no `maxLength` in the schema): any string
/// but one holding U+0000.
pub(crate) fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct TextVisitor;
    impl Visitor<'_> for TextVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            charger_text(v).map(|()| v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            charger_text(&v).map(|()| v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(number_as_string(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(number_as_string(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(number_as_string(v))
        }
    }
    string_or_lenient_any(deserializer, TextVisitor)
}

/// [`text`] for an optional field (see `wire::present` for why not `Option`'s own).
pub(crate) fn present_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    text(deserializer).map(Some)
}

impl<const N: usize> Deref for CiString<N> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> AsRef<str> for CiString<N> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> Borrow<str> for CiString<N> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> fmt::Display for CiString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const N: usize> FromStr for CiString<N> {
    type Err = CiStringError;
    fn from_str(s: &str) -> Result<Self, CiStringError> {
        CiString::new(s)
    }
}

impl<const N: usize> TryFrom<String> for CiString<N> {
    type Error = CiStringError;
    fn try_from(value: String) -> Result<Self, CiStringError> {
        CiString::new(value)
    }
}

impl<const N: usize> TryFrom<&str> for CiString<N> {
    type Error = CiStringError;
    fn try_from(value: &str) -> Result<Self, CiStringError> {
        CiString::new(value)
    }
}

impl<const N: usize> From<CiString<N>> for String {
    fn from(value: CiString<N>) -> String {
        value.0
    }
}

impl<const N: usize> Serialize for CiString<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for CiString<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<const N: usize>;
        impl<const N: usize> BoundedVisitor<N> {
            fn check<E: de::Error>(v: &str) -> Result<(), E> {
                if !fits::<N>(v) {
                    let len = v.chars().count();
                    if !(lenient::is_lenient() && len <= lenient::STORAGE_CAP) {
                        return Err(property_violation(format_args!("string longer than {N}")));
                    }
                    lenient::note(Rule::StringTooLong, || {
                        format!("{len} characters where at most {N} are allowed")
                    });
                }
                charger_text(v)
            }
        }
        impl<const N: usize> Visitor<'_> for BoundedVisitor<N> {
            type Value = CiString<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CiString<N>, E> {
                Self::check(v).map(|()| CiString(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<CiString<N>, E> {
                Self::check(&v).map(|()| CiString(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CiString<N>, E> {
                self.visit_string(number_as_string(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CiString<N>, E> {
                self.visit_string(number_as_string(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CiString<N>, E> {
                self.visit_string(number_as_string(v))
            }
        }
        string_or_lenient_any(deserializer, BoundedVisitor::<N>)
    }
}

/// Strings are read as strings; in a lenient decode, a JSON number too (its visitor turns it
/// into text via [`number_as_string`]). serde_json only hands a number to a visitor through
/// `deserialize_any`.
fn string_or_lenient_any<'de, D: Deserializer<'de>, V: Visitor<'de>>(
    deserializer: D,
    visitor: V,
) -> Result<V::Value, D::Error> {
    if lenient::is_lenient() {
        deserializer.deserialize_any(visitor)
    } else {
        deserializer.deserialize_string(visitor)
    }
}

/// A JSON number where a string is wanted (only reached in lenient mode), as its decimal text.
fn number_as_string(n: impl fmt::Display) -> String {
    lenient::note(Rule::NumberAsString, || {
        "a number where a string is wanted".into()
    });
    n.to_string()
}

// ---------------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------------

/// An OCPP `dateTime`: an instant, held in UTC at millisecond precision.
///
/// Written as RFC 3339 `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form every charger parses. Read from
/// RFC 3339 with any offset, and — because some chargers send local-looking times without
/// one — from a date-time with no offset, taken as UTC. Everything is truncated to whole
/// milliseconds on the way in, so what we hold is exactly what we would send and
/// `==` means "same on the wire".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A string that is not an RFC 3339 date-time (with or without offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time")]
pub struct TimestampError;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`
const RFC3339_MILLIS_LEN: usize = 24;

/// The instants a charger may report, `REPORTABLE.start <= t < REPORTABLE.end`: 2000-01-01 to
/// 2100-01-01 (UTC). A date-time outside them is refused on the way in (PropertyConstraintViolation
/// naming the field), whatever the message.
///
/// Why a fixed window and not "now ± n years": it keeps this layer free of the clock and makes
/// the same frame decode the same way tomorrow. Why these bounds: a time before 2000 is a clock
/// that was never set (chargers boot at 1970 without a battery-backed clock; the
/// BootNotification answer's `currentTime` is how they learn the time), and one past 2100 is
/// noise. Inside the window, adding or subtracting any duration the settings allow (each at most
/// a year, see `settings`) stays far from `time`'s year ±9999 limits, so nothing downstream
/// has to guess whether its arithmetic can overflow.
pub const REPORTABLE: std::ops::Range<OffsetDateTime> =
    time::macros::datetime!(2000-01-01 00:00 UTC)..time::macros::datetime!(2100-01-01 00:00 UTC);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp::from(OffsetDateTime::now_utc())
    }

    /// The instant, with a UTC offset.
    pub fn into_inner(self) -> OffsetDateTime {
        self.0
    }

    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        if let Ok(instant) = OffsetDateTime::parse(text, &Rfc3339) {
            return Ok(Timestamp::from(instant));
        }
        let without_offset = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        PrimitiveDateTime::parse(text, without_offset)
            .map(|local| Timestamp::from(local.assume_utc()))
            .map_err(|_| TimestampError)
    }

    /// The shapes chargers in the field send besides RFC 3339: a space for the `T`, an offset
    /// without its colon (`+0100`), a lower-case `t`/`z`. Lenient mode only.
    fn parse_loose(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() < 19 || !text.is_char_boundary(10) || !text.is_char_boundary(11) {
            return None;
        }
        let mut fixed = String::with_capacity(text.len() + 1);
        fixed.push_str(&text[..10]);
        fixed.push('T');
        fixed.push_str(&text[11..]);
        if fixed.ends_with('z') {
            fixed.pop();
            fixed.push('Z');
        }
        // "+hhmm" at the end → "+hh:mm".
        let bytes = fixed.as_bytes();
        let n = bytes.len();
        if n >= 5
            && matches!(bytes[n - 5], b'+' | b'-')
            && bytes[n - 4..].iter().all(u8::is_ascii_digit)
            && n - 5 >= 19
        {
            fixed.insert(n - 2, ':');
        }
        Timestamp::parse(&fixed).ok()
    }

    /// Formats by hand into a stack buffer: Heartbeat answers do this tens of thousands of
    /// times a second, and `time`'s general formatter is several times slower. `None` for
    /// years RFC 3339 cannot write (outside 0000–9999).
    fn write_rfc3339(self, buf: &mut [u8; RFC3339_MILLIS_LEN]) -> Option<&str> {
        let (year, month, day) = self.0.to_calendar_date();
        let year = u16::try_from(year).ok().filter(|year| *year <= 9999)?;
        let (hour, minute, second, milli) = self.0.to_hms_milli();
        fn digits<const W: usize>(out: &mut [u8], mut value: u16) {
            for slot in out[..W].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        digits::<4>(&mut buf[0..], year);
        buf[4] = b'-';
        digits::<2>(&mut buf[5..], u8::from(month).into());
        buf[7] = b'-';
        digits::<2>(&mut buf[8..], day.into());
        buf[10] = b'T';
        digits::<2>(&mut buf[11..], hour.into());
        buf[13] = b':';
        digits::<2>(&mut buf[14..], minute.into());
        buf[16] = b':';
        digits::<2>(&mut buf[17..], second.into());
        buf[19] = b'.';
        digits::<3>(&mut buf[20..], milli);
        buf[23] = b'Z';
        std::str::from_utf8(buf).ok()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(instant: OffsetDateTime) -> Self {
        // Out-of-range conversions only happen within a day of year ±9999; keep the offset
        // then rather than panic (serialising will refuse such a year anyway).
        let utc = instant.checked_to_offset(UtcOffset::UTC).unwrap_or(instant);
        let millis = utc.nanosecond() / 1_000_000 * 1_000_000;
        Timestamp(utc.replace_nanosecond(millis).unwrap_or(utc))
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(timestamp: Timestamp) -> Self {
        timestamp.0
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, TimestampError> {
        Timestamp::parse(s)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; RFC3339_MILLIS_LEN];
        match self.write_rfc3339(&mut buf) {
            Some(text) => f.write_str(text),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; RFC3339_MILLIS_LEN];
        match self.write_rfc3339(&mut buf) {
            Some(text) => serializer.serialize_str(text),
            None => Err(serde::ser::Error::custom(
                "timestamp outside the years RFC 3339 can write",
            )),
        }
    }
}

/// Reads only [`REPORTABLE`] instants; [`Timestamp::parse`] reads any year RFC 3339 can write.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date-time string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                let at = match Timestamp::parse(v) {
                    Ok(at) => at,
                    Err(e) => match lenient::is_lenient().then(|| Timestamp::parse_loose(v)) {
                        Some(Some(at)) => {
                            lenient::note(Rule::TimestampFormat, || {
                                "a date-time that is not RFC 3339".into()
                            });
                            at
                        }
                        _ => return Err(property_violation(e)),
                    },
                };
                if REPORTABLE.contains(&at.0) {
                    Ok(at)
                } else if lenient::is_lenient() && at.0 < REPORTABLE.start {
                    // A clock that was never set: what the charger meant is "now".
                    lenient::note(Rule::TimestampOutOfRange, || {
                        format!("year {} read as the time of arrival", at.0.year())
                    });
                    Ok(Timestamp::now())
                } else {
                    Err(property_violation(
                        "date-time outside 2000-01-01T00:00:00Z..2100-01-01T00:00:00Z",
                    ))
                }
            }
        }
        deserializer.deserialize_str(TimestampVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/// The schemas give charging limits `"multipleOf": 0.1`. Like the JSON Schema validators we
/// test against, this judges the number's shortest decimal form, not its binary value (in
/// binary, hardly anything is a multiple of 0.1).
pub(crate) fn multiple_of_tenth<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<f64, D::Error> {
    // Checked inside the visitor, not after `f64::deserialize`, so serde_json's error
    // position still points at the number and `decode` can name the field.
    struct TenthsVisitor;
    impl Visitor<'_> for TenthsVisitor {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("f64")
        }
        fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
            if is_multiple_of_tenth(value) {
                Ok(value)
            } else {
                Err(property_violation("not a multiple of 0.1"))
            }
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
            Ok(value as f64)
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
            Ok(value as f64)
        }
    }
    deserializer.deserialize_f64(TenthsVisitor)
}

/// [`multiple_of_tenth`] for an optional field (see `wire::present` for why not `Option`'s own).
pub(crate) fn present_multiple_of_tenth<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<f64>, D::Error> {
    multiple_of_tenth(deserializer).map(Some)
}

fn is_multiple_of_tenth(value: f64) -> bool {
    if !value.is_finite() {
        return false;
    }
    if value == 0.0 {
        return true;
    }
    // jsonschema's rule too: a non-zero magnitude below the multiple cannot be a multiple.
    if value.abs() < 0.1 {
        return false;
    }
    let text = value.to_string();
    text.split_once('.')
        .is_none_or(|(_, fraction)| fraction.len() <= 1)
}

// ---------------------------------------------------------------------------------------------
// Enums (schema order, schema spelling)
// ---------------------------------------------------------------------------------------------

wire_enum! {
    /// `idTagInfo.status`.
    pub enum AuthorizationStatus {
        Accepted = "Accepted",
        Blocked = "Blocked",
        Expired = "Expired",
        Invalid = "Invalid",
        ConcurrentTx = "ConcurrentTx",
    }
}

wire_enum! {
    /// BootNotificationResponse `status`.
    pub enum RegistrationStatus {
        Accepted = "Accepted",
        Pending = "Pending",
        Rejected = "Rejected",
    }
}

wire_enum! {
    /// StatusNotification `status`: the connector state machine of OCPP 1.6 §4.9.
    pub enum ChargePointStatus {
        Available = "Available",
        Preparing = "Preparing",
        Charging = "Charging",
        SuspendedEVSE = "SuspendedEVSE",
        SuspendedEV = "SuspendedEV",
        Finishing = "Finishing",
        Reserved = "Reserved",
        Unavailable = "Unavailable",
        Faulted = "Faulted",
    }
}

wire_enum! {
    /// StatusNotification `errorCode`.
    pub enum ChargePointErrorCode {
        ConnectorLockFailure = "ConnectorLockFailure",
        EVCommunicationError = "EVCommunicationError",
        GroundFailure = "GroundFailure",
        HighTemperature = "HighTemperature",
        InternalError = "InternalError",
        LocalListConflict = "LocalListConflict",
        NoError = "NoError",
        OtherError = "OtherError",
        OverCurrentFailure = "OverCurrentFailure",
        PowerMeterFailure = "PowerMeterFailure",
        PowerSwitchFailure = "PowerSwitchFailure",
        ReaderFailure = "ReaderFailure",
        ResetFailure = "ResetFailure",
        UnderVoltage = "UnderVoltage",
        OverVoltage = "OverVoltage",
        WeakSignal = "WeakSignal",
    }
}

wire_enum! {
    /// ChangeAvailability `type`.
    pub enum AvailabilityType {
        Inoperative = "Inoperative",
        Operative = "Operative",
    }
}

wire_enum! {
    /// ChangeAvailabilityResponse `status`.
    pub enum AvailabilityStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        Scheduled = "Scheduled",
    }
}

wire_enum! {
    /// ChangeConfigurationResponse `status`.
    pub enum ConfigurationStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        RebootRequired = "RebootRequired",
        NotSupported = "NotSupported",
    }
}

wire_enum! {
    /// ClearCacheResponse `status`.
    pub enum ClearCacheStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

wire_enum! {
    /// DataTransferResponse `status`.
    pub enum DataTransferStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        UnknownMessageId = "UnknownMessageId",
        UnknownVendorId = "UnknownVendorId",
    }
}

wire_enum! {
    /// RemoteStartTransactionResponse / RemoteStopTransactionResponse `status`.
    pub enum RemoteStartStopStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

wire_enum! {
    /// Reset `type`.
    pub enum ResetType {
        Hard = "Hard",
        Soft = "Soft",
    }
}

wire_enum! {
    /// ResetResponse `status`.
    pub enum ResetStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

wire_enum! {
    /// StopTransaction `reason` (absent means `Local`, OCPP 1.6 §6.49).
    pub enum Reason {
        EmergencyStop = "EmergencyStop",
        EVDisconnected = "EVDisconnected",
        HardReset = "HardReset",
        Local = "Local",
        Other = "Other",
        PowerLoss = "PowerLoss",
        Reboot = "Reboot",
        Remote = "Remote",
        SoftReset = "SoftReset",
        UnlockCommand = "UnlockCommand",
        DeAuthorized = "DeAuthorized",
    }
}

wire_enum! {
    /// ReserveNowResponse `status`.
    pub enum ReservationStatus {
        Accepted = "Accepted",
        Faulted = "Faulted",
        Occupied = "Occupied",
        Rejected = "Rejected",
        Unavailable = "Unavailable",
    }
}

wire_enum! {
    /// CancelReservationResponse `status`.
    pub enum CancelReservationStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

wire_enum! {
    /// TriggerMessage `requestedMessage`.
    pub enum MessageTrigger {
        BootNotification = "BootNotification",
        DiagnosticsStatusNotification = "DiagnosticsStatusNotification",
        FirmwareStatusNotification = "FirmwareStatusNotification",
        Heartbeat = "Heartbeat",
        MeterValues = "MeterValues",
        StatusNotification = "StatusNotification",
    }
}

wire_enum! {
    /// TriggerMessageResponse `status`.
    pub enum TriggerMessageStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        NotImplemented = "NotImplemented",
    }
}

wire_enum! {
    /// UnlockConnectorResponse `status`.
    pub enum UnlockStatus {
        Unlocked = "Unlocked",
        UnlockFailed = "UnlockFailed",
        NotSupported = "NotSupported",
    }
}

wire_enum! {
    /// DiagnosticsStatusNotification `status`.
    pub enum DiagnosticsStatus {
        Idle = "Idle",
        Uploaded = "Uploaded",
        UploadFailed = "UploadFailed",
        Uploading = "Uploading",
    }
}

wire_enum! {
    /// FirmwareStatusNotification `status`.
    pub enum FirmwareStatus {
        Downloaded = "Downloaded",
        DownloadFailed = "DownloadFailed",
        Downloading = "Downloading",
        Idle = "Idle",
        InstallationFailed = "InstallationFailed",
        Installing = "Installing",
        Installed = "Installed",
    }
}

wire_enum! {
    /// SampledValue `context` (absent means `SamplePeriodic`).
    pub enum ReadingContext {
        InterruptionBegin = "Interruption.Begin",
        InterruptionEnd = "Interruption.End",
        SampleClock = "Sample.Clock",
        SamplePeriodic = "Sample.Periodic",
        TransactionBegin = "Transaction.Begin",
        TransactionEnd = "Transaction.End",
        Trigger = "Trigger",
        Other = "Other",
    }
}

wire_enum! {
    /// SampledValue `format` (absent means `Raw`).
    pub enum ValueFormat {
        Raw = "Raw",
        SignedData = "SignedData",
    }
}

wire_enum! {
    /// SampledValue `measurand` (absent means `EnergyActiveImportRegister`).
    pub enum Measurand {
        EnergyActiveExportRegister = "Energy.Active.Export.Register",
        EnergyActiveImportRegister = "Energy.Active.Import.Register",
        EnergyReactiveExportRegister = "Energy.Reactive.Export.Register",
        EnergyReactiveImportRegister = "Energy.Reactive.Import.Register",
        EnergyActiveExportInterval = "Energy.Active.Export.Interval",
        EnergyActiveImportInterval = "Energy.Active.Import.Interval",
        EnergyReactiveExportInterval = "Energy.Reactive.Export.Interval",
        EnergyReactiveImportInterval = "Energy.Reactive.Import.Interval",
        PowerActiveExport = "Power.Active.Export",
        PowerActiveImport = "Power.Active.Import",
        PowerOffered = "Power.Offered",
        PowerReactiveExport = "Power.Reactive.Export",
        PowerReactiveImport = "Power.Reactive.Import",
        PowerFactor = "Power.Factor",
        CurrentImport = "Current.Import",
        CurrentExport = "Current.Export",
        CurrentOffered = "Current.Offered",
        Voltage = "Voltage",
        Frequency = "Frequency",
        Temperature = "Temperature",
        SoC = "SoC",
        Rpm = "RPM",
    }
}

wire_enum! {
    /// SampledValue `phase`.
    pub enum Phase {
        L1 = "L1",
        L2 = "L2",
        L3 = "L3",
        N = "N",
        L1N = "L1-N",
        L2N = "L2-N",
        L3N = "L3-N",
        L1L2 = "L1-L2",
        L2L3 = "L2-L3",
        L3L1 = "L3-L1",
    }
}

wire_enum! {
    /// SampledValue `location` (absent means `Outlet`).
    pub enum Location {
        Cable = "Cable",
        Ev = "EV",
        Inlet = "Inlet",
        Outlet = "Outlet",
        Body = "Body",
    }
}

wire_enum! {
    /// SampledValue `unit` (absent means `Wh`). `Celcius` is the schema's misspelling and
    /// stays, next to the correct `Celsius`: chargers send both.
    ///
    /// `Hertz` is in MeterValues' list but not in StopTransaction's `transactionData`;
    /// StopTransaction rejects it itself.
    pub enum UnitOfMeasure {
        Wh = "Wh",
        KWh = "kWh",
        Varh = "varh",
        Kvarh = "kvarh",
        W = "W",
        KW = "kW",
        Va = "VA",
        KVa = "kVA",
        Var = "var",
        Kvar = "kvar",
        A = "A",
        V = "V",
        K = "K",
        Celcius = "Celcius",
        Celsius = "Celsius",
        Fahrenheit = "Fahrenheit",
        Percent = "Percent",
        Hertz = "Hertz",
    }
}

wire_enum! {
    /// ChargingProfile `chargingProfilePurpose`.
    pub enum ChargingProfilePurposeType {
        ChargePointMaxProfile = "ChargePointMaxProfile",
        TxDefaultProfile = "TxDefaultProfile",
        TxProfile = "TxProfile",
    }
}

wire_enum! {
    /// ChargingProfile `chargingProfileKind`.
    pub enum ChargingProfileKindType {
        Absolute = "Absolute",
        Recurring = "Recurring",
        Relative = "Relative",
    }
}

wire_enum! {
    /// ChargingProfile `recurrencyKind`.
    pub enum RecurrencyKindType {
        Daily = "Daily",
        Weekly = "Weekly",
    }
}

wire_enum! {
    /// ChargingSchedule `chargingRateUnit`.
    pub enum ChargingRateUnitType {
        A = "A",
        W = "W",
    }
}

/// A meter value qualifier (measurand, unit, …): one of the schema's values, or, read in
/// lenient mode, whatever the charger sent (meters in the field report measurands and units the
/// 1.6 schemas never listed). Strict mode refuses the unknown ones as the schemas do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Open<T> {
    Known(T),
    /// As given, at most [`lenient::STORAGE_CAP`] characters.
    Unknown(String),
}

impl<T: WireEnum> Open<T> {
    pub fn known(&self) -> Option<T> {
        match self {
            Open::Known(value) => Some(*value),
            Open::Unknown(_) => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Open::Known(value) => value.wire(),
            Open::Unknown(text) => text,
        }
    }
}

impl<T> From<T> for Open<T> {
    fn from(value: T) -> Self {
        Open::Known(value)
    }
}

impl<T: WireEnum> Serialize for Open<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, T: WireEnum> Deserialize<'de> for Open<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OpenVisitor<T>(std::marker::PhantomData<T>);
        impl<T: WireEnum> Visitor<'_> for OpenVisitor<T> {
            type Value = Open<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Open<T>, E> {
                if let Some(known) = T::from_wire(v).or_else(|| other_case(v, T::ALL, T::wire)) {
                    return Ok(Open::Known(known));
                }
                if lenient::is_lenient() && !v.is_empty() && fits::<{ lenient::STORAGE_CAP }>(v) {
                    charger_text(v)?;
                    lenient::note(Rule::UnknownEnumValue, || {
                        format!("\"{}\" kept as given", super::decode::shorten(v))
                    });
                    return Ok(Open::Unknown(v.to_owned()));
                }
                // serde's own wording, which `decode` maps to PropertyConstraintViolation.
                Err(E::custom(format_args!("unknown variant `{v}`")))
            }
        }
        deserializer.deserialize_str(OpenVisitor(std::marker::PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Composite values
// ---------------------------------------------------------------------------------------------

/// Authorize / StartTransaction / StopTransaction responses' verdict on an idTag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct IdTagInfo {
    pub status: AuthorizationStatus,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_date: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_id_tag: Option<IdToken>,
}

impl IdTagInfo {
    /// Just a status, which is all most answers carry.
    pub fn new(status: AuthorizationStatus) -> Self {
        IdTagInfo {
            status,
            expiry_date: None,
            parent_id_tag: None,
        }
    }
}

/// A set of samples taken at one instant (MeterValues `meterValue[]`, StopTransaction
/// `transactionData[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValue {
    pub timestamp: Timestamp,
    pub sampled_value: Vec<SampledValue>,
}

/// One reading. `value` is a string on the wire (a decimal number for `Raw`, opaque for
/// `SignedData`); absent qualifiers have the spec defaults the `*_or_default` methods apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SampledValue {
    #[serde(deserialize_with = "text")]
    pub value: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub context: Option<Open<ReadingContext>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub format: Option<Open<ValueFormat>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub measurand: Option<Open<Measurand>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub phase: Option<Open<Phase>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub location: Option<Open<Location>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub unit: Option<Open<UnitOfMeasure>>,
}

impl SampledValue {
    /// A plain reading with every qualifier left to its default.
    pub fn new(value: impl Into<String>) -> Self {
        SampledValue {
            value: value.into(),
            context: None,
            format: None,
            measurand: None,
            phase: None,
            location: None,
            unit: None,
        }
    }

    // The `*_or_default` accessors give the spec default for an absent qualifier and `None`
    // for one the schema does not know (read in lenient mode): such a sample means something
    // we cannot interpret, so it is never taken for the default.

    pub fn context_or_default(&self) -> Option<ReadingContext> {
        or_default(&self.context, ReadingContext::SamplePeriodic)
    }

    pub fn format_or_default(&self) -> Option<ValueFormat> {
        or_default(&self.format, ValueFormat::Raw)
    }

    pub fn measurand_or_default(&self) -> Option<Measurand> {
        or_default(&self.measurand, Measurand::EnergyActiveImportRegister)
    }

    pub fn location_or_default(&self) -> Option<Location> {
        or_default(&self.location, Location::Outlet)
    }

    pub fn unit_or_default(&self) -> Option<UnitOfMeasure> {
        or_default(&self.unit, UnitOfMeasure::Wh)
    }

    /// A lenient decode's reading of a decimal comma: `"1,8"` (digits, one comma, digits, and
    /// no point) becomes `"1.8"`. True when it changed the value.
    pub(crate) fn mend_decimal_comma(&mut self) -> bool {
        let value = self.value.trim();
        let Some((whole, fraction)) = value.split_once(',') else {
            return false;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let whole_digits = whole.strip_prefix('-').unwrap_or(whole);
        if !(digits(whole_digits) && digits(fraction)) {
            return false;
        }
        self.value = format!("{whole}.{fraction}");
        true
    }
}

fn or_default<T: WireEnum>(qualifier: &Option<Open<T>>, default: T) -> Option<T> {
    match qualifier {
        None => Some(default),
        Some(open) => open.known(),
    }
}

/// One configuration key in GetConfigurationResponse. (`readonly` is all lower case in the
/// schema.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValue {
    pub key: CiString50,
    pub readonly: bool,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<CiString500>,
}

/// A charging profile (RemoteStartTransaction `chargingProfile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingProfile {
    pub charging_profile_id: i32,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub transaction_id: Option<i32>,
    pub stack_level: i32,
    pub charging_profile_purpose: ChargingProfilePurposeType,
    pub charging_profile_kind: ChargingProfileKindType,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub recurrency_kind: Option<RecurrencyKindType>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_from: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_to: Option<Timestamp>,
    pub charging_schedule: ChargingSchedule,
}

/// When and how much a profile allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedule {
    /// Seconds.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<i32>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_schedule: Option<Timestamp>,
    pub charging_rate_unit: ChargingRateUnitType,
    pub charging_schedule_period: Vec<ChargingSchedulePeriod>,
    /// In `charging_rate_unit`, a multiple of 0.1.
    #[serde(
        default,
        deserialize_with = "present_multiple_of_tenth",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_charging_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedulePeriod {
    /// Seconds from the schedule's start.
    pub start_period: i32,
    /// In the schedule's `charging_rate_unit`, a multiple of 0.1.
    #[serde(deserialize_with = "multiple_of_tenth")]
    pub limit: f64,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_phases: Option<i32>,
}

json_object!(
    IdTagInfo,
    MeterValue,
    SampledValue,
    KeyValue,
    ChargingProfile,
    ChargingSchedule,
    ChargingSchedulePeriod,
);
