//! JSON integers as JSON Schema defines them: `3` and `3.0` are the same integer, and an API
//! whose document says `"type": "integer"` accepts both (serde's integer types refuse `3.0`).
//! Fractions, negatives and values out of the target's range are still refused.
//!
//! Use on a field with `#[serde(deserialize_with = "policy::integral::option")]` (or `::plain`).

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Float(f64),
}

fn to_int<T: TryFrom<u64>, E: serde::de::Error>(n: Number) -> Result<T, E> {
    let v = match n {
        Number::Int(v) => v,
        // below 2^53 every integer is exact in an f64; above, refuse rather than round
        Number::Float(f) if f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f) => {
            f as u64
        }
        Number::Float(f) => {
            return Err(E::custom(format_args!(
                "invalid value: {f}, expected a non-negative integer"
            )));
        }
    };
    T::try_from(v).map_err(|_| E::custom(format_args!("invalid value: {v} is out of range")))
}

/// A required integer field.
pub fn plain<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    to_int(Number::deserialize(d)?)
}

/// An optional integer field (`null` or absent: `None`; pair with `#[serde(default)]`).
pub fn option<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<Number>::deserialize(d)?.map(to_int).transpose()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct S {
        #[serde(deserialize_with = "super::plain")]
        n: u32,
        #[serde(default, deserialize_with = "super::option")]
        o: Option<u64>,
    }

    fn parse(s: &str) -> Result<S, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_integers_and_the_rest_is_refused() {
        let s = parse(r#"{"n": 3.0, "o": 7}"#).unwrap();
        assert_eq!((s.n, s.o), (3, Some(7)));
        assert_eq!(parse(r#"{"n": 3}"#).unwrap().o, None);
        assert_eq!(parse(r#"{"n": 3, "o": null}"#).unwrap().o, None);
        for bad in [
            r#"{"n": 3.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
