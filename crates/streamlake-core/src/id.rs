//! Identifiers that end up in topic names, headers and URLs, validated once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier or a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value is empty.
    #[error("must not be empty")]
    Empty,
    /// The value is longer than allowed.
    #[error("is {len} characters long, the maximum is {max}")]
    TooLong {
        /// Actual length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// The value holds a character outside the allowed set.
    #[error("contains {found:?} at position {position}; allowed are {allowed}")]
    BadChar {
        /// The offending character.
        found: char,
        /// Its 0-based character position.
        position: usize,
        /// Human description of the allowed set.
        allowed: &'static str,
    },
    /// The value is one of the names Kafka reserves.
    #[error("\"{0}\" is reserved by Kafka")]
    Reserved(String),
}

const ID_ALLOWED: &str =
    "lowercase ASCII letters, digits, '-' and '_' (starting with a letter or digit)";
const ID_MAX: usize = 64;

fn validate_id(value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    let len = value.chars().count();
    if len > ID_MAX {
        return Err(IdError::TooLong { len, max: ID_MAX });
    }
    for (position, c) in value.chars().enumerate() {
        let ok = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || (position > 0 && (c == '-' || c == '_'));
        if !ok {
            return Err(IdError::BadChar {
                found: c,
                position,
                allowed: ID_ALLOWED,
            });
        }
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate_id(&value)?;
                Ok(Self(value))
            }

            /// The identifier as written in config, topics and URLs.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// A tenant: the unit of isolation (own topics, own keys, own dead letters).
    TenantId
);
identifier!(
    /// A dataset of a tenant: one schema, one key policy, one raw and one clean topic.
    DatasetId
);

const TOPIC_MAX: usize = 249;
const TOPIC_ALLOWED: &str = "ASCII letters, digits, '.', '_' and '-'";

/// Checks a topic name against Kafka's rules (legal characters, at most 249 characters,
/// not "." or "..").
pub fn validate_topic_name(name: &str) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::Empty);
    }
    if name == "." || name == ".." {
        return Err(IdError::Reserved(name.to_owned()));
    }
    let len = name.chars().count();
    if len > TOPIC_MAX {
        return Err(IdError::TooLong {
            len,
            max: TOPIC_MAX,
        });
    }
    for (position, c) in name.chars().enumerate() {
        if !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
            return Err(IdError::BadChar {
                found: c,
                position,
                allowed: TOPIC_ALLOWED,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_lowercase_digits_dash_underscore() {
        assert!(TenantId::new("tenant-a").is_ok());
        assert!(DatasetId::new("air_quality2").is_ok());
    }

    #[test]
    fn ids_reject_uppercase_dots_and_leading_dash() {
        assert!(matches!(
            TenantId::new("TenantA"),
            Err(IdError::BadChar {
                found: 'T',
                position: 0,
                ..
            })
        ));
        assert!(matches!(
            TenantId::new("a.b"),
            Err(IdError::BadChar {
                found: '.',
                position: 1,
                ..
            })
        ));
        assert!(matches!(
            DatasetId::new("-x"),
            Err(IdError::BadChar { found: '-', .. })
        ));
        assert_eq!(TenantId::new(""), Err(IdError::Empty));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("tenantA.bronze.raw").is_ok());
        assert!(validate_topic_name("order-processing.DLQ").is_ok());
        assert!(matches!(
            validate_topic_name("bad topic"),
            Err(IdError::BadChar {
                found: ' ',
                position: 3,
                ..
            })
        ));
        assert!(matches!(
            validate_topic_name(".."),
            Err(IdError::Reserved(_))
        ));
        assert!(matches!(
            validate_topic_name(&"x".repeat(250)),
            Err(IdError::TooLong { len: 250, max: 249 })
        ));
    }
}
