//! `?channels=a,b` lists, straight from the query string.
//!
//! Checks that `channels::parse_list` never panics, and that every list it accepts holds only
//! names the database would store and grants can match: 1 to 200 characters, no whitespace,
//! control characters, ',' (the list separator) or '*' (the grant wildcard); also no duplicates
//! and at most `MAX_CHANNELS_PER_REQUEST` of them, as its documentation says. A name that slips
//! through would be refused by the database constraint (a 500 instead of a 400) or be
//! mistaken for a pattern.

#![no_main]

use herald::channels::{MAX_CHANNELS_PER_REQUEST, parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(channels) = parse_list(list) else {
        return;
    };
    assert!(
        (1..=MAX_CHANNELS_PER_REQUEST).contains(&channels.len()),
        "{list:?} gave {} channels",
        channels.len()
    );
    for (i, channel) in channels.iter().enumerate() {
        let chars = channel.chars().count();
        assert!(
            (1..=200).contains(&chars),
            "{list:?} gave {channel:?} ({chars} chars)"
        );
        assert!(
            !channel
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '*'),
            "{list:?} gave {channel:?}"
        );
        assert!(
            !channels[..i].contains(channel),
            "{list:?} gave {channel:?} twice"
        );
    }
});
