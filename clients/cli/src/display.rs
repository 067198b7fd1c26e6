//! How the terminal shows things: times in the viewer's time zone, people by name, one
//! line per event.

use std::collections::HashMap;

use chrono::DateTime;
use chrono_tz::Tz;
use triad_client::protocol::{
    CoachingSession, CoachingStatus, EventBody, PersonId, PresenceStatus, RoomEvent, RoomInfo,
    Timestamp, Welcome,
};

/// Names and the time zone of the person using the terminal.
#[derive(Debug, Clone)]
pub struct View {
    /// The viewer.
    pub me: PersonId,
    /// The viewer's time zone (UTC when theirs is unknown).
    pub tz: Tz,
    names: HashMap<PersonId, String>,
}

impl View {
    /// A view for the person a welcome is for, knowing the members of their rooms.
    pub fn new(welcome: &Welcome) -> Self {
        let tz = welcome.person.time_zone.parse().unwrap_or(Tz::UTC);
        let mut view = Self {
            me: welcome.person.id.clone(),
            tz,
            names: HashMap::new(),
        };
        view.names
            .insert(welcome.person.id.clone(), welcome.person.name.clone());
        view.learn(welcome);
        view
    }

    /// Learns the names in a (newer) welcome.
    pub fn learn(&mut self, welcome: &Welcome) {
        for room in &welcome.rooms {
            self.learn_room(room);
        }
    }

    /// Learns the names of a room's members.
    pub fn learn_room(&mut self, room: &RoomInfo) {
        for member in &room.members {
            self.names
                .insert(member.person.clone(), member.name.clone());
        }
    }

    /// A person's name, or their id when it is not known.
    pub fn name<'a>(&'a self, person: &'a PersonId) -> &'a str {
        self.names
            .get(person)
            .map_or(person.as_str(), String::as_str)
    }

    /// `HH:MM` in the viewer's time zone.
    pub fn time(&self, ts: Timestamp) -> String {
        match DateTime::from_timestamp_millis(ts) {
            Some(utc) => utc.with_timezone(&self.tz).format("%H:%M").to_string(),
            None => "--:--".to_owned(),
        }
    }

    /// A coaching session on one line: its day and time in the viewer's zone (the zone
    /// named), how long, its room and title, and whether it was cancelled.
    pub fn coaching(&self, session: &CoachingSession) -> String {
        let start = match DateTime::from_timestamp_millis(session.start) {
            Some(utc) => utc
                .with_timezone(&self.tz)
                .format("%a %-d %b %Y %H:%M")
                .to_string(),
            None => "?".to_owned(),
        };
        let cancelled = match session.status {
            CoachingStatus::Cancelled => "  (cancelled)",
            CoachingStatus::Scheduled => "",
        };
        format!(
            "{start} {}  {} min  {}  {}{cancelled}",
            self.tz.name(),
            session.duration_min,
            session.room,
            session.title
        )
    }

    /// One line (or more, for a message of several lines) for a room event.
    pub fn event(&self, event: &RoomEvent) -> String {
        let time = self.time(event.ts);
        let who = self.name(&event.author);
        match &event.body {
            EventBody::Message { body, .. } => {
                let body = body.trim_end().replace('\n', "\n       ");
                format!("{time}  {who}: {body}")
            }
            EventBody::ModeratorJoined => format!("{time}  * {who} joined"),
            EventBody::ModeratorLeft => format!("{time}  * {who} left"),
        }
    }

    /// A status line for a change of presence.
    pub fn presence(&self, person: &PersonId, status: PresenceStatus) -> String {
        format!("-- {} is {}", self.name(person), status_word(status))
    }
}

/// A presence status in a word.
pub fn status_word(status: PresenceStatus) -> &'static str {
    match status {
        PresenceStatus::Online => "online",
        PresenceStatus::Away => "away",
        PresenceStatus::Offline => "offline",
    }
}

#[cfg(test)]
mod tests {
    use triad_client::protocol::{
        ClientMsgId, Limits, MemberInfo, PersonInfo, Role, RoomId, RoomKind, SessionId,
    };

    use super::*;

    fn person(id: &str) -> PersonId {
        PersonId::new(id).expect("valid person id")
    }

    fn welcome(time_zone: &str) -> Welcome {
        let member = MemberInfo {
            person: person("bo.berg"),
            name: "Bo Berg".into(),
            role: Role::Head,
            status: PresenceStatus::Online,
        };
        Welcome {
            protocol: "triad.v1".into(),
            session: SessionId("s".into()),
            person: PersonInfo {
                id: person("anna"),
                name: "Anna".into(),
                role: Role::Head,
                region: String::new(),
                school: String::new(),
                time_zone: time_zone.into(),
            },
            rooms: vec![RoomInfo {
                id: RoomId::new("trio-1").expect("valid room id"),
                kind: RoomKind::Trio,
                title: "Trio 1".into(),
                epoch: 1,
                last_seq: 0,
                read_seq: 0,
                unread: 0,
                last_ts: None,
                joined: true,
                members: vec![member],
                member_count: 1,
                call: None,
            }],
            limits: Limits::default(),
            token_expires_at: 0,
        }
    }

    fn event(author: &str, body: EventBody) -> RoomEvent {
        // 2024-01-15 09:05 UTC
        RoomEvent {
            room: RoomId::new("trio-1").expect("valid room id"),
            seq: 1,
            ts: 1_705_309_500_000,
            author: person(author),
            body,
        }
    }

    #[test]
    fn coaching_sessions_show_in_the_viewers_zone() {
        use triad_client::protocol::CoachingId;
        let session = CoachingSession {
            id: CoachingId::new("cs-1").expect("valid id"),
            room: RoomId::new("trio-1").expect("valid room id"),
            title: "Visit follow-up".into(),
            agenda: String::new(),
            // 2024-01-15 15:00 UTC
            start: 1_705_330_800_000,
            duration_min: 45,
            time_zone: "Europe/Rome".into(),
            status: CoachingStatus::Scheduled,
            sequence: 0,
            booked_by: person("sara"),
            updated_at: 0,
        };
        let rome = View::new(&welcome("Europe/Rome")).coaching(&session);
        assert_eq!(
            rome,
            "Mon 15 Jan 2024 16:00 Europe/Rome  45 min  trio-1  Visit follow-up"
        );
        let london = View::new(&welcome("Europe/London")).coaching(&session);
        assert!(
            london.starts_with("Mon 15 Jan 2024 15:00 Europe/London"),
            "{london}"
        );
        let mut cancelled = session;
        cancelled.status = CoachingStatus::Cancelled;
        let line = View::new(&welcome("Europe/Rome")).coaching(&cancelled);
        assert!(line.ends_with("(cancelled)"), "{line}");
    }

    #[test]
    fn times_are_in_the_viewers_zone() {
        let message = EventBody::Message {
            client_msg_id: ClientMsgId("m".into()),
            body: "hej".into(),
        };
        let rome = View::new(&welcome("Europe/Rome"));
        assert_eq!(
            rome.event(&event("bo.berg", message.clone())),
            "10:05  Bo Berg: hej"
        );
        let unknown = View::new(&welcome("Mars/Olympus"));
        assert_eq!(
            unknown.event(&event("bo.berg", message)),
            "09:05  Bo Berg: hej"
        );
    }

    #[test]
    fn unknown_people_show_their_id_and_system_events_a_star() {
        let view = View::new(&welcome("UTC"));
        assert_eq!(
            view.event(&event("cara", EventBody::ModeratorJoined)),
            "09:05  * cara joined"
        );
        assert_eq!(
            view.event(&event("anna", EventBody::ModeratorLeft)),
            "09:05  * Anna left"
        );
        assert_eq!(
            view.presence(&person("bo.berg"), PresenceStatus::Away),
            "-- Bo Berg is away"
        );
    }
}
