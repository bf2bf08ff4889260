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
//!
//! # What the log holds
//! Each read of the listener is kept twice over: its rows (their JSON, for answers after a
//! cursor) while they are among the newest [`MAX_ROWS`], and a [`Summary`] (which transactions
//! added how many rows on which channel, and what else changed) for longer. Counts and pages
//! are checked against summaries only, so a check costs a lookup per channel and read, not a
//! look at every row; and an entry outlives the rows of a bulk insert, which the listener
//! reads faster than 5,000 users poll: with the rows' window alone, entries fell off before
//! their users came back, and every page went to the database again, again and again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytestring::ByteString;

use crate::channels;
use crate::cursor::{Cursor, Snapshot, Xid};
use crate::models::Counts;

use super::Batch;

/// Rows whose JSON the log keeps: a client whose cursor is older is answered from the
/// database, so this only needs to cover a few polling intervals of traffic.
const MAX_ROWS: usize = 20_000;
/// Entries the log keeps (an entry with changes but no rows still takes one).
const MAX_ENTRIES: usize = 20_000;
/// (channel, transaction) pairs the summaries keep, ~50 bytes each: the rows of a
/// 100,000-row bulk insert over 5,000 users take up to one each.
const MAX_ADDED: usize = 200_000;
/// Users whose unread count is kept, and newest pages kept.
const MAX_COUNTS: usize = 100_000;
const MAX_PAGES: usize = 50_000;

/// A change that matches every channel, or every user (a truncate).
const EVERY: &str = "*";

/// A position in the log: the entries from this one on are after it.
pub type Seq = u64;

/// What one read of the listener changed, without its rows' JSON: enough to check a count or
/// a page against it. Made by [`Summary::of`] before the hub's lock is taken.
pub struct Summary {
    /// (channel, txid, rows): how many rows each transaction added on each channel, sorted.
    added: Vec<(Box<str>, Xid, u32)>,
    changed: Vec<String>,
    readers: Vec<String>,
}

impl Summary {
    /// The summary of `batch`.
    pub fn of(batch: &Batch) -> Summary {
        let mut pairs: Vec<(&str, Xid)> = batch
            .rows
            .iter()
            .map(|r| (r.channel.as_str(), r.txid))
            .collect();
        pairs.sort_unstable();
        let mut added: Vec<(Box<str>, Xid, u32)> = Vec::new();
        for (channel, txid) in pairs {
            match added.last_mut() {
                Some((c, t, n)) if **c == *channel && *t == txid => *n += 1,
                _ => added.push((channel.into(), txid, 1)),
            }
        }
        Summary {
            added,
            changed: batch.changed.clone(),
            readers: batch.readers.clone(),
        }
    }

    /// How many rows the read added on `channel`, by transaction.
    fn added_on<'a>(&'a self, channel: &'a str) -> impl Iterator<Item = (Xid, u32)> + 'a {
        let start = self.added.partition_point(|(c, ..)| &**c < channel);
        self.added[start..]
            .iter()
            .take_while(move |(c, ..)| &**c == channel)
            .map(|&(_, txid, rows)| (txid, rows))
    }

    /// True if the read added a row on `channel` that snapshot `at` does not see.
    fn added_after(&self, channel: &str, at: &Snapshot) -> bool {
        self.added_on(channel).any(|(txid, _)| !at.is_visible(txid))
    }

    /// True if the read changed any of `channels` otherwise than by inserts.
    fn changed_any(&self, channels: &[String]) -> bool {
        self.changed
            .iter()
            .any(|c| c == EVERY || channels.contains(c))
    }

    /// True if the read changed `user_id`'s read state (or everyone's).
    fn touches_reader(&self, user_id: &str) -> bool {
        self.readers.iter().any(|r| r == EVERY || r == user_id)
    }
}

/// What happened, in the order the listener saw it.
enum Event {
    /// One read of the listener, with its rows while the log holds them.
    Published(Summary, Option<Arc<Batch>>),
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
    /// The seq of the oldest entry that may still hold its rows.
    rows_from: Seq,
    added_held: usize,
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

    /// Records one read of the listener, summarized by `summary`; an empty one only moves the
    /// head.
    pub fn published(&mut self, batch: Arc<Batch>, summary: Summary) {
        let after = batch.after.clone();
        if !(batch.rows.is_empty() && batch.changed.is_empty() && batch.readers.is_empty()) {
            self.rows_held += batch.rows.len();
            self.added_held += summary.added.len();
            self.push(Event::Published(summary, Some(batch)));
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
        // The oldest rows go first; their summaries stay for as long as the others allow.
        while self.rows_held > MAX_ROWS {
            let Some(entry) = self
                .rows_from
                .checked_sub(self.first)
                .and_then(|i| self.entries.get_mut(i as usize))
            else {
                break;
            };
            if let Event::Published(_, rows) = &mut entry.event
                && let Some(batch) = rows.take()
            {
                self.rows_held -= batch.rows.len();
            }
            self.rows_from += 1;
        }
        while self.entries.len() > MAX_ENTRIES || self.added_held > MAX_ADDED {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            if let Event::Published(summary, rows) = entry.event {
                self.added_held -= summary.added.len();
                self.rows_held -= rows.map_or(0, |batch| batch.rows.len());
            }
            self.first += 1;
        }
        self.rows_from = self.rows_from.max(self.first);
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
        let mut personal = None;
        for e in log {
            stale = match &e.event {
                Event::Published(summary, _) => {
                    let personal = personal.get_or_insert_with(|| channels::personal(user_id));
                    let stale = summary.changed.iter().any(|c| c == EVERY || inbox(c))
                        || summary.touches_reader(user_id);
                    added += summary
                        .added_on(personal)
                        .chain(summary.added_on(channels::BROADCAST))
                        .filter(|&(txid, _)| !entry.at.is_visible(txid))
                        .map(|(_, rows)| i64::from(rows))
                        .sum::<i64>();
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
                Event::Published(summary, _) => {
                    summary.touches_reader(&key.user_id)
                        || summary.changed_any(&key.channels)
                        || key
                            .channels
                            .iter()
                            .any(|c| summary.added_after(c, &page.at))
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
    /// saw more than the listener has yet), no older than the log's start, and what came
    /// since must still have its rows, fit in `limit` of them and hold no deletion, update or
    /// change to the reader's read state.
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
                // Its rows are gone: only the database can answer.
                Event::Published(_, None) => return None,
                Event::Published(summary, Some(batch)) => {
                    if summary.touches_reader(user_id) || summary.changed_any(shows) {
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

    fn publish(recent: &mut Recent, batch: Arc<Batch>) {
        let summary = Summary::of(&batch);
        recent.published(batch, summary);
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
        publish(
            &mut recent,
            read(
                vec![
                    row("user:1", 1, 10),
                    row("user:1", 2, 11),
                    row("user:1", 3, 12),
                    row("user:2", 4, 13),
                    row("broadcast", 5, 14),
                ],
                &[],
                "15:15:",
            ),
        );
        assert_eq!(
            recent.counts("1").map(|c| c.unread_count),
            Some(4),
            "rows 3 and 5 are new to it"
        );
        publish(&mut recent, read(vec![], &["2"], "16:16:"));
        assert_eq!(
            recent.counts("1").map(|c| c.unread_count),
            Some(4),
            "user 2's reads are not theirs"
        );
        publish(&mut recent, read(vec![], &["1"], "17:17:"));
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
        publish(&mut recent, read(vec![row("user:1", 1, 10)], &[], "11:11:"));
        publish(
            &mut recent,
            read(
                vec![row("user:1", 2, 11), row("user:1", 3, 12)],
                &[],
                "13:13:",
            ),
        );
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

    #[test]
    fn a_page_and_a_count_outlive_the_rows_of_a_bulk_insert_and_still_see_what_is_new() {
        let mut recent = started("10:10:");
        let key = PageKey {
            user_id: "1".into(),
            channels: vec!["user:1".into()],
            limit: 5,
            unread_only: false,
        };
        let old = Cursor::at(snap("10:10:"));
        // Read at 12:12:, which sees the bulk insert (txid 11) that the listener has yet to
        // read: more rows than the log keeps the JSON of, a few of them user 1's.
        let seq = recent.position();
        recent.fill_page(key.clone(), ("[]".into(), 0), snap("12:12:"), seq);
        recent.fill_count("1", counts(3), snap("12:12:"), seq);
        let users = 1_000;
        for batch in 0..(MAX_ROWS / users + 2) {
            let rows = (0..users)
                .map(|u| row(&format!("user:{}", u + 1), (batch * users + u) as i64, 11))
                .collect();
            publish(&mut recent, read(rows, &[], "12:12:"));
        }
        assert!(
            recent.rows_held <= MAX_ROWS,
            "the oldest rows' JSON is gone"
        );
        assert!(
            recent.after("1", &key.channels, &old, 1_000).is_none(),
            "an answer after a cursor needs the rows"
        );
        assert!(
            recent.newest(&key).is_some(),
            "the page saw every row of the bulk insert"
        );
        assert_eq!(recent.counts("1").map(|c| c.unread_count), Some(3));

        // A row it did not see, in a read whose rows are then pushed out too.
        publish(
            &mut recent,
            read(vec![row("user:1", 1_000_000, 12)], &[], "13:13:"),
        );
        for batch in 0..(MAX_ROWS / users + 2) {
            let rows = (0..users)
                .map(|u| row("user:2", (2_000_000 + batch * users + u) as i64, 13))
                .collect();
            publish(&mut recent, read(rows, &[], "14:14:"));
        }
        assert_eq!(
            recent.counts("1").map(|c| c.unread_count),
            Some(4),
            "counted from the summary"
        );
        assert!(recent.newest(&key).is_none(), "the page is out of date");
    }
}
