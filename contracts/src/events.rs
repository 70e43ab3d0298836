//! What a transaction did, for indexes, subscriptions and logs. Events are derived from the
//! block; they are not part of any hash.

use cachet_chain::document::CertId;
use cachet_chain::ids::{AgencyId, CertKind, KindName};
use cachet_chain::tx::{BatchId, ProposalId};
use serde::{Deserialize, Serialize};

/// One effect of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A certificate was issued (active, or pending approval).
    Issued {
        /// Its id.
        id: CertId,
        /// Its kind.
        kind: CertKind,
        /// The issuer.
        issuer: AgencyId,
        /// True when it awaits approvals.
        pending: bool,
    },
    /// A batch was issued.
    BatchIssued {
        /// Its id.
        batch: BatchId,
        /// Kind of its entries.
        kind: CertKind,
        /// The issuer.
        issuer: AgencyId,
        /// Number of entries.
        leaf_count: u32,
    },
    /// A certificate became active after its last approval.
    Activated {
        /// Its id.
        id: CertId,
    },
    /// A certificate was superseded.
    Superseded {
        /// The replaced certificate.
        previous: CertId,
        /// Its successor.
        next: CertId,
    },
    /// A certificate was revoked.
    Revoked {
        /// Its id.
        id: CertId,
    },
    /// One batch entry was revoked.
    BatchEntryRevoked {
        /// The batch.
        batch: BatchId,
        /// The entry's position.
        index: u32,
    },
    /// An approval was recorded.
    Approved {
        /// The certificate.
        id: CertId,
        /// The approver.
        agency: AgencyId,
    },
    /// A lifecycle event was recorded.
    EventRecorded {
        /// The certificate.
        id: CertId,
    },
    /// Governance registered a certificate kind.
    KindAdded {
        /// Its number.
        kind: CertKind,
        /// The name it was registered under.
        name: KindName,
    },
    /// An agency was registered.
    AgencyRegistered {
        /// Its id.
        agency: AgencyId,
    },
    /// An agency was accredited for a kind.
    Accredited {
        /// The kind.
        kind: CertKind,
        /// The agency.
        agency: AgencyId,
    },
    /// An accreditation was withdrawn.
    Unaccredited {
        /// The kind.
        kind: CertKind,
        /// The agency.
        agency: AgencyId,
    },
    /// A governance proposal was made.
    Proposed {
        /// Its id.
        proposal: ProposalId,
    },
    /// A vote was counted.
    Voted {
        /// The proposal.
        proposal: ProposalId,
        /// The voter.
        agency: AgencyId,
    },
    /// A proposal reached two thirds and was carried out.
    GovernanceExecuted {
        /// The proposal.
        proposal: ProposalId,
    },
}
