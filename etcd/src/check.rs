//! The oracle for real processes: a history of what each holder did while
//! it believed it held a lock or led, as lines appended to one file by the
//! commands themselves (`O_APPEND` writes on one host land in one total
//! order), checked for lease safety:
//!
//! - after `enter B`, nothing but B acts until B's `exit`: a line from any
//!   other holder in between is two holders acting at once (a holder
//!   killed without an `exit` is fine, as long as it never writes again);
//! - epochs strictly increase from one `enter` to the next, so a fencing
//!   token can tell every new holder from every older one.
//!
//! Lines: `enter ID EPOCH`, `act ID EPOCH`, `exit ID EPOCH`.

/// A violation, with the line number (from 1) where it shows.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub line: usize,
    pub what: String,
}

/// What a history held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: usize,
    pub terms: usize,
}

pub fn check(history: &str) -> Result<Summary, Violation> {
    let mut holder: Option<(String, u64)> = None;
    let mut last_epoch: Option<u64> = None;
    let mut summary = Summary::default();
    for (n, line) in history.lines().enumerate() {
        let n = n + 1;
        let bad = |what: String| Violation { line: n, what };
        let mut f = line.split(' ');
        let (Some(kind), Some(id), Some(epoch), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad(format!("not a history line: {line:?}")));
        };
        let epoch: u64 = epoch
            .parse()
            .map_err(|_| bad(format!("bad epoch in {line:?}")))?;
        summary.events += 1;
        match kind {
            "enter" => {
                if let Some(last) = last_epoch
                    && epoch <= last
                {
                    return Err(bad(format!(
                        "{id} entered with epoch {epoch}, not above {last}"
                    )));
                }
                last_epoch = Some(epoch);
                holder = Some((id.to_owned(), epoch));
                summary.terms += 1;
            }
            "act" | "exit" => match &holder {
                Some((h, e)) if h == id && *e == epoch => {
                    if kind == "exit" {
                        holder = None;
                    }
                }
                Some((h, e)) => {
                    return Err(bad(format!(
                        "{id} (epoch {epoch}) acted while {h} held epoch {e}"
                    )));
                }
                None => return Err(bad(format!("{id} (epoch {epoch}) acted holding nothing"))),
            },
            _ => return Err(bad(format!("unknown event {kind:?}"))),
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_history_passes_and_a_killed_holder_may_stay_silent() {
        let h = "enter a 5\nact a 5\nexit a 5\nenter b 7\nact b 7\nenter c 9\nact c 9\nexit c 9\n";
        assert_eq!(
            check(h),
            Ok(Summary {
                events: 8,
                terms: 3
            })
        );
    }

    #[test]
    fn overlaps_stale_epochs_and_orphans_are_caught_where_they_show() {
        let overlap = "enter a 5\nenter b 7\nact a 5\n";
        assert_eq!(check(overlap).unwrap_err().line, 3);
        let stale = "enter a 5\nexit a 5\nenter b 5\n";
        assert!(check(stale).unwrap_err().what.contains("not above 5"));
        let orphan = "enter a 5\nexit a 5\nact a 5\n";
        assert!(check(orphan).unwrap_err().what.contains("holding nothing"));
        assert!(check("enter a\n").is_err());
    }
}
