//! The closed set of refusal codes an answer can carry: SMEV 3's rejection
//! reasons plus the hub's own.

/// Why a request was refused instead of answered with data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The provider refuses this consumer access to the data (SMEV 3 `ACCESS_DENIED`).
    AccessDenied,
    /// The provider has no data for the request (SMEV 3 `NO_DATA`).
    NoData,
    /// The provider does not understand the request (SMEV 3 `UNKNOWN_REQUEST_DESCRIPTION`).
    UnknownRequestDescription,
    /// The provider failed to process the request (SMEV 3 `FAILURE`).
    Failure,
    /// The hub: no answer came within the data kind's deadline, or before
    /// the request's own earlier expiry (`NewRequest::expires_in_ms`).
    DeadlineExceeded,
    /// The hub: the provider did not acknowledge the request within the
    /// allowed number of deliveries; it went to the dead-letter state.
    Undeliverable,
}

impl RefusalCode {
    /// Every code, in wire order.
    pub const ALL: [RefusalCode; 6] = [
        RefusalCode::AccessDenied,
        RefusalCode::NoData,
        RefusalCode::UnknownRequestDescription,
        RefusalCode::Failure,
        RefusalCode::DeadlineExceeded,
        RefusalCode::Undeliverable,
    ];

    /// The code's stable wire number.
    pub fn to_u8(self) -> u8 {
        match self {
            RefusalCode::AccessDenied => 1,
            RefusalCode::NoData => 2,
            RefusalCode::UnknownRequestDescription => 3,
            RefusalCode::Failure => 4,
            RefusalCode::DeadlineExceeded => 5,
            RefusalCode::Undeliverable => 6,
        }
    }

    /// The code for a wire number.
    pub fn from_u8(v: u8) -> Option<RefusalCode> {
        RefusalCode::ALL.into_iter().find(|c| c.to_u8() == v)
    }

    /// The code's stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::AccessDenied => "ACCESS_DENIED",
            RefusalCode::NoData => "NO_DATA",
            RefusalCode::UnknownRequestDescription => "UNKNOWN_REQUEST_DESCRIPTION",
            RefusalCode::Failure => "FAILURE",
            RefusalCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            RefusalCode::Undeliverable => "UNDELIVERABLE",
        }
    }

    /// True for the codes only the hub may give.
    pub fn is_hub_only(self) -> bool {
        matches!(
            self,
            RefusalCode::DeadlineExceeded | RefusalCode::Undeliverable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_every_code_when_round_tripped_then_same() {
        for c in RefusalCode::ALL {
            assert_eq!(RefusalCode::from_u8(c.to_u8()), Some(c));
        }
        assert_eq!(RefusalCode::from_u8(0), None);
    }
}
