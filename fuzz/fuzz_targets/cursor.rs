//! Cursor and snapshot text, which clients send back to us (`?after=`, `Last-Event-ID`).
//!
//! Checks that `Cursor::parse` and `Snapshot::parse` never panic on any text, and that
//! whatever they accept prints as text that parses again to the same value and prints the same
//! way (a client resuming from a cursor we wrote must land exactly where it left off). The
//! printed form must also be what `Cursor`'s `Display` promises, digits, `:`, `,` and `~`
//! only: cursors are sent as SSE `id:` lines, where a CR, LF or NUL would end or corrupt the
//! event, and in URLs.

#![no_main]

use herald::cursor::{Cursor, Snapshot};
use libfuzzer_sys::fuzz_target;

fn check_printed(printed: &str, input: &str) {
    assert!(
        !printed.contains(['\r', '\n', '\0']),
        "printed form {printed:?} of {input:?} would break an SSE id: line"
    );
    assert!(
        printed
            .bytes()
            .all(|b| b.is_ascii_digit() || b":,~".contains(&b)),
        "printed form {printed:?} of {input:?} has characters other than digits, ':', ',' and '~'"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(cursor) = Cursor::parse(text) {
        let printed = cursor.to_string();
        check_printed(&printed, text);
        let again = Cursor::parse(&printed).unwrap_or_else(|e| {
            panic!("{text:?} parsed but its printed form {printed:?} does not: {e}")
        });
        assert_eq!(
            again, cursor,
            "{text:?} -> {printed:?} parses to another cursor"
        );
        assert_eq!(
            again.to_string(),
            printed,
            "{text:?}: printing is not stable"
        );
    }

    if let Ok(snapshot) = Snapshot::parse(text) {
        let printed = snapshot.to_string();
        check_printed(&printed, text);
        let again = Snapshot::parse(&printed).unwrap_or_else(|e| {
            panic!("{text:?} parsed but its printed form {printed:?} does not: {e}")
        });
        assert_eq!(
            again, snapshot,
            "{text:?} -> {printed:?} parses to another snapshot"
        );
        assert_eq!(
            again.to_string(),
            printed,
            "{text:?}: printing is not stable"
        );
        // A snapshot is also a cursor (one with no tail), and prints the same way as one, as
        // long as it is within a cursor's length limit (64 KiB; libFuzzer's inputs are shorter).
        if printed.len() > 64 * 1024 {
            return;
        }
        let as_cursor = Cursor::parse(&printed)
            .unwrap_or_else(|e| panic!("snapshot {printed:?} is not a cursor: {e}"));
        assert_eq!(as_cursor, Cursor::at(snapshot));
        assert_eq!(as_cursor.to_string(), printed);
    }
});
