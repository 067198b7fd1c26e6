//! The cycle report's numbers as CSV (RFC 4180: comma-separated, CRLF line ends, a header
//! row), for spreadsheets. One table with a `row` column saying what each row counts:
//!
//! | column | `attendance` rows | `messages` rows |
//! | --- | --- | --- |
//! | `row` | `attendance` | `messages` |
//! | `session` | the coaching session's id | empty |
//! | `session_title` | its title | empty |
//! | `session_start_utc` | its start, RFC 3339 UTC (`2025-03-04T14:00:00Z`) | empty |
//! | `person` | the person's id | the person's id |
//! | `name` | their name | their name |
//! | `role` | `head`, `moderator`, `coordinator` or `former member` | the same |
//! | `minutes` | whole minutes in the session's call, 0 if absent | empty |
//! | `messages` | empty | chat messages written within the cycle |
//! | `joined_utc` | when they first joined the session's call, RFC 3339 UTC; empty if absent | empty |
//!
//! Attendance rows come first: for each session that has started (cancelled and upcoming ones
//! have no numbers), one row per head and moderator of the trio, then one per anyone else
//! who attended. Then one `messages` row per head and moderator, and per anyone else who
//! wrote. Fields with a comma, quote or line break are quoted (quotes doubled); a text field
//! that starts with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`, so a
//! spreadsheet never runs it as a formula.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{CycleReport, Member, role_name};

/// The header row.
pub const HEADER: [&str; 10] = [
    "row",
    "session",
    "session_title",
    "session_start_utc",
    "person",
    "name",
    "role",
    "minutes",
    "messages",
    "joined_utc",
];

impl CycleReport {
    /// The report's numbers as CSV (see [the module](self) for the columns).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        line(&mut out, &HEADER.map(String::from));
        let members: Vec<&Member> = self.heads.iter().chain(&self.moderators).collect();
        for session in &self.sessions {
            let Some(attendance) = &session.attendance else {
                continue;
            };
            let start = rfc3339(session.start);
            let attended = |member: &Member| {
                attendance
                    .attended
                    .iter()
                    .find(|a| a.member.person == member.person)
            };
            let others = attendance
                .attended
                .iter()
                .map(|a| &a.member)
                .filter(|m| !members.iter().any(|known| known.person == m.person));
            for member in members.iter().copied().chain(others) {
                line(
                    &mut out,
                    &[
                        "attendance".into(),
                        text(session.id.as_str()),
                        text(&session.title),
                        start.clone(),
                        text(member.person.as_str()),
                        text(&member.name),
                        role_name(member.role).into(),
                        attended(member).map_or(0, |a| a.minutes).to_string(),
                        String::new(),
                        attended(member).map_or_else(String::new, |a| rfc3339(a.joined_at)),
                    ],
                );
            }
        }
        for activity in &self.activity {
            let member = &activity.member;
            line(
                &mut out,
                &[
                    "messages".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    text(member.person.as_str()),
                    text(&member.name),
                    role_name(member.role).into(),
                    String::new(),
                    activity.messages.to_string(),
                    String::new(),
                ],
            );
        }
        out
    }
}

/// An instant as RFC 3339 UTC, to the second.
fn rfc3339(at: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at).map_or_else(
        || at.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn line(out: &mut String, fields: &[String]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

/// A text field a spreadsheet will not take for a formula.
fn text(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::HEADER;

    #[test]
    fn csv_has_a_row_per_member_per_held_session_and_per_member_for_messages() {
        let csv = sample::report().to_csv();
        let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(lines[0], HEADER.join(","));
        assert_eq!(
            &lines[1..],
            &[
                "attendance,cs-1,Feedback that <lands>,2025-03-04T14:00:00Z,anna.jensen,Anna Jensen,head,58,,2025-03-04T14:01:00Z",
                "attendance,cs-1,Feedback that <lands>,2025-03-04T14:00:00Z,marco.rossi,\"Marco <Rossi> & \"\"Co\"\"\",head,0,,",
                "attendance,cs-1,Feedback that <lands>,2025-03-04T14:00:00Z,rhian.evans,\"Rhian, Evans\",head,0,,",
                "attendance,cs-1,Feedback that <lands>,2025-03-04T14:00:00Z,sara.moderator,Sara Lind,moderator,61,,2025-03-04T13:59:00Z",
                "messages,,,,anna.jensen,Anna Jensen,head,,12,",
                "messages,,,,marco.rossi,\"Marco <Rossi> & \"\"Co\"\"\",head,,3,",
                "messages,,,,rhian.evans,\"Rhian, Evans\",head,,0,",
                "messages,,,,sara.moderator,Sara Lind,moderator,,1,",
            ],
            "the cancelled session has no rows:\n{csv}"
        );
        assert!(csv.ends_with("\r\n"));
    }

    #[test]
    fn text_that_looks_like_a_formula_is_defused() {
        let mut report = sample::report();
        report.sessions[1].status = triad_protocol::CoachingStatus::Scheduled;
        report.sessions[1].attendance = Some(super::super::SessionAttendance {
            attended: vec![],
            absent: report.heads.clone(),
        });
        let csv = report.to_csv();
        assert!(csv.contains(",cs-2,'=Planning,"), "{csv}");
        assert!(!csv.contains(",=Planning"), "{csv}");
    }
}
