//! The query string, read as `application/x-www-form-urlencoded` without serde: every key is
//! decoded (keys are short), a value only when it is asked for.
//!
//! A poll carries its token in `?token=`, a few hundred bytes. With `web::Query` it was
//! decoded, and checked to be UTF-8, once for the token and again with the listing's
//! parameters, which skip it: ~15% of the instructions of a poll answered from memory
//! (BENCHMARKS.md, issue 28). Pure: no actix, no serde.

use std::borrow::Cow;

/// The pairs of `query` as form decoding splits them: on `&`, empty pieces skipped, each at
/// its first `=` (none: the value is empty). Keys come decoded, values raw ([`decode`]).
pub fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode(key), value)
        })
}

/// A raw key or value decoded: `+` is a space, `%XX` a byte, and what is then not UTF-8
/// becomes U+FFFD. Borrowed when there is nothing to decode.
pub fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(raw);
    }
    // `+` first: a `%2B` is a plus sign, not a space.
    let spaced = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy();
    Cow::Owned(decoded.into_owned())
}

/// `name` was given more than once.
#[derive(Debug, PartialEq, Eq)]
pub struct Repeated;

/// The value of `name`, decoded, if it is given once; [`Repeated`] if more often.
pub fn unique<'a>(query: &'a str, name: &str) -> Result<Option<Cow<'a, str>>, Repeated> {
    let mut found = None;
    for (key, value) in pairs(query) {
        if key == name && found.replace(value).is_some() {
            return Err(Repeated);
        }
    }
    Ok(found.map(decode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoded(query: &str) -> Vec<(String, String)> {
        pairs(query)
            .map(|(key, value)| (key.into_owned(), decode(value).into_owned()))
            .collect()
    }

    #[test]
    fn pairs_decode_as_forms_do() {
        assert_eq!(
            decoded("a=1&&b&c=x+y%2B%7A&%74oken=t=u"),
            [
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "x y+z".into()),
                ("token".into(), "t=u".into()),
            ]
        );
        assert_eq!(decode("%ff%41"), "\u{fffd}A");
    }

    #[test]
    fn a_value_is_unique_or_repeated_however_its_name_is_spelled() {
        assert_eq!(
            unique("limit=5&token=a%2Bb", "token"),
            Ok(Some("a+b".into()))
        );
        assert_eq!(unique("limit=5", "token"), Ok(None));
        assert_eq!(unique("token=a&%74oken=b", "token"), Err(Repeated));
    }

    proptest! {
        /// The same pairs as the `form_urlencoded` crate, which `web::Query` reads with.
        #[test]
        fn reads_what_form_urlencoded_reads(query in "[a-z0-9=&+%~:A-F\u{e9}]{0,40}") {
            let expected: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            prop_assert_eq!(decoded(&query), expected);
        }
    }
}
