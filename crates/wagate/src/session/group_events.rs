//! What a `w:gp2` notification action means to a session: the changes to
//! its stored groups and the events that report them (`group.joined`,
//! `group.left`, `group.participants`, `group.updated`). Pure: the
//! supervisor fetches what is missing and the store writes both in one
//! transaction.

use crate::domain::{GroupInfo, GroupMember};
use crate::domain::{GroupRole, ParticipantsAction};
use crate::events::{EventData, GroupUpdate};
use crate::messages::Sender;
use crate::store::{GroupEdit, NoticeKey};

/// One action of a group notification, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupNotice {
    /// The group's JID.
    pub group: String,
    /// WhatsApp's notification id and the action's place in it; `None`
    /// when WhatsApp gave no id (then it cannot be told apart from a
    /// redelivery).
    pub key: Option<NoticeKey>,
    /// Who made the change.
    pub by: Option<GroupMember>,
    pub change: NoticeChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeChange {
    /// The group was made, with the number in it.
    Created,
    /// People were added; `invite`: they joined through an invite link.
    Added {
        people: Vec<GroupMember>,
        invite: bool,
    },
    /// People left (`by` themselves) or were removed.
    Removed {
        people: Vec<GroupMember>,
    },
    Promoted {
        people: Vec<GroupMember>,
    },
    Demoted {
        people: Vec<GroupMember>,
    },
    /// People asked to join.
    Requested {
        people: Vec<GroupMember>,
    },
    /// Subject, description, settings, picture or invite.
    Updated(GroupUpdate),
    /// The group is no more (deleted by an admin, or by WhatsApp).
    Deleted,
}

/// The session's own number, to tell when a notification is about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Me {
    /// Digits.
    pub phone: Option<String>,
    /// `<digits>@lid`.
    pub lid: Option<String>,
}

impl Me {
    pub fn is(&self, member: &GroupMember) -> bool {
        let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
        same(&self.phone, &member.phone) || same(&self.lid, &member.lid)
    }
}

impl GroupNotice {
    /// Whether the group's metadata must be read from WhatsApp first: the
    /// number has just come into it.
    pub fn brings_me_in(&self, me: &Me) -> bool {
        match &self.change {
            NoticeChange::Created => true,
            NoticeChange::Added { people, .. } => people.iter().any(|p| me.is(p)),
            _ => false,
        }
    }

    /// Every person the notice names, to complete their numbers.
    pub fn people_mut(&mut self) -> impl Iterator<Item = &mut GroupMember> {
        let people = match &mut self.change {
            NoticeChange::Added { people, .. }
            | NoticeChange::Removed { people }
            | NoticeChange::Promoted { people }
            | NoticeChange::Demoted { people }
            | NoticeChange::Requested { people } => Some(people.iter_mut()),
            NoticeChange::Created | NoticeChange::Updated(_) | NoticeChange::Deleted => None,
        };
        self.by.iter_mut().chain(people.into_iter().flatten())
    }
}

/// A member as events name people: `phone` and the LID's digits.
pub(crate) fn sender(member: &GroupMember) -> Sender {
    Sender {
        phone: member.phone.clone(),
        lid: member
            .lid
            .as_deref()
            .map(|l| l.strip_suffix("@lid").unwrap_or(l).to_owned()),
    }
}

/// What `notice` changes in the session's stored groups and the events
/// that report it. `fetched` is the group as WhatsApp describes it, read
/// when the notice brings the number in.
pub(crate) fn plan(
    notice: &GroupNotice,
    me: &Me,
    fetched: Option<&GroupInfo>,
) -> (Vec<GroupEdit>, Vec<EventData>) {
    let group = notice.group.clone();
    let by = notice.by.as_ref().map(sender);
    let mut edits = Vec::new();
    let mut events = Vec::new();
    let joined = |edits: &mut Vec<GroupEdit>, events: &mut Vec<EventData>, by| {
        if let Some(info) = fetched {
            edits.push(GroupEdit::Put(Box::new(info.clone())));
        }
        events.push(EventData::GroupJoined {
            group: group.clone(),
            subject: fetched.map(|f| f.subject.clone()),
            by,
        });
    };
    let participants = |events: &mut Vec<EventData>, action, people: &[&GroupMember]| {
        if !people.is_empty() {
            events.push(EventData::GroupParticipants {
                group: group.clone(),
                action,
                by: by.clone(),
                participants: people.iter().map(|p| sender(p)).collect(),
            });
        }
    };
    match &notice.change {
        NoticeChange::Created => joined(&mut edits, &mut events, by.clone()),
        NoticeChange::Added { people, invite } => {
            let (mine, others): (Vec<&GroupMember>, Vec<&GroupMember>) =
                people.iter().partition(|p| me.is(p));
            if !mine.is_empty() {
                let adder = if *invite { None } else { by.clone() };
                joined(&mut edits, &mut events, adder);
            }
            if !others.is_empty() {
                edits.push(GroupEdit::AddMembers {
                    group: group.clone(),
                    members: others.iter().map(|p| (*p).clone()).collect(),
                });
                participants(&mut events, ParticipantsAction::Added, &others);
            }
        }
        NoticeChange::Removed { people } => {
            let (mine, others): (Vec<&GroupMember>, Vec<&GroupMember>) =
                people.iter().partition(|p| me.is(p));
            if !others.is_empty() {
                edits.push(GroupEdit::RemoveMembers {
                    group: group.clone(),
                    members: others.iter().map(|p| (*p).clone()).collect(),
                });
                participants(&mut events, ParticipantsAction::Removed, &others);
            }
            if !mine.is_empty() {
                let removed = notice.by.as_ref().is_some_and(|b| !me.is(b));
                edits.push(GroupEdit::Drop {
                    group: group.clone(),
                });
                events.push(EventData::GroupLeft {
                    group: group.clone(),
                    by: if removed { by.clone() } else { None },
                    removed,
                });
            }
        }
        NoticeChange::Promoted { people } | NoticeChange::Demoted { people } => {
            let (role, action) = match notice.change {
                NoticeChange::Promoted { .. } => (GroupRole::Admin, ParticipantsAction::Promoted),
                _ => (GroupRole::Member, ParticipantsAction::Demoted),
            };
            edits.push(GroupEdit::SetRole {
                group: group.clone(),
                members: people.clone(),
                role,
            });
            participants(&mut events, action, &people.iter().collect::<Vec<_>>());
        }
        NoticeChange::Requested { people } => participants(
            &mut events,
            ParticipantsAction::Requested,
            &people.iter().collect::<Vec<_>>(),
        ),
        NoticeChange::Deleted => {
            edits.push(GroupEdit::Drop {
                group: group.clone(),
            });
            events.push(EventData::GroupLeft {
                group: group.clone(),
                removed: true,
                by,
            });
        }
        NoticeChange::Updated(update) => {
            if !update.is_empty() {
                edits.push(GroupEdit::Update {
                    group: group.clone(),
                    update: update.clone(),
                });
                events.push(EventData::GroupUpdated {
                    group: group.clone(),
                    by,
                    changes: update.clone(),
                });
            }
        }
    }
    (edits, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(phone: &str, lid: &str) -> GroupMember {
        GroupMember {
            phone: Some(phone.into()),
            lid: Some(format!("{lid}@lid")),
            role: GroupRole::Member,
        }
    }

    fn me() -> Me {
        Me {
            phone: Some("1555".into()),
            lid: Some("900@lid".into()),
        }
    }

    fn notice(by: GroupMember, change: NoticeChange) -> GroupNotice {
        GroupNotice {
            group: "1203@g.us".into(),
            key: None,
            by: Some(by),
            change,
        }
    }

    #[test]
    fn someone_added_is_named_by_number_and_lid() {
        let n = notice(
            person("1666", "901"),
            NoticeChange::Added {
                people: vec![person("1777", "902")],
                invite: false,
            },
        );
        assert!(!n.brings_me_in(&me()));
        let (edits, events) = plan(&n, &me(), None);
        assert!(matches!(edits[..], [GroupEdit::AddMembers { .. }]));
        let [
            EventData::GroupParticipants {
                action,
                by,
                participants,
                ..
            },
        ] = &events[..]
        else {
            panic!("{events:?}");
        };
        assert_eq!(*action, ParticipantsAction::Added);
        assert_eq!(by.as_ref().and_then(|b| b.phone.as_deref()), Some("1666"));
        assert_eq!(participants[0].phone.as_deref(), Some("1777"));
        assert_eq!(participants[0].lid.as_deref(), Some("902"));
    }

    #[test]
    fn the_number_added_joins_and_the_group_is_stored() {
        let mine = GroupMember {
            phone: None,
            ..person("", "900")
        };
        let n = notice(
            person("1666", "901"),
            NoticeChange::Added {
                people: vec![mine],
                invite: false,
            },
        );
        assert!(n.brings_me_in(&me()));
        let info = GroupInfo {
            id: "1203@g.us".into(),
            subject: "Team".into(),
            description: None,
            owner: None,
            created_at: None,
            settings: Default::default(),
            participants: Vec::new(),
        };
        let (edits, events) = plan(&n, &me(), Some(&info));
        assert!(matches!(edits[..], [GroupEdit::Put(_)]));
        assert!(
            matches!(&events[..], [EventData::GroupJoined { subject: Some(s), by: Some(_), .. }] if s == "Team"),
            "{events:?}"
        );
    }

    #[test]
    fn leaving_and_being_removed_are_told_apart() {
        let mine = person("1555", "900");
        let left = notice(
            mine.clone(),
            NoticeChange::Removed {
                people: vec![mine.clone()],
            },
        );
        let (edits, events) = plan(&left, &me(), None);
        assert!(matches!(edits[..], [GroupEdit::Drop { .. }]));
        assert!(matches!(
            &events[..],
            [EventData::GroupLeft {
                removed: false,
                by: None,
                ..
            }]
        ));
        let removed = notice(
            person("1666", "901"),
            NoticeChange::Removed { people: vec![mine] },
        );
        let (_, events) = plan(&removed, &me(), None);
        assert!(matches!(
            &events[..],
            [EventData::GroupLeft {
                removed: true,
                by: Some(_),
                ..
            }]
        ));
    }

    #[test]
    fn a_deleted_group_is_left() {
        let n = notice(person("1666", "901"), NoticeChange::Deleted);
        let (edits, events) = plan(&n, &me(), None);
        assert!(matches!(edits[..], [GroupEdit::Drop { .. }]));
        assert!(matches!(
            &events[..],
            [EventData::GroupLeft { removed: true, .. }]
        ));
    }

    #[test]
    fn a_subject_change_is_an_update() {
        let n = notice(
            person("1666", "901"),
            NoticeChange::Updated(GroupUpdate {
                subject: Some("New".into()),
                ..Default::default()
            }),
        );
        let (edits, events) = plan(&n, &me(), None);
        assert!(matches!(edits[..], [GroupEdit::Update { .. }]));
        assert!(matches!(&events[..], [EventData::GroupUpdated { .. }]));
    }
}
