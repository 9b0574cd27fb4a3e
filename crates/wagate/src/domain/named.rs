//! Enums whose values have a name on the wire (API, events, stored rows,
//! metric labels): [`named_enum!`] declares the variants and their names in
//! one table, and everything that reads or writes a name (`as_str`,
//! `Display`, `FromStr`, serde, the OpenAPI schema) comes from it.

/// A name that is none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownStatus(pub String);

impl From<&str> for UnknownStatus {
    fn from(name: &str) -> Self {
        Self(name.to_string())
    }
}

/// Declares a string-valued enum once: the variants, their wire names, and
/// `ALL`, `as_str`, `Display`, `FromStr`, serde and the schema derived from
/// that one table. `FromStr` fails with [`UnknownStatus`] unless an
/// `error Type;` line comes first (`Type: From<&str>`).
macro_rules! named_enum {
    (
        $(#[$($meta:tt)*])*
        $vis:vis enum $name:ident { $($body:tt)+ }
    ) => {
        $crate::domain::named_enum! {
            error $crate::domain::UnknownStatus;
            $(#[$($meta)*])*
            $vis enum $name { $($body)+ }
        }
    };
    (
        error $err:ty;
        $(#[$($meta:tt)*])*
        $vis:vis enum $name:ident {
            $($(#[$($vmeta:tt)*])* $variant:ident = $text:tt,)+
        }
    ) => {
        $(#[$($meta)*])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema,
        )]
        // The names and attributes are matched as `tt`s, not `literal`s or
        // `meta`s: those fragments reach a derive wrapped in an invisible
        // group, which utoipa does not look into (it then ignores the
        // rename). `rename_all` is the fallback; the test in each enum's
        // module checks the schema's names are these.
        #[serde(rename_all = "snake_case")]
        $vis enum $name {
            $($(#[$($vmeta)*])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            $vis const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            $vis fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| <$err>::from(s))
            }
        }

        #[cfg(test)]
        impl $crate::domain::named::Named for $name {
            const ALL: &'static [Self] = &Self::ALL;

            fn as_str(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

pub(crate) use named_enum;

/// What the round-trip check needs of a [`named_enum!`].
#[cfg(test)]
pub(crate) trait Named:
    Copy
    + PartialEq
    + std::fmt::Debug
    + std::fmt::Display
    + std::str::FromStr
    + serde::Serialize
    + serde::de::DeserializeOwned
    + utoipa::PartialSchema
    + 'static
{
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

/// Every name of `T` parses back to its value, serializes and deserializes
/// as itself, and is the one the OpenAPI schema lists, in order.
#[cfg(test)]
pub(crate) fn assert_names_round_trip<T: Named>() {
    let names: Vec<&str> = T::ALL.iter().map(|v| v.as_str()).collect();
    for (value, name) in T::ALL.iter().zip(&names) {
        assert_eq!(name.parse::<T>().ok(), Some(*value), "FromStr of {name}");
        assert_eq!(value.to_string(), *name, "Display of {value:?}");
        let json = serde_json::to_value(value).unwrap_or_default();
        assert_eq!(json, *name, "serde of {value:?}");
        assert_eq!(serde_json::from_value::<T>(json).ok(), Some(*value));
    }
    assert!(
        format!("{}~", names.concat()).parse::<T>().is_err(),
        "an unknown name parses"
    );
    let schema = serde_json::to_value(T::schema()).unwrap_or_default();
    let documented: Vec<&str> = schema["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(documented, names, "the schema's names");
}
