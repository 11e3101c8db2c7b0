//! Distinct 32-byte identifiers: a block's id, its convergent key, an image's hash.
//!
//! Each is its own type so that a key can never be passed where an id is expected
//! (the store must never see keys). All render as lowercase hex.

use std::fmt;
use std::str::FromStr;

/// Error for a string that is not 64 lowercase hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected 64 lowercase hex digits, got {0:?}")]
pub struct ParseIdError(pub String);

/// True for exactly 64 lowercase hex digits: the one text form of every id (uppercase is
/// refused so that one id has one spelling in paths, URLs and logs).
pub fn is_lower_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

macro_rules! hex_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Length in bytes of the binary form.
            pub const LEN: usize = 32;

            /// The raw bytes, for binary wire and file formats.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex, as shown to users and used in paths.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Reads the binary form from a slice that must be exactly 32 bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(bytes).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..16])
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            /// Only the canonical form: exactly 64 lowercase hex digits.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if !is_lower_hex(s) {
                    return Err(ParseIdError(s.to_string()));
                }
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_string()))?;
                Ok(Self(out))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_newtype!(
    /// Content address of a stored block: BLAKE3 of the whole block object. Public:
    /// the store indexes by it and verifies every upload against it.
    BlockId
);
hex_newtype!(
    /// Convergent key of a block: BLAKE3 keyed by the convergence secret over the
    /// plaintext. Secret to recipe holders; never sent to the store.
    BlockKey
);
hex_newtype!(
    /// The image hash of a recipe: for version 2 BLAKE3 over the image's extents (see
    /// `recipe::hash`), for version 1 BLAKE3 of the whole logical image (`b3sum` of it).
    ImageHash
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = BlockId([0xab; 32]);
        let parsed: BlockId = id.to_hex().parse().unwrap();
        assert_eq!(parsed, id);
        assert!("zz".parse::<BlockId>().is_err());
        assert!("ab".repeat(31).parse::<BlockId>().is_err());
        assert!("AB".repeat(32).parse::<BlockId>().is_err());
        assert!("aB".repeat(32).parse::<BlockKey>().is_err());
        assert!(format!("{} ", "ab".repeat(32))
            .parse::<ImageHash>()
            .is_err());
        assert!(serde_json::from_str::<BlockId>(&format!("\"{}\"", "AB".repeat(32))).is_err());
    }

    #[test]
    fn serde_is_hex_string() {
        let key = BlockKey([1; 32]);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", "01".repeat(32)));
        let back: BlockKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, key);
    }
}
