//! What a push carries: `{"id", "title", "body", "level", "data"}`, cut to fit the 4 KB a push
//! service takes once encrypted.

use serde_json::{Value, json};

/// The most plaintext bytes: with RFC 8291's header (86), tag (16) and the padding `ece` adds
/// (up to the next 128 bytes), the record stays within 4,096.
pub const MAX_PLAINTEXT: usize = 3800;

/// The payload of notification `id`. When it does not fit, `data` is reduced to its `url`
/// (what the click opens), then the body, then the title are cut, each ending in "…".
pub fn payload(id: i64, title: &str, body: &str, level: &str, data: &Value) -> Vec<u8> {
    let whole = json!({"id": id, "title": title, "body": body, "level": level, "data": data});
    let text = whole.to_string();
    if text.len() <= MAX_PLAINTEXT {
        return text.into_bytes();
    }
    let data = match data.get("url") {
        Some(Value::String(url)) if url.len() <= 1024 => json!({ "url": url }),
        _ => json!({}),
    };
    let frame = |title: &str, body: &str| {
        json!({"id": id, "title": title, "body": body, "level": level, "data": data}).to_string()
    };
    let room = MAX_PLAINTEXT.saturating_sub(frame("", "").len());
    let title = cut(title, room / 2);
    let body = cut(body, room - escaped_len(&title));
    frame(&title, &body).into_bytes()
}

/// `text` as is if its JSON string form takes at most `room` bytes, else its longest prefix
/// that does with "…" after it.
fn cut(text: &str, room: usize) -> String {
    if escaped_len(text) <= room {
        return text.to_owned();
    }
    let ellipsis = escaped_len("…");
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let len = escaped_len(c.encode_utf8(&mut [0; 4]));
        if used + len + ellipsis > room {
            break;
        }
        used += len;
        end = i + c.len_utf8();
    }
    format!("{}…", &text[..end])
}

/// Bytes `text` takes inside a JSON string (without the quotes).
fn escaped_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(0, |s| s.len() - 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_small_notification_is_sent_whole() {
        let data = json!({"url": "/orders/17", "order": 17});
        let p = parsed(&payload(5, "Shipped", "Order 17", "success", &data));
        assert_eq!(
            p,
            json!({"id": 5, "title": "Shipped", "body": "Order 17", "level": "success",
                   "data": data})
        );
    }

    #[test]
    fn a_large_one_keeps_its_url_and_is_cut_to_fit() {
        let data = json!({"url": "/orders/17", "blob": "x".repeat(5000)});
        let body = "é\"\n".repeat(3000);
        let bytes = payload(5, "Shipped", &body, "info", &data);
        assert!(bytes.len() <= MAX_PLAINTEXT, "{}", bytes.len());
        let p = parsed(&bytes);
        assert_eq!(p["data"], json!({"url": "/orders/17"}));
        assert_eq!(p["title"], "Shipped");
        let cut_body = p["body"].as_str().unwrap();
        assert!(cut_body.ends_with('…'));
        assert!(body.starts_with(cut_body.trim_end_matches('…')));
        assert!(cut_body.len() > 2000, "the body keeps what fits");
    }

    #[test]
    fn a_huge_title_is_cut_too() {
        let bytes = payload(
            1,
            &"t".repeat(10_000),
            &"b".repeat(10_000),
            "info",
            &json!(null),
        );
        assert!(bytes.len() <= MAX_PLAINTEXT);
        let p = parsed(&bytes);
        assert!(p["title"].as_str().unwrap().ends_with('…'));
        assert!(p["body"].as_str().unwrap().ends_with('…'));
        assert_eq!(p["data"], json!({}));
    }
}
