//! Opaque cursors: exactly which notifications a client has already been given.
//!
//! # Why not "the highest id seen"
//! Ids come from a sequence when a row is inserted, but transactions commit in any order: id 7
//! can become visible after id 8 has been delivered. A cursor of "max id" would skip 7 for ever.
//!
//! # The model
//! Every row records the transaction that wrote it (`notifications.txid`, an `xid8`). A
//! PostgreSQL snapshot (`pg_current_snapshot()`: `xmin:xmax:in-progress list`) says exactly
//! which transactions had finished when it was taken, and a later snapshot always sees a
//! superset of an earlier one. So "everything visible in snapshot S" is a precise, gap-free
//! description of what a reader has had, however commits interleave.
//!
//! A [`Cursor`] is "everything visible in `base`", plus optionally a [`Tail`]: "and, of what
//! `upto` adds to that, the rows with id ≤ `last_id`". The tail exists because a page (or a
//! live batch) can be cut part-way through what one snapshot adds. Readers take what a
//! snapshot adds in id order, so every prefix of their reading is expressible as a cursor.
//!
//! This module is pure: it knows nothing of SQL, HTTP or the hub.

use std::cmp::Reverse;
use std::fmt::{self, Write as _};
use std::sync::Arc;

/// A PostgreSQL transaction id (`xid8`: 64 bits, never wraps around).
pub type Xid = u64;

/// The longest cursor text accepted: a snapshot lists the transactions in progress when it was
/// taken, which `max_connections` bounds far below this.
const MAX_CURSOR_LEN: usize = 64 * 1024;

/// Which transactions had completed when a snapshot was taken (PostgreSQL's `pg_snapshot`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    xmin: Xid,
    xmax: Xid,
    /// In progress when taken; sorted, all in `xmin..xmax`. Shared: every row of a read
    /// carries the read's snapshot in its cursor.
    xip: Arc<[Xid]>,
}

impl Snapshot {
    /// True if transaction `xid` had completed when this snapshot was taken (its rows, if it
    /// committed, are visible in it). Same rule as SQL's `pg_visible_in_snapshot`.
    pub fn is_visible(&self, xid: Xid) -> bool {
        xid < self.xmin || (xid < self.xmax && self.xip.binary_search(&xid).is_err())
    }

    /// True if this snapshot was taken no earlier than `other`, and so sees all it sees.
    ///
    /// `xmax` is one past the newest completed transaction and never goes back. With equal
    /// `xmax`, no transaction below it can start in between, so the later snapshot has the
    /// same or fewer transactions in progress.
    pub fn is_at_or_after(&self, other: &Snapshot) -> bool {
        (self.xmax, Reverse(self.xip.len())) >= (other.xmax, Reverse(other.xip.len()))
    }

    /// Every transaction below this had completed when the snapshot was taken.
    pub fn xmin(&self) -> Xid {
        self.xmin
    }

    /// One past the newest transaction that had completed when the snapshot was taken.
    pub fn xmax(&self) -> Xid {
        self.xmax
    }

    /// Transactions in `xmin..xmax` still in progress when the snapshot was taken.
    pub fn in_progress(&self) -> &[Xid] {
        &self.xip
    }

    /// Parses PostgreSQL's text form, `xmin:xmax:xip,xip,...`, checking its invariants.
    pub fn parse(text: &str) -> Result<Snapshot, CursorError> {
        let mut parts = text.splitn(3, ':');
        let (Some(xmin), Some(xmax), Some(xip)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CursorError);
        };
        let xmin = parse_u64(xmin)?;
        let xmax = parse_u64(xmax)?;
        let xip = if xip.is_empty() {
            Vec::new()
        } else {
            xip.split(',')
                .map(parse_u64)
                .collect::<Result<Vec<_>, _>>()?
        };
        let sorted = xip.windows(2).all(|w| w[0] < w[1]);
        let in_range = xip.iter().all(|x| (xmin..xmax).contains(x));
        if xmin == 0 || xmin > xmax || !sorted || !in_range {
            return Err(CursorError);
        }
        Ok(Snapshot {
            xmin,
            xmax,
            xip: xip.into(),
        })
    }
}

impl fmt::Display for Snapshot {
    /// PostgreSQL's text form, which `::pg_snapshot` casts back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, xid) in self.xip.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{xid}")?;
        }
        Ok(())
    }
}

/// The part of a cursor that is partway through what snapshot `upto` adds to `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    /// The snapshot whose additions are partly consumed.
    pub upto: Snapshot,
    /// Of those additions, rows with an id up to this one are consumed.
    pub last_id: i64,
}

/// A position in the stream of committed notifications: what a reader has consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Every row visible in this snapshot is consumed.
    pub base: Snapshot,
    /// Part of what a later snapshot adds is consumed too.
    pub tail: Option<Tail>,
}

impl Cursor {
    /// The cursor that has consumed everything visible in `snapshot`, and nothing more.
    pub fn at(snapshot: Snapshot) -> Cursor {
        Cursor {
            base: snapshot,
            tail: None,
        }
    }

    /// True if the row `(xid, id)` is consumed by this cursor.
    pub fn covers(&self, xid: Xid, id: i64) -> bool {
        self.base.is_visible(xid)
            || self
                .tail
                .as_ref()
                .is_some_and(|t| t.upto.is_visible(xid) && id <= t.last_id)
    }

    /// The snapshot whose additions a reader is consuming next: the tail's, else the base.
    /// Rows visible in it come first, in id order, then the rest, in id order.
    pub fn upto(&self) -> &Snapshot {
        self.tail.as_ref().map_or(&self.base, |t| &t.upto)
    }

    /// Of [`Cursor::upto`]'s additions, rows with an id up to this are consumed.
    pub fn last_id(&self) -> i64 {
        self.tail.as_ref().map_or(0, |t| t.last_id)
    }

    /// The cursor after also consuming row `(xid, id)`, read in order from a query whose
    /// snapshot was `now`. Rows are read in the order [`Cursor::upto`] describes.
    pub fn after_row(&self, now: &Snapshot, xid: Xid, id: i64) -> Cursor {
        match &self.tail {
            Some(t) if t.upto.is_visible(xid) => Cursor {
                base: self.base.clone(),
                tail: Some(Tail {
                    upto: t.upto.clone(),
                    last_id: id,
                }),
            },
            _ => Cursor {
                base: self.upto().clone(),
                tail: Some(Tail {
                    upto: now.clone(),
                    last_id: id,
                }),
            },
        }
    }

    /// The same position, re-expressed on `floor` when `floor` was taken later than `base`.
    ///
    /// For a stream that has consumed everything in `floor` (its replay) and now takes a live
    /// row that `floor` does not contain: the row's own cursor may start from an older base.
    pub fn rebased_on(&self, floor: &Snapshot) -> Cursor {
        if floor.is_at_or_after(&self.base) && floor != &self.base {
            Cursor {
                base: floor.clone(),
                tail: self.tail.clone(),
            }
        } else {
            self.clone()
        }
    }

    /// True if this cursor names a snapshot later than `now`: it did not come from this
    /// database as it is (another database, or a restored backup). Such a cursor is unknown.
    pub fn is_after(&self, now: &Snapshot) -> bool {
        !now.is_at_or_after(self.upto())
    }

    /// Parses a cursor as [`Cursor`]'s `Display` writes it.
    pub fn parse(text: &str) -> Result<Cursor, CursorError> {
        if text.len() > MAX_CURSOR_LEN {
            return Err(CursorError);
        }
        let mut parts = text.split('~');
        let base = Snapshot::parse(parts.next().ok_or(CursorError)?)?;
        let cursor = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => Cursor::at(base),
            (Some(upto), Some(last_id), None) => {
                let upto = Snapshot::parse(upto)?;
                let last_id = last_id.parse::<i64>().map_err(|_| CursorError)?;
                if last_id < 1 || !upto.is_at_or_after(&base) {
                    return Err(CursorError);
                }
                Cursor {
                    base,
                    tail: Some(Tail { upto, last_id }),
                }
            }
            _ => return Err(CursorError),
        };
        Ok(cursor)
    }
}

impl fmt::Display for Cursor {
    /// `base` or `base~upto~last_id`: digits, `:`, `,` and `~` only, so it is safe as an SSE
    /// `id:` and in a URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.base)?;
        if let Some(t) = &self.tail {
            write!(f, "~{}~{}", t.upto, t.last_id)?;
        }
        Ok(())
    }
}

/// Writes the text of the cursors of one read, row after row, formatting their snapshots once.
///
/// The rows of a read share their cursors' snapshots (one pair, or two after a full batch)
/// and otherwise differ in the last id only; written one by one, each row's text would format
/// two snapshots anew, 64 transaction ids for a row read while 32 writers run.
#[derive(Default)]
pub struct CursorWriter {
    /// The last tail's snapshots, and the text of a cursor on them up to its last id.
    shared: Option<(Snapshot, Snapshot, String)>,
}

impl CursorWriter {
    /// `cursor.to_string()`.
    pub fn text(&mut self, cursor: &Cursor) -> String {
        let Some(tail) = &cursor.tail else {
            return cursor.to_string();
        };
        let prefix = match &self.shared {
            Some((base, upto, prefix)) if *base == cursor.base && *upto == tail.upto => prefix,
            _ => {
                let prefix = format!("{}~{}~", cursor.base, tail.upto);
                let shared = (cursor.base.clone(), tail.upto.clone(), prefix);
                &self.shared.insert(shared).2
            }
        };
        let mut text = String::with_capacity(prefix.len() + 20);
        text.push_str(prefix);
        write!(text, "{}", tail.last_id).expect("a String takes any text");
        text
    }
}

fn parse_u64(s: &str) -> Result<u64, CursorError> {
    // `u64::from_str` accepts a leading '+'; a cursor is only ever digits.
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CursorError);
    }
    s.parse().map_err(|_| CursorError)
}

/// The text is not a cursor herald wrote. Callers treat it as unknown (SPEC: `reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a herald cursor")]
pub struct CursorError;

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(s: &str) -> Snapshot {
        Snapshot::parse(s).unwrap()
    }

    #[test]
    fn visibility_follows_pg_visible_in_snapshot() {
        let s = snap("10:15:11,13");
        assert!(s.is_visible(9));
        assert!(s.is_visible(10));
        assert!(!s.is_visible(11));
        assert!(s.is_visible(12));
        assert!(!s.is_visible(13));
        assert!(s.is_visible(14));
        assert!(!s.is_visible(15));
        assert!(!s.is_visible(100));
    }

    #[test]
    fn a_later_snapshot_is_recognised_as_later() {
        let early = snap("10:15:11,13");
        let same_xmax_fewer_running = snap("11:15:13");
        let later = snap("13:20:13,17");
        assert!(same_xmax_fewer_running.is_at_or_after(&early));
        assert!(!early.is_at_or_after(&same_xmax_fewer_running));
        assert!(later.is_at_or_after(&early));
        assert!(!early.is_at_or_after(&later));
        assert!(early.is_at_or_after(&early));
    }

    #[test]
    fn cursors_round_trip_through_text() {
        for text in ["3:3:", "10:15:11,13", "10:15:11~12:20:19~42"] {
            assert_eq!(Cursor::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn text_herald_did_not_write_is_refused() {
        for text in [
            "",
            "abc",
            "1:2",
            "0:0:",
            "5:3:",
            "10:15:16",
            "10:15:13,11",
            "10:15:11,11",
            "+10:15:",
            "10:15:~10:16:~",
            "10:15:~9:9:~4",
            "10:15:~10:16:~0",
            "10:15:~10:16:~1~2",
            "10:15:~10:16:~-1",
            "99999999999999999999999:1:",
        ] {
            assert_eq!(Cursor::parse(text), Err(CursorError), "{text:?}");
        }
        assert!(Cursor::parse(&"1".repeat(MAX_CURSOR_LEN + 1)).is_err());
    }

    /// A simulated history: transactions (xid, row id) commit in an order unrelated to their
    /// ids, and a reader reads pages of two rows each at snapshots taken between commits.
    /// Whatever the interleaving, it must read every committed row exactly once.
    #[test]
    fn paging_through_out_of_order_commits_reads_every_row_exactly_once() {
        // (xid, row id) in commit order: row ids were taken in begin order, commits scrambled.
        let commits: &[(Xid, i64)] = &[(12, 3), (10, 1), (14, 5), (11, 2), (15, 6), (13, 4)];
        let all_xids: Vec<Xid> = (10..=15).collect();

        // The snapshot after the first `n` commits: everything not yet committed is running.
        let snapshot_after = |n: usize| {
            let done: Vec<Xid> = commits[..n].iter().map(|c| c.0).collect();
            let running: Vec<Xid> = all_xids
                .iter()
                .copied()
                .filter(|x| !done.contains(x))
                .collect();
            let xmax = done.iter().max().map_or(10, |m| m + 1);
            let xmin = running.first().copied().unwrap_or(xmax).min(xmax);
            let xip: Vec<Xid> = running.into_iter().filter(|x| *x < xmax).collect();
            Snapshot {
                xmin,
                xmax,
                xip: xip.into(),
            }
        };
        // What a query at `now` after `cursor` returns, in the documented order.
        let query = |cursor: &Cursor, now: &Snapshot, limit: usize| {
            let mut rows: Vec<(Xid, i64)> = commits
                .iter()
                .copied()
                .filter(|(x, id)| now.is_visible(*x) && !cursor.covers(*x, *id))
                .collect();
            rows.sort_by_key(|(x, id)| (!cursor.upto().is_visible(*x), *id));
            rows.truncate(limit);
            rows
        };

        for reads_between in 1..=3 {
            let mut cursor = Cursor::at(snapshot_after(0));
            let mut seen = Vec::new();
            for committed in 0..=commits.len() {
                let now = snapshot_after(committed);
                for _ in 0..reads_between {
                    let page = query(&cursor, &now, 2);
                    let full = page.len() == 2;
                    for (xid, id) in &page {
                        cursor = cursor.after_row(&now, *xid, *id);
                        seen.push(*id);
                    }
                    if !full {
                        cursor = Cursor::at(now.clone());
                    }
                    // Every cursor survives the trip through its text form.
                    cursor = Cursor::parse(&cursor.to_string()).unwrap();
                }
            }
            let mut drained = query(&cursor, &snapshot_after(commits.len()), 100);
            seen.extend(drained.drain(..).map(|(_, id)| id));
            seen.sort();
            assert_eq!(
                seen,
                vec![1, 2, 3, 4, 5, 6],
                "reads_between={reads_between}"
            );
        }
    }

    #[test]
    fn a_cursor_writer_writes_what_display_writes_while_the_snapshots_change() {
        let now = snap("11:20:11,13,17");
        let first = Cursor::at(snap("10:15:11,13")).after_row(&now, 14, 5);
        let second = first.after_row(&now, 16, 6);
        // A read on a new snapshot: the tail's snapshot becomes the base.
        let later = second.after_row(&snap("13:21:13,17"), 11, 2);
        // The same snapshots parsed anew: equal, not shared.
        let equal =
            Cursor::parse(&later.to_string())
                .unwrap()
                .after_row(&snap("13:21:13,17"), 11, 9);
        // The same base with another `upto`, and another base with the same `upto`.
        let other_upto = Cursor::at(snap("10:15:11,13")).after_row(&snap("11:21:11,13"), 14, 5);
        let other_base = first.rebased_on(&snap("11:15:13"));
        let cursors = [
            first.clone(),
            other_upto,
            other_base,
            second,
            Cursor::at(now.clone()),
            later,
            equal,
            Cursor::at(snap("13:21:13,17")),
            first,
        ];
        let mut writer = CursorWriter::default();
        for cursor in &cursors {
            assert_eq!(writer.text(cursor), cursor.to_string());
        }
    }

    #[test]
    fn a_cursor_from_a_later_snapshot_is_after_now() {
        let now = snap("10:15:11");
        assert!(Cursor::parse("20:25:").unwrap().is_after(&now));
        assert!(Cursor::parse("5:9:~10:16:~3").unwrap().is_after(&now));
        assert!(!Cursor::parse("5:9:").unwrap().is_after(&now));
        assert!(!Cursor::at(now.clone()).is_after(&now));
    }

    #[test]
    fn rebasing_moves_an_older_base_up_to_the_floor_only() {
        let row = Cursor::parse("5:9:~10:16:11~12").unwrap();
        let floor = snap("10:14:11,12");
        assert_eq!(row.rebased_on(&floor).base, floor);
        let old_floor = snap("3:4:");
        assert_eq!(row.rebased_on(&old_floor), row);
    }
}
