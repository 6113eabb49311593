//! The private name a file takes at the origin while an item holds it.
//!
//! Before a file is read, its item renames it at the origin to `.visitas-inflight-<id>-<name>`:
//! the listing pattern does not match it, a sender re-uploading `<name>` creates a new file
//! beside it, and only attempts of that item ever touch it. The dispatcher still sees these
//! names, so a file left there (a crash, a failure) is found again.

use super::remote_name::{RemoteName, RemoteNameError};

const PREFIX: &str = ".visitas-inflight-";

/// The in-flight name of item `item_id`'s file `name` (refused when it would be longer
/// than a file name may be).
pub fn in_flight_name(item_id: i64, name: &RemoteName) -> Result<RemoteName, RemoteNameError> {
    RemoteName::parse(&format!("{PREFIX}{item_id}-{name}"))
}

/// The item id and original name of an in-flight name, or `None` for any other name.
pub fn parse_in_flight(name: &str) -> Option<(i64, &str)> {
    let (id, original) = name.strip_prefix(PREFIX)?.split_once('-')?;
    Some((id.parse().ok()?, original))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_names_round_trip_and_nothing_else_parses() {
        let name = RemoteName::parse("report_12.txt").unwrap();
        let taken = in_flight_name(42, &name).unwrap();
        assert_eq!(taken.as_str(), ".visitas-inflight-42-report_12.txt");
        assert_eq!(parse_in_flight(taken.as_str()), Some((42, "report_12.txt")));
        for other in [
            "report_12.txt",
            ".visitas-inflight-x-report_1.txt",
            ".visitas-inflight-7",
        ] {
            assert_eq!(parse_in_flight(other), None, "{other}");
        }
    }
}
