//! Serde building blocks every OCPP message type shares, so each message file is only its
//! field list. Three rules from the official schemas live here:
//! enums are spelled exactly as the schema spells them (`wire_enum!`), an object field must be
//! a JSON object and not a positional array (`json_object!`), and value constraints that
//! serde cannot express are reported with a tag `decode` turns into the right OCPP error code.

use std::fmt::Display;

use serde::de::{self, Deserialize, Deserializer};

use super::lenient::{self, Rule};

/// Prefix of a custom serde error meaning "PropertyConstraintViolation" (a field's value is
/// out of bounds: too long, not a date-time, not a multiple of 0.1, a value the schema's
/// enum for this message leaves out).
pub(crate) const PROPERTY_TAG: &str = "property constraint: ";
/// Prefix of a custom serde error meaning "OccurenceConstraintViolation" (an array holds
/// fewer items than the schema's `minItems`).
pub(crate) const OCCURRENCE_TAG: &str = "occurrence constraint: ";

/// `deserialize_with` for every optional field: absent → `None` (with `#[serde(default)]`),
/// present → must be a valid value. serde's own `Option` would also read `null` as `None`,
/// but the schemas type these fields as string/integer/…, and `null` is none of them.
///
/// In a lenient decode, `null` is read as absent (and noted): chargers built on libraries that
/// serialise every field write `null` for the ones they do not use.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    if lenient::is_lenient() {
        let value = Option::<T>::deserialize(deserializer)?;
        if value.is_none() {
            lenient::note(Rule::NullOptional, || "null for an optional field".into());
        }
        Ok(value)
    } else {
        T::deserialize(deserializer).map(Some)
    }
}

/// In a lenient decode, the value of `all` spelled like `text` but for letter case (noted).
pub(crate) fn other_case<T: Copy>(text: &str, all: &[T], wire: fn(T) -> &'static str) -> Option<T> {
    if !lenient::is_lenient() {
        return None;
    }
    let found = all
        .iter()
        .copied()
        .find(|v| wire(*v).eq_ignore_ascii_case(text))?;
    lenient::note(Rule::EnumCase, || {
        format!(
            "\"{}\" read as \"{}\"",
            super::decode::shorten(text),
            wire(found)
        )
    });
    Some(found)
}

/// What every [`wire_enum!`] type offers generic code (`types::Open`).
pub trait WireEnum: Copy + 'static {
    const ALL: &'static [Self];
    fn wire(self) -> &'static str;
    fn from_wire(text: &str) -> Option<Self>;
}

/// Marks a tagged message that already names its field (see [`field_violation`]).
pub(crate) const FIELD_MARK: char = '@';

/// A value constraint failed while serde_json was reading the value itself; serde_json's
/// error position then locates the field, and `decode` prefixes its path.
pub(crate) fn property_violation<E: de::Error>(what: impl Display) -> E {
    E::custom(format_args!("{PROPERTY_TAG}{what}"))
}

/// A constraint checked on a whole field after it was read (a `deserialize_with` function).
/// serde_json's position is unreliable by then (after the field, or after the enclosing
/// object, depending on what follows), so the caller names the field, from the message root.
pub(crate) fn field_violation<E: de::Error>(
    tag: &str,
    field: impl Display,
    what: impl Display,
) -> E {
    E::custom(format_args!("{tag}{FIELD_MARK}{field}: {what}"))
}

/// A string-valued enum whose variants carry their exact schema spelling, e.g.
/// `EnergyActiveImportRegister = "Energy.Active.Import.Register"`.
///
/// Hand-rolled rather than `#[derive]` + `#[serde(rename)]` so that every spelling sits next to
/// its variant for review against the schema, `as_str`/`parse`/`ALL` come for free (for
/// storage and tests), and a number in place of the string reads as a type error instead of
/// serde_json's opaque "expected ident".
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The spelling on the wire, exactly as in the OCPP 1.6 schemas.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            /// The value spelled `s` on the wire (exact match: the schemas are case-sensitive).
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl $crate::ocpp::v16::wire::WireEnum for $name {
            const ALL: &'static [Self] = $name::ALL;
            fn wire(self) -> &'static str {
                self.as_str()
            }
            fn from_wire(text: &str) -> Option<Self> {
                $name::parse(text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct WireVisitor;
                impl ::serde::de::Visitor<'_> for WireVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::parse(v)
                            .or_else(|| $crate::ocpp::v16::wire::other_case(v, $name::ALL, $name::as_str))
                            .ok_or_else(|| E::unknown_variant(v, &[$($wire),+]))
                    }
                }
                deserializer.deserialize_str(WireVisitor)
            }
        }
    };
}
pub(crate) use wire_enum;

/// Makes a struct declared with `#[derive(Serialize, Deserialize)]` and
/// `#[serde(remote = "Self", …)]` serialize as usual but deserialize **only from a JSON
/// object**.
///
/// serde's derived `Deserialize` also accepts a struct as a positional array
/// (`["vendor","model"]` for BootNotification), which the schemas (`"type": "object"`) forbid.
/// `remote = "Self"` turns the derived code into inherent functions; the trait impls here
/// call them, insisting on a map first. The inherent `Type::deserialize` stays public (serde
/// gives it the struct's visibility) but nothing should call it directly.
macro_rules! json_object {
    ($($name:ident),+ $(,)?) => {$(
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $name::serialize(self, serializer)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectOnly;
                impl<'de> ::serde::de::Visitor<'de> for ObjectOnly {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(self, map: A) -> Result<$name, A::Error> {
                        $name::deserialize(::serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(ObjectOnly)
            }
        }
    )+};
}
pub(crate) use json_object;
