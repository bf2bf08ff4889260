//! Channel names, inboxes and grants: who may read which channel (SPEC section 2).
//!
//! - `user:<id>` is the inbox of user `<id>`: only they read it, whatever their grants say.
//! - `broadcast` is read by every authenticated user.
//! - Any other channel is read by users whose token grants it, exactly or by a trailing-`*`
//!   pattern (`order:*`).
//!
//! Pure: no SQL, no HTTP. A valid name is what the `notifications_channel_valid` constraint
//! accepts, character for character ([`FORBIDDEN`] is written out in both places), so every
//! row the table takes can be asked for by name.

/// The channel every authenticated user reads.
pub const BROADCAST: &str = "broadcast";

/// The most channels one request may name.
pub const MAX_CHANNELS_PER_REQUEST: usize = 50;

const MAX_NAME_CHARS: usize = 200;

/// The characters a channel name may not contain besides `,` (it separates lists) and `*` (it
/// ends grant patterns): Unicode's White_Space and control characters, as inclusive ranges.
/// The `channel_rule` migration's constraint spells out the same ranges; a test checks that
/// this list is exactly `char::is_whitespace() || char::is_control()`.
pub const FORBIDDEN: &[(char, char)] = &[
    ('\u{0}', '\u{20}'),
    ('\u{7f}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// What every personal channel starts with: `user:<id>`.
pub const PERSONAL_PREFIX: &str = "user:";

/// The personal channel of `user_id`.
pub fn personal(user_id: &str) -> String {
    [PERSONAL_PREFIX, user_id].concat()
}

/// The user whose personal channel `channel` is, if it is one.
pub fn owner(channel: &str) -> Option<&str> {
    channel.strip_prefix(PERSONAL_PREFIX)
}

/// A user's inbox: their personal channel and `broadcast`. Unread counts cover exactly this.
pub fn inbox(user_id: &str) -> Vec<String> {
    with_inbox(user_id, &[])
}

/// `shows`, then whichever of `user_id`'s inbox channels it lacks: every channel a subscriber
/// showing `shows` hears from.
pub fn with_inbox(user_id: &str, shows: &[String]) -> Vec<String> {
    let mut channels = Vec::with_capacity(shows.len() + 2);
    channels.extend_from_slice(shows);
    if !shows.iter().any(|channel| owner(channel) == Some(user_id)) {
        channels.push(personal(user_id));
    }
    if !shows.iter().any(|channel| channel == BROADCAST) {
        channels.push(BROADCAST.to_owned());
    }
    channels
}

/// True if `channel` is in `user_id`'s inbox.
pub fn is_inbox(user_id: &str, channel: &str) -> bool {
    channel == BROADCAST || owner(channel) == Some(user_id)
}

/// True if a user with `grants` may read `channel`.
pub fn may_read(user_id: &str, grants: &[String], channel: &str) -> bool {
    if let Some(owner) = channel.strip_prefix("user:") {
        // Inboxes are private: no grant, not even `*`, opens someone else's.
        return owner == user_id;
    }
    channel == BROADCAST || grants.iter().any(|grant| grant_matches(grant, channel))
}

fn grant_matches(grant: &str, channel: &str) -> bool {
    match grant.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => grant == channel,
    }
}

/// True if `name` may be a channel (the database refuses other names).
pub fn is_valid_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars)
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '*')
}

/// True if `id` can be a user id: not empty (`user:` is nobody's inbox), and `user:<id>`
/// must be a valid channel name.
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty() && is_valid_name(&personal(id))
}

/// Parses a comma-separated channel list (`?channels=`): trimmed of ASCII spaces,
/// deduplicated, in order. Other whitespace is not trimmed but refused: `\u{a0}order:1` is
/// not `order:1` spelled loosely, it is no channel at all.
pub fn parse_list(list: &str) -> Result<Vec<String>, String> {
    let mut channels: Vec<String> = Vec::new();
    for name in list
        .split(',')
        .map(|name| name.trim_matches(|c: char| c.is_ascii_whitespace()))
    {
        if !is_valid_name(name) {
            let shown: String = name.chars().take(40).collect();
            return Err(format!(
                "{shown:?} is not a channel name (1-200 characters, no spaces, commas or '*')"
            ));
        }
        if !channels.iter().any(|c| c == name) {
            channels.push(name.to_owned());
        }
    }
    if channels.len() > MAX_CHANNELS_PER_REQUEST {
        return Err(format!(
            "at most {MAX_CHANNELS_PER_REQUEST} channels per request"
        ));
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_inbox_is_readable_by_its_owner_only_whatever_the_grants() {
        assert!(may_read("42", &[], "user:42"));
        assert!(!may_read("42", &[], "user:43"));
        assert!(!may_read(
            "42",
            &grants(&["*", "user:*", "user:43"]),
            "user:43"
        ));
        assert!(!may_read("4", &[], "user:42"));
    }

    #[test]
    fn broadcast_is_readable_by_everyone() {
        assert!(may_read("1", &[], BROADCAST));
    }

    #[test]
    fn other_channels_need_an_exact_or_pattern_grant() {
        let g = grants(&["order:*", "admin"]);
        assert!(may_read("1", &g, "order:17"));
        assert!(may_read("1", &g, "admin"));
        assert!(!may_read("1", &g, "admins"));
        assert!(!may_read("1", &g, "project:5"));
        assert!(!may_read("1", &[], "order:17"));
    }

    #[test]
    fn lists_are_trimmed_deduplicated_and_validated() {
        assert_eq!(
            parse_list(" a, b ,a").unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(parse_list("a,,b").is_err());
        assert!(parse_list("order:*").is_err());
        assert!(parse_list("a b").is_err());
        assert!(parse_list("\u{a0}order:1").is_err());
        assert!(parse_list("order:1\u{2003}").is_err());
        assert!(parse_list(&"x".repeat(201)).is_err());
        let many: Vec<String> = (0..51).map(|i| format!("c{i}")).collect();
        assert!(parse_list(&many.join(",")).is_err());
    }

    #[test]
    fn the_forbidden_ranges_are_exactly_unicode_whitespace_and_controls() {
        let listed = |c: char| FORBIDDEN.iter().any(|&(lo, hi)| (lo..=hi).contains(&c));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(
                listed(c),
                c.is_whitespace() || c.is_control(),
                "U+{:04X}",
                c as u32
            );
            assert_eq!(
                is_valid_name(&format!("a{c}b")),
                !listed(c) && c != ',' && c != '*',
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn inbox_membership() {
        assert!(is_inbox("42", "user:42"));
        assert!(is_inbox("42", "broadcast"));
        assert!(!is_inbox("42", "user:420"));
        assert!(!is_inbox("42", "order:1"));
    }

    #[test]
    fn a_subscriber_hears_what_it_shows_then_the_inbox_channels_it_does_not_show() {
        let names = |list: &[&str]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(inbox("42"), names(&["user:42", "broadcast"]));
        assert_eq!(
            with_inbox("42", &names(&["order:1"])),
            names(&["order:1", "user:42", "broadcast"])
        );
        assert_eq!(
            with_inbox("42", &names(&["broadcast", "order:1"])),
            names(&["broadcast", "order:1", "user:42"])
        );
        assert_eq!(
            with_inbox("42", &names(&["user:42", "broadcast"])),
            names(&["user:42", "broadcast"])
        );
        // Another user's channel is not this user's inbox.
        assert_eq!(
            with_inbox("42", &names(&["user:420"])),
            names(&["user:420", "user:42", "broadcast"])
        );
    }
}
