//! What a message and a webhook delivery can be: a message's direction,
//! its triage status, its delivery to WhatsApp and where a reply was
//! written, and a webhook delivery's state. Each is a closed enum, stored
//! in SQLite and shown by the API as the lower-case word `as_str` gives
//! (`schema.sql` checks the same words).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use std::fmt;

/// An enum whose values are stored and shown as fixed words: `as_str`,
/// `parse`, `ALL`, and the conversions to and from SQLite and JSON.
macro_rules! worded {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value a word names, if any (exactly: lower case).
            pub fn parse(word: &str) -> Option<$name> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let word = value.as_str()?;
                $name::parse(word).ok_or_else(|| {
                    FromSqlError::Other(
                        format!("{word:?} is not a {}", stringify!($name)).into(),
                    )
                })
            }
        }
    };
}

worded! {
    /// Who wrote a message: a customer, or us.
    Direction {
        /// A customer wrote it.
        Incoming = "incoming",
        /// A reply (through this server, or from our phone).
        Outgoing = "outgoing",
    }
}

worded! {
    /// Where a message stands in the team's triage. Incoming messages move
    /// between the first four; every outgoing message is `Sent`.
    ReplyStatus {
        Unread = "unread",
        Read = "read",
        Replied = "replied",
        Ignored = "ignored",
        Sent = "sent",
    }
}

worded! {
    /// Where an outgoing message stands with WhatsApp. Receipts can arrive
    /// out of order; a status only ever moves forward (`rank`).
    DeliveryStatus {
        /// Stored, not yet accepted by WhatsApp.
        Pending = "pending",
        /// WhatsApp's server acknowledged it.
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        /// WhatsApp refused it, or it could not be sent.
        Failed = "failed",
    }
}

worded! {
    /// Where a reply was written.
    Source {
        /// `POST /api/v1/messages/:id/reply`.
        Api = "api",
        /// The dashboard's reply form.
        Dashboard = "dashboard",
        /// Our own account, on the phone or WhatsApp Web.
        Phone = "phone",
    }
}

worded! {
    /// Where a webhook delivery stands.
    HookDeliveryStatus {
        /// Waiting for its (next) attempt.
        Pending = "pending",
        /// The receiver answered 2xx.
        Delivered = "delivered",
        /// Every attempt of the schedule failed (or the receiver is gone).
        Failed = "failed",
    }
}

/// A new row is a customer's message, unless said otherwise.
impl Default for Direction {
    fn default() -> Direction {
        Direction::Incoming
    }
}

/// A customer's new message is unread.
impl Default for ReplyStatus {
    fn default() -> ReplyStatus {
        ReplyStatus::Unread
    }
}

impl ReplyStatus {
    /// The statuses of incoming messages: the inbox's tabs, and what a
    /// person marks a message as on the dashboard.
    pub const TRIAGE: [ReplyStatus; 4] = [
        ReplyStatus::Unread,
        ReplyStatus::Read,
        ReplyStatus::Replied,
        ReplyStatus::Ignored,
    ];
}

impl DeliveryStatus {
    /// The order statuses move in: a status never moves to a lower rank.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Pending => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Failed => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_and_nothing_else_does() {
        for s in ReplyStatus::ALL {
            assert_eq!(ReplyStatus::parse(s.as_str()), Some(*s));
        }
        for d in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(&d.to_string()), Some(*d));
        }
        assert_eq!(ReplyStatus::parse("Unread"), None);
        assert_eq!(Direction::parse("sideways"), None);
        assert_eq!(
            serde_json::to_string(&HookDeliveryStatus::Delivered).unwrap(),
            "\"delivered\""
        );
    }

    #[test]
    fn statuses_round_trip_through_sqlite_and_refuse_strangers() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let back: Source = conn
            .query_row("SELECT ?1", [Source::Dashboard], |r| r.get(0))
            .unwrap();
        assert_eq!(back, Source::Dashboard);
        let stranger: rusqlite::Result<Direction> =
            conn.query_row("SELECT 'sideways'", [], |r| r.get(0));
        assert!(stranger.is_err());
    }
}
