//! What the rules see while one transaction executes: the state through the transaction's view,
//! the block's height and time, the signer, and the events emitted so far.
//!
//! It is not the executor: [`crate::exec`] makes one `Ctx` per transaction and keeps or drops
//! its writes; the rule modules ([`crate::lifecycle`], [`crate::kinds`], [`crate::governance`])
//! only read and write through it.

use crate::error::{Failure, TxError};
use crate::events::Event;
use crate::view::TxView;
use cachet_chain::ids::{AgencyId, CertKind, ChainId, Height, Timestamp};
use cachet_chain::state::{AgencyRecord, CertificateRecord, KindPolicy, StateKey, ValidatorSet};
use cachet_chain::state_tree::{StoreError, TreeStore};
use cachet_chain::tx::TxId;

/// What the rules see while one transaction executes.
pub(crate) struct Ctx<'v, 'a, S> {
    pub(crate) view: TxView<'v, 'a, S>,
    pub(crate) height: Height,
    pub(crate) time: Timestamp,
    pub(crate) chain_id: ChainId,
    pub(crate) proposal_ttl: u64,
    pub(crate) signer: AgencyId,
    pub(crate) tx_id: TxId,
    pub(crate) events: Vec<Event>,
}

impl<S: TreeStore> Ctx<'_, '_, S> {
    pub(crate) fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    pub(crate) fn agency(&self, id: &AgencyId) -> Result<AgencyRecord, Failure> {
        self.view
            .get(&StateKey::Agency(id.clone()))?
            .ok_or_else(|| TxError::UnknownAgency(id.clone()).into())
    }

    pub(crate) fn policy(&self, kind: CertKind) -> Result<KindPolicy, Failure> {
        match self.view.get(&StateKey::Policy(kind))? {
            Some(policy) => Ok(policy),
            // Any number may be named; only the built-in kinds are there from genesis on.
            None if kind.is_registered() => Err(crate::error::TxError::UnknownKind(kind).into()),
            None => Err(StoreError::Corrupt(format!("state has no policy for {kind}")).into()),
        }
    }

    pub(crate) fn is_accredited(&self, kind: CertKind, agency: &AgencyId) -> Result<bool, Failure> {
        Ok(self
            .view
            .exists(&StateKey::Accreditation(kind, agency.clone()))?)
    }

    pub(crate) fn require_accredited(&self, kind: CertKind) -> Result<(), Failure> {
        if self.is_accredited(kind, &self.signer)? {
            Ok(())
        } else {
            Err(TxError::NotAccredited {
                agency: self.signer.clone(),
                kind,
            }
            .into())
        }
    }

    pub(crate) fn certificate(
        &self,
        id: &cachet_chain::CertId,
    ) -> Result<CertificateRecord, Failure> {
        self.view
            .get(&StateKey::Certificate(*id))?
            .ok_or_else(|| TxError::UnknownCertificate(*id).into())
    }

    /// The signer is the record's issuer or an accreditor of its kind.
    pub(crate) fn require_issuer_or_accreditor(
        &self,
        issuer: &AgencyId,
        policy: &KindPolicy,
    ) -> Result<(), Failure> {
        if *issuer == self.signer || policy.accreditors.contains(&self.signer) {
            Ok(())
        } else {
            Err(TxError::NotIssuer(self.signer.clone()).into())
        }
    }

    pub(crate) fn validators(&self) -> Result<ValidatorSet, Failure> {
        Ok(self
            .view
            .get(&StateKey::Validators)?
            .ok_or_else(|| StoreError::Corrupt("state has no validator set".into()))?)
    }
}
