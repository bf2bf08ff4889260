//! What the hub remembers, so that most polls are answered without the database: a bounded
//! log of what the listener published, the unread counts of users who asked lately, and the
//! newest pages they were given, each kept exact by the log.
//!
//! # The contract
//! An answer from memory is the answer the database would give at the listener's last read
//! (the *head*): every insert, delete, update, truncate and read-state change committed before
//! that read is in it, whoever made it (herald, the app, `psql`), because all of them reach
//! the listener through that one ordered read (`herald_changes`, the `change_log` migration).
//! A change committed after it shows up in the next answer after the listener's next read,
//! the same moment a stream would see it. A user's own changes through this instance show up
//! in their very next answer ([`Recent::forget_reader`] and [`Recent::forget_channel`],
//! called once the change committed).
//!
//! # How an entry stays exact
//! A count or page read from the database at snapshot `S` is stored with the log position
//! `q` taken *before* the query. Everything published before `q` was committed before `S`, so
//! it is in the answer; everything after `q` is in the log, and is applied (a new row not
//! visible in `S` raises a count) or ends the entry (a row on a page's channels, a deletion,
//! a read-state change). An entry older than the log's start cannot be checked: it is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytestring::ByteString;

use crate::channels;
use crate::cursor::{Cursor, Snapshot};
use crate::models::Counts;

use super::Batch;

/// Rows the log keeps: a client whose cursor is older than the log is answered from the
/// database, so this only needs to cover a few polling intervals of traffic.
const MAX_ROWS: usize = 20_000;
/// Entries the log keeps (an entry with changes but no rows still takes one).
const MAX_ENTRIES: usize = 20_000;
/// Users whose unread count is kept, and newest pages kept.
const MAX_COUNTS: usize = 100_000;
const MAX_PAGES: usize = 50_000;

/// A change that matches every channel, or every user (a truncate).
const EVERY: &str = "*";

/// A position in the log: the entries from this one on are after it.
pub type Seq = u64;

/// What happened, in the order the listener saw it.
enum Event {
    /// One read of the listener.
    Published(Arc<Batch>),
    /// This user's read state changed through this instance (read-your-writes).
    Reader(String),
    /// A notification on this channel was published through this instance.
    Channel(String),
    /// Something may have been missed (the listener reconnected): nothing can be checked.
    Everything,
}

struct Entry {
    /// The listener's position before this entry: what was published before it.
    before: Option<Cursor>,
    event: Event,
}

/// A user's counts: `counts` at snapshot `at`, with the log applied up to `seq`.
struct Count {
    counts: Counts,
    at: Snapshot,
    seq: Seq,
}

/// Which newest page: whose, on which channels, how many, unread only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The reader.
    pub user_id: String,
    /// Their channels, as asked.
    pub channels: Vec<String>,
    /// `limit`.
    pub limit: i64,
    /// `unread=true`.
    pub unread_only: bool,
}

/// A newest page: its notifications as one JSON array, exact at `at`, checked up to `seq`.
struct Page {
    notifications: ByteString,
    rows: usize,
    at: Snapshot,
    seq: Seq,
}

/// An answer from memory.
#[derive(Debug)]
pub struct Answer {
    /// The notifications as a JSON array.
    pub notifications: ByteString,
    /// How many there are (for the metrics).
    pub rows: usize,
    /// When each was inserted, for the delivery-latency histogram (live rows only).
    pub created: Vec<chrono::DateTime<chrono::Utc>>,
    /// The reader's counts.
    pub counts: Counts,
    /// The position after the answer.
    pub cursor: Cursor,
}

/// See the module docs.
#[derive(Default)]
pub struct Recent {
    entries: VecDeque<Entry>,
    /// The seq of `entries[0]`.
    first: Seq,
    /// The listener's position: everything up to here is published (`None`: not started).
    head: Option<Cursor>,
    rows_held: usize,
    counts: HashMap<String, Count>,
    pages: HashMap<PageKey, Page>,
}

impl Recent {
    /// The listener starts reading after `start`.
    pub fn start_at(&mut self, start: Cursor) {
        self.head = Some(start);
    }

    /// Where the log ends: take it before a query whose answer will be [`Recent::fill_count`]ed
    /// or [`Recent::fill_page`]d.
    pub fn position(&self) -> Seq {
        self.first + self.entries.len() as Seq
    }

    /// Records one read of the listener; an empty one only moves the head.
    pub fn published(&mut self, batch: Arc<Batch>) {
        let after = batch.after.clone();
        if !(batch.rows.is_empty() && batch.changed.is_empty() && batch.readers.is_empty()) {
            self.rows_held += batch.rows.len();
            self.push(Event::Published(batch));
        }
        self.head = Some(after);
    }

    /// `user_id` changed their read state through this instance (committed).
    pub fn forget_reader(&mut self, user_id: &str) {
        self.push(Event::Reader(user_id.to_owned()));
    }

    /// A notification on `channel` was published through this instance (committed).
    pub fn forget_channel(&mut self, channel: &str) {
        self.push(Event::Channel(channel.to_owned()));
    }

    /// Nothing remembered can be trusted any more.
    pub fn forget_everything(&mut self) {
        self.push(Event::Everything);
        self.counts.clear();
        self.pages.clear();
    }

    fn push(&mut self, event: Event) {
        self.entries.push_back(Entry {
            before: self.head.clone(),
            event,
        });
        while self.rows_held > MAX_ROWS || self.entries.len() > MAX_ENTRIES {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            if let Event::Published(batch) = entry.event {
                self.rows_held -= batch.rows.len();
            }
            self.first += 1;
        }
    }

    /// The entries from `seq` on, unless some of them are gone.
    fn since(&self, seq: Seq) -> Option<impl Iterator<Item = &Entry>> {
        let skip = seq.checked_sub(self.first)?;
        Some(self.entries.iter().skip(skip as usize))
    }

    /// The head as a plain snapshot, unless the listener is partway through a snapshot's rows.
    fn head_snapshot(&self) -> Option<&Snapshot> {
        self.head
            .as_ref()
            .filter(|h| h.tail.is_none())
            .map(|h| &h.base)
    }

    /// The head, if it is a plain snapshot newer than `at`: an answer exact at `at` with
    /// nothing in the log since is exact at the head too (every row visible at `at` is
    /// published by now, so later rows are all new to it), and moves there.
    fn newer_head(&self, at: &Snapshot) -> Option<Snapshot> {
        self.head_snapshot()
            .filter(|h| *h != at && h.is_at_or_after(at))
            .cloned()
    }

    /// Stores `user_id`'s counts, read at snapshot `at` by a query that started at log
    /// position `seq`.
    pub fn fill_count(&mut self, user_id: &str, counts: Counts, at: Snapshot, seq: Seq) {
        if self.counts.len() >= MAX_COUNTS {
            let first = self.first;
            self.counts.retain(|_, c| c.seq >= first);
            if self.counts.len() >= MAX_COUNTS {
                self.counts.clear();
            }
        }
        let fresher = self.counts.get(user_id).is_none_or(|c| c.seq < seq);
        if fresher {
            self.counts
                .insert(user_id.to_owned(), Count { counts, at, seq });
        }
    }

    /// `user_id`'s counts at the head, if they are known.
    pub fn counts(&mut self, user_id: &str) -> Option<Counts> {
        // As `newest`: looked at in place, updated in place.
        let entry = self.counts.get(user_id)?;
        let inbox = |channel: &str| channels::is_inbox(user_id, channel);
        let Some(log) = self.since(entry.seq) else {
            self.counts.remove(user_id);
            return None;
        };
        let mut added = 0;
        let mut stale = false;
        for e in log {
            stale = match &e.event {
                Event::Published(batch) => {
                    let stale = batch.changed.iter().any(|c| c == EVERY || inbox(c))
                        || touches_reader(batch, user_id);
                    added += batch
                        .rows
                        .iter()
                        .filter(|r| inbox(&r.channel) && !entry.at.is_visible(r.txid))
                        .count() as i64;
                    stale
                }
                Event::Reader(who) => who == user_id,
                Event::Channel(c) => inbox(c),
                Event::Everything => true,
            };
            if stale {
                break;
            }
        }
        if stale {
            self.counts.remove(user_id);
            return None;
        }
        let now = self.position();
        let head = self.newer_head(&entry.at);
        let entry = self.counts.get_mut(user_id)?;
        entry.counts.add(added);
        entry.seq = now;
        if let Some(head) = head {
            entry.at = head;
        }
        Some(entry.counts)
    }

    /// Stores the newest page `key` asked for, read at snapshot `at` by a query that started
    /// at log position `seq`: `notifications` is its JSON array of `rows` notifications.
    pub fn fill_page(
        &mut self,
        key: PageKey,
        (notifications, rows): (ByteString, usize),
        at: Snapshot,
        seq: Seq,
    ) {
        if self.pages.len() >= MAX_PAGES {
            let first = self.first;
            self.pages.retain(|_, p| p.seq >= first);
            if self.pages.len() >= MAX_PAGES {
                self.pages.clear();
            }
        }
        let fresher = self.pages.get(&key).is_none_or(|p| p.seq < seq);
        if fresher {
            self.pages.insert(
                key,
                Page {
                    notifications,
                    rows,
                    at,
                    seq,
                },
            );
        }
    }

    /// The newest page `key` asks for, at the head, if it is known (and so is the count).
    pub fn newest(&mut self, key: &PageKey) -> Option<Answer> {
        // Looked at in place, then updated in place: a poll answered from here allocates
        // nothing for the lookup (polls that come back unchanged are most of them).
        let page = self.pages.get(key)?;
        // Older than the log, nothing can tell what changed since: as stale as a change.
        let stale = self.since(page.seq).is_none_or(|mut log| {
            log.any(|e| match &e.event {
                Event::Published(batch) => {
                    let newer = batch
                        .rows
                        .iter()
                        .any(|r| key.channels.contains(&r.channel) && !page.at.is_visible(r.txid));
                    let changed = batch
                        .changed
                        .iter()
                        .any(|c| c == EVERY || key.channels.contains(c));
                    newer || changed || touches_reader(batch, &key.user_id)
                }
                Event::Reader(who) => *who == key.user_id,
                Event::Channel(c) => key.channels.contains(c),
                Event::Everything => true,
            })
        });
        if stale {
            self.pages.remove(key);
            return None;
        }
        let now = self.position();
        let head = self.newer_head(&page.at);
        let counts = self.counts(&key.user_id);
        let page = self.pages.get_mut(key)?;
        page.seq = now;
        if let Some(head) = head {
            page.at = head;
        }
        counts.map(|counts| Answer {
            notifications: page.notifications.clone(),
            rows: page.rows,
            created: Vec::new(),
            counts,
            cursor: Cursor::at(page.at.clone()),
        })
    }

    /// What `user_id` reading `shows` has not had after `cursor`, at the head, if memory can
    /// tell: the cursor must be no later than the head (else it may come from a query that
    /// saw more than the listener has yet), no newer than the log's start, and what came
    /// since must fit in `limit` rows and hold no deletion, update or change to the reader's
    /// read state.
    pub fn after(
        &mut self,
        user_id: &str,
        shows: &[String],
        cursor: &Cursor,
        limit: i64,
    ) -> Option<Answer> {
        let head = self.head_snapshot()?.clone();
        if !head.is_at_or_after(cursor.upto()) {
            return None;
        }
        // Everything after the latest point the cursor is past is in the entries from there
        // on (the points only move forward).
        let from = if cursor.base.is_at_or_after(&head) {
            self.entries.len()
        } else {
            self.entries.iter().rposition(|e| {
                e.before
                    .as_ref()
                    .is_some_and(|b| b.tail.is_none() && cursor.base.is_at_or_after(&b.base))
            })?
        };
        let mut rows = Vec::new();
        for e in self.entries.iter().skip(from) {
            match &e.event {
                Event::Published(batch) => {
                    let changed = batch
                        .changed
                        .iter()
                        .any(|c| c == EVERY || shows.contains(c));
                    if changed || touches_reader(batch, user_id) {
                        return None;
                    }
                    rows.extend(
                        batch
                            .rows
                            .iter()
                            .filter(|r| shows.contains(&r.channel) && !cursor.covers(r.txid, r.id)),
                    );
                    if rows.len() as i64 > limit {
                        return None;
                    }
                }
                Event::Reader(who) if who == user_id => return None,
                Event::Channel(c) if shows.contains(c) => return None,
                Event::Reader(_) | Event::Channel(_) => {}
                Event::Everything => return None,
            }
        }
        let notifications = json_array(rows.iter().map(|r| r.json.as_ref()));
        let created = rows.iter().map(|r| r.created_at).collect();
        let count = rows.len();
        let counts = self.counts(user_id)?;
        Some(Answer {
            notifications,
            rows: count,
            created,
            counts,
            cursor: Cursor::at(head),
        })
    }
}

/// True if `batch` changed `user_id`'s read state (or everyone's).
fn touches_reader(batch: &Batch, user_id: &str) -> bool {
    batch.readers.iter().any(|r| r == EVERY || r == user_id)
}

/// The JSON array of these JSON values.
fn json_array<'a>(items: impl Iterator<Item = &'a str> + Clone) -> ByteString {
    let mut array = String::with_capacity(2 + items.clone().map(|i| i.len() + 1).sum::<usize>());
    array.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(item);
    }
    array.push(']');
    array.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::LiveRow;

    fn snap(text: &str) -> Snapshot {
        Snapshot::parse(text).unwrap()
    }

    fn row(channel: &str, id: i64, txid: u64) -> LiveRow {
        let cursor = Cursor::at(snap(&format!("{}:{}:", txid + 1, txid + 1)));
        LiveRow {
            id,
            channel: channel.into(),
            txid,
            event_id: cursor.to_string(),
            cursor,
            json: format!(r#"{{"id":{id}}}"#).into(),
            created_at: chrono::Utc::now(),
        }
    }

    /// A read that found `rows` and left the listener at snapshot `after`.
    fn read(rows: Vec<LiveRow>, readers: &[&str], after: &str) -> Arc<Batch> {
        Arc::new(Batch {
            rows,
            changed: Vec::new(),
            readers: readers.iter().map(|r| r.to_string()).collect(),
            after: Cursor::at(snap(after)),
        })
    }

    /// Counts of a user with nothing seen: as many unseen as unread.
    fn counts(unread: i64) -> Counts {
        Counts {
            unread_count: unread,
            unseen_count: unread,
        }
    }

    fn started(at: &str) -> Recent {
        let mut recent = Recent::default();
        recent.start_at(Cursor::at(snap(at)));
        recent
    }

    #[test]
    fn a_count_grows_by_new_inbox_rows_only_and_ends_with_a_read_state_change() {
        let mut recent = started("10:10:");
        let seq = recent.position();
        // Counted at 10:12: (txid 10 and 11 visible), before the listener read them.
        recent.fill_count("1", counts(2), snap("12:12:"), seq);
        recent.published(read(
            vec![
                row("user:1", 1, 10),
                row("user:1", 2, 11),
                row("user:1", 3, 12),
                row("user:2", 4, 13),
                row("broadcast", 5, 14),
            ],
            &[],
            "15:15:",
        ));
        assert_eq!(
            recent.counts("1").map(|c| c.unread_count),
            Some(4),
            "rows 3 and 5 are new to it"
        );
        recent.published(read(vec![], &["2"], "16:16:"));
        assert_eq!(
            recent.counts("1").map(|c| c.unread_count),
            Some(4),
            "user 2's reads are not theirs"
        );
        recent.published(read(vec![], &["1"], "17:17:"));
        assert_eq!(recent.counts("1").map(|c| c.unread_count), None);
    }

    #[test]
    fn a_count_whose_query_began_before_a_change_is_not_trusted() {
        let mut recent = started("10:10:");
        let seq = recent.position();
        recent.forget_reader("1"); // committed while the query ran
        recent.fill_count("1", counts(3), snap("10:10:"), seq);
        assert_eq!(recent.counts("1").map(|c| c.unread_count), None);
    }

    #[test]
    fn after_a_cursor_come_the_rows_it_does_not_cover_or_nothing_when_memory_cannot_tell() {
        let mut recent = started("10:10:");
        recent.fill_count("1", counts(0), snap("10:10:"), recent.position());
        recent.published(read(vec![row("user:1", 1, 10)], &[], "11:11:"));
        recent.published(read(
            vec![row("user:1", 2, 11), row("user:1", 3, 12)],
            &[],
            "13:13:",
        ));
        let shows = ["user:1".to_string()];
        let after = |recent: &mut Recent, cursor: &str, limit| {
            recent.after("1", &shows, &Cursor::parse(cursor).unwrap(), limit)
        };

        let answer = after(&mut recent, "11:11:", 10).unwrap();
        assert_eq!(&*answer.notifications, r#"[{"id":2},{"id":3}]"#);
        assert_eq!(
            (answer.counts.unread_count, answer.cursor.to_string()),
            (3, "13:13:".into())
        );
        let at_head = after(&mut recent, "13:13:", 10).unwrap();
        assert_eq!(
            (at_head.rows, at_head.cursor.to_string()),
            (0, "13:13:".into())
        );

        assert!(
            after(&mut recent, "11:11:", 1).is_none(),
            "more than the limit"
        );
        assert!(
            after(&mut recent, "9:9:", 10).is_none(),
            "older than the log"
        );
        assert!(
            after(&mut recent, "14:14:", 10).is_none(),
            "past the head: the database has more than the listener read"
        );
    }
}
