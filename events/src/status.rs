//! The canonical status of an invitation, and how each vendor's vocabulary maps onto it.
//!
//! The status is derived, never stored in an event: the lifecycle (open or how it closed), the
//! furthest stage its deliveries and engagement reached, and the time (expiry).
//!
//! | canonical            | meaning                                         | Omneo      | Argyle      | Vortex               |
//! |----------------------|-------------------------------------------------|------------|-------------|----------------------|
//! | `created`            | open, never sent                                | `PENDING`  | `initiated` | `queued`             |
//! | `queued`             | a delivery was requested                        | `PENDING`  | `initiated` | `queued`             |
//! | `sending`            | the provider is sending it                      | `PENDING`  | `sent`      | `sending`            |
//! | `sent`               | the provider sent it                            | `PENDING`  | `sent`      | `sent`               |
//! | `delivered`          | the provider delivered it                       | `PENDING`  | `sent`      | `delivered`          |
//! | `opened`             | opened, viewed or clicked                       | `PENDING`  | `opened`    | `delivered`          |
//! | `unfurled`           | a link preview was rendered                     | `PENDING`  | `opened`    | `unfurled`           |
//! | `shared`             | the recipient passed it on                      | `PENDING`  | `opened`    | `shared`             |
//! | `accepted`           | accepted (a multi-use invite: at least once)    | `ACCEPTED` | `completed` | `accepted`           |
//! | `accepted_elsewhere` | another invite for the same target and scope was accepted | `ACCEPTED` | `completed` | `accepted_elsewhere` |
//! | `declined`           | the recipient declined                          | `REJECTED` | `declined`  | (`deactivated`)      |
//! | `revoked`            | the inviter or tenant withdrew it               | `REVOKED`  | `revoked`   | (`deactivated`)      |
//! | `expired`            | its expiry time passed while open               | `EXPIRED`  | `expired`   | (`expired: true`)    |
//!
//! Read right to left, every vendor word has a canonical status, so a vendor's client loses
//! nothing by talking to rsvp: [`InviteStatus::from_vendor`] gives the canonical statuses a
//! vendor word stands for (a filter on `PENDING` is a filter on all the open ones).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    Created,
    Queued,
    Sending,
    Sent,
    Delivered,
    Opened,
    Unfurled,
    Shared,
    Accepted,
    AcceptedElsewhere,
    Declined,
    Revoked,
    Expired,
}

/// The vendors whose status words rsvp speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Omneo,
    Argyle,
    Vortex,
}

impl InviteStatus {
    pub const ALL: [InviteStatus; 13] = [
        Self::Created,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Opened,
        Self::Unfurled,
        Self::Shared,
        Self::Accepted,
        Self::AcceptedElsewhere,
        Self::Declined,
        Self::Revoked,
        Self::Expired,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Opened => "opened",
            Self::Unfurled => "unfurled",
            Self::Shared => "shared",
            Self::Accepted => "accepted",
            Self::AcceptedElsewhere => "accepted_elsewhere",
            Self::Declined => "declined",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Still open: it can be sent, engaged with and accepted.
    pub fn is_open(&self) -> bool {
        *self <= Self::Shared
    }

    /// The vendor's word for this status (`None`: the vendor shows it through a flag instead).
    pub fn to_vendor(&self, vendor: Vendor) -> Option<&'static str> {
        use InviteStatus::*;
        Some(match (vendor, self) {
            (Vendor::Omneo, s) if s.is_open() => "PENDING",
            (Vendor::Omneo, Accepted | AcceptedElsewhere) => "ACCEPTED",
            (Vendor::Omneo, Declined) => "REJECTED",
            (Vendor::Omneo, Revoked) => "REVOKED",
            (Vendor::Omneo, _) => "EXPIRED",
            (Vendor::Argyle, Created | Queued) => "initiated",
            (Vendor::Argyle, Sending | Sent | Delivered) => "sent",
            (Vendor::Argyle, Opened | Unfurled | Shared) => "opened",
            (Vendor::Argyle, Accepted | AcceptedElsewhere) => "completed",
            (Vendor::Argyle, Declined) => "declined",
            (Vendor::Argyle, Revoked) => "revoked",
            (Vendor::Argyle, Expired) => "expired",
            (Vendor::Vortex, Created | Queued) => "queued",
            (Vendor::Vortex, Sending) => "sending",
            (Vendor::Vortex, Sent) => "sent",
            (Vendor::Vortex, Delivered | Opened) => "delivered",
            (Vendor::Vortex, Unfurled) => "unfurled",
            (Vendor::Vortex, Shared) => "shared",
            (Vendor::Vortex, Accepted) => "accepted",
            (Vendor::Vortex, AcceptedElsewhere) => "accepted_elsewhere",
            (Vendor::Vortex, Declined | Revoked | Expired) => return None,
        })
    }

    /// Every canonical status a vendor's word stands for (case-insensitive; empty if unknown).
    pub fn from_vendor(vendor: Vendor, word: &str) -> Vec<InviteStatus> {
        Self::ALL.into_iter().filter(|s| s.to_vendor(vendor).is_some_and(|w| w.eq_ignore_ascii_case(word))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_word_maps_back_onto_the_canonical_status_it_came_from() {
        for vendor in [Vendor::Omneo, Vendor::Argyle, Vendor::Vortex] {
            for status in InviteStatus::ALL {
                if let Some(word) = status.to_vendor(vendor) {
                    assert!(InviteStatus::from_vendor(vendor, word).contains(&status), "{vendor:?} {word}");
                }
            }
        }
    }

    #[test]
    fn every_status_word_a_vendor_documents_has_a_canonical_status() {
        let documented = [
            (Vendor::Omneo, ["PENDING", "REVOKED", "ACCEPTED", "REJECTED", "EXPIRED", "", ""]),
            (Vendor::Argyle, ["initiated", "sent", "completed", "revoked", "expired", "", ""]),
            (
                Vendor::Vortex,
                ["queued", "sending", "delivered", "accepted", "shared", "unfurled", "accepted_elsewhere"],
            ),
        ];
        for (vendor, words) in documented {
            for word in words.into_iter().filter(|w| !w.is_empty()) {
                assert!(!InviteStatus::from_vendor(vendor, word).is_empty(), "{vendor:?} {word}");
            }
        }
    }

    #[test]
    fn canonical_statuses_round_trip_through_their_names() {
        for status in InviteStatus::ALL {
            assert_eq!(InviteStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
