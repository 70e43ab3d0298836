//! Governance: changes the validator agencies decide together.
//!
//! A validator agency (one that runs at least one validator in the current set) proposes a
//! change; its proposal counts as its vote. Other validator agencies vote. When the votes of
//! agencies that *currently* run validators reach two thirds of those agencies
//! (`3 * votes >= 2 * agencies`), the change is carried out inside the transaction that reached
//! the threshold; if it can no longer be carried out, that transaction is refused and the
//! proposal stays open until it expires. One vote per agency, however many validators it runs.
//!
//! Validator-set changes land in state at once and take effect from the next height (the
//! header's `next_validators_hash`).

use crate::ctx::Ctx;
use crate::error::{Failure, TxError};
use crate::events::Event;
use crate::lifecycle::register_agency;
use cachet_chain::ids::{AgencyId, CertKind};
use cachet_chain::state::{
    AgencyList, KeyEpoch, KeyHistory, KindPolicy, Proposal, ProposalStatus, StateKey, Validator,
    ValidatorSet,
};
use cachet_chain::state_tree::TreeStore;
use cachet_chain::tx::{GovernanceChange, ProposalId};

fn require_validator_agency<S: TreeStore>(ctx: &Ctx<'_, '_, S>) -> Result<Vec<AgencyId>, Failure> {
    let agencies = ctx.validators()?.agencies();
    if agencies.binary_search(&ctx.signer).is_err() {
        return Err(TxError::NotValidatorAgency(ctx.signer.clone()).into());
    }
    Ok(agencies)
}

/// Open a proposal (and count the proposer's vote).
pub(crate) fn propose<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    change: &GovernanceChange,
) -> Result<(), Failure> {
    require_validator_agency(ctx)?;
    let id = ctx.tx_id;
    let proposal = Proposal {
        id,
        proposer: ctx.signer.clone(),
        change: change.clone(),
        votes: AgencyList::default(),
        created_at: ctx.height,
        expires_at: cachet_chain::Height(ctx.height.0.saturating_add(ctx.proposal_ttl)),
        status: ProposalStatus::Open,
    };
    ctx.emit(Event::Proposed { proposal: id });
    count_vote(ctx, proposal)
}

/// Vote for an open proposal.
pub(crate) fn vote<S: TreeStore>(ctx: &mut Ctx<'_, '_, S>, id: &ProposalId) -> Result<(), Failure> {
    require_validator_agency(ctx)?;
    let proposal: Proposal = ctx
        .view
        .get(&StateKey::Proposal(*id))?
        .ok_or_else(|| TxError::UnknownProposal(id.to_string()))?;
    if proposal.status != ProposalStatus::Open {
        return Err(TxError::ProposalClosed.into());
    }
    if ctx.height > proposal.expires_at {
        return Err(TxError::ProposalExpired(proposal.expires_at).into());
    }
    if proposal.votes.contains(&ctx.signer) {
        return Err(TxError::AlreadyVoted(ctx.signer.clone()).into());
    }
    count_vote(ctx, proposal)
}

fn count_vote<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    mut proposal: Proposal,
) -> Result<(), Failure> {
    let agencies = require_validator_agency(ctx)?;
    let mut votes = proposal.votes.clone().into_vec();
    votes.push(ctx.signer.clone());
    votes.sort();
    proposal.votes = AgencyList::new(votes).map_err(|e| TxError::InvalidChange(e.to_string()))?;
    ctx.emit(Event::Voted {
        proposal: proposal.id,
        agency: ctx.signer.clone(),
    });
    let counted = proposal
        .votes
        .iter()
        .filter(|a| agencies.binary_search(a).is_ok())
        .count();
    if 3 * counted >= 2 * agencies.len() {
        execute(ctx, &proposal.change)?;
        proposal.status = ProposalStatus::Executed { at: ctx.height };
        ctx.emit(Event::GovernanceExecuted {
            proposal: proposal.id,
        });
    }
    ctx.view.put(&StateKey::Proposal(proposal.id), &proposal);
    Ok(())
}

fn invalid(msg: impl Into<String>) -> Failure {
    TxError::InvalidChange(msg.into()).into()
}

fn execute<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    change: &GovernanceChange,
) -> Result<(), Failure> {
    match change {
        GovernanceChange::AddAgency { id, registration } => register_agency(ctx, id, registration),
        GovernanceChange::RemoveAgency { id } => {
            let mut agency = ctx.agency(id)?;
            if agency.removed_at.is_some() {
                return Err(TxError::AgencyRemoved(id.clone()).into());
            }
            if ctx.validators()?.validators.iter().any(|v| v.agency == *id) {
                return Err(TxError::AgencyRunsValidator(id.clone()).into());
            }
            let mut keys = agency.keys.clone().into_vec();
            if let Some(last) = keys.last_mut() {
                last.until.get_or_insert(ctx.height);
            }
            agency.keys = KeyHistory::new(keys).map_err(|e| invalid(e.to_string()))?;
            agency.removed_at = Some(ctx.height);
            ctx.view.put(&StateKey::Agency(id.clone()), &agency);
            Ok(())
        }
        GovernanceChange::RotateAgencyKey { id, key } => {
            let mut agency = ctx.agency(id)?;
            if agency.removed_at.is_some() {
                return Err(TxError::AgencyRemoved(id.clone()).into());
            }
            key.check_acceptable().map_err(|_| TxError::WeakKey)?;
            if agency.keys.iter().any(|e| e.key == *key) {
                return Err(invalid("the agency has held this key before"));
            }
            let mut keys = agency.keys.clone().into_vec();
            if let Some(last) = keys.last_mut() {
                last.until = Some(ctx.height);
            }
            keys.push(KeyEpoch {
                key: *key,
                from: ctx.height,
                until: None,
            });
            agency.keys = KeyHistory::new(keys).map_err(|_| TxError::KeyHistoryFull(id.clone()))?;
            ctx.view.put(&StateKey::Agency(id.clone()), &agency);
            Ok(())
        }
        GovernanceChange::SetKindPolicy { kind, policy } => {
            let current = ctx.policy(*kind)?;
            check_policy(ctx, *kind, policy)?;
            let name = |p: &KindPolicy| p.definition.as_ref().map(|d| d.name.clone());
            if name(&current) != name(policy) {
                return Err(invalid(
                    "a registered kind keeps the name it was registered under",
                ));
            }
            ctx.view.put(&StateKey::Policy(*kind), policy);
            Ok(())
        }
        GovernanceChange::AddKind { policy } => add_kind(ctx, policy),
        GovernanceChange::AddValidator { agency, key, power } => {
            let record = ctx.agency(agency)?;
            if record.removed_at.is_some() {
                return Err(TxError::AgencyRemoved(agency.clone()).into());
            }
            key.check_acceptable().map_err(|_| TxError::WeakKey)?;
            let set = ctx.validators()?;
            if set.get(key).is_some() {
                return Err(invalid("this key is a validator already"));
            }
            let mut members = set.validators.into_vec();
            members.push(Validator {
                agency: agency.clone(),
                key: *key,
                power: *power,
            });
            let set = ValidatorSet::new(members)
                .ok_or_else(|| invalid("validator power must be at least 1 and the set bounded"))?;
            ctx.view.put(&StateKey::Validators, &set);
            Ok(())
        }
        GovernanceChange::RemoveValidator { key } => {
            let set = ctx.validators()?;
            if set.get(key).is_none() {
                return Err(invalid("this key is not a validator"));
            }
            let members: Vec<Validator> = set
                .validators
                .iter()
                .filter(|v| v.key != *key)
                .cloned()
                .collect();
            let set = ValidatorSet::new(members)
                .ok_or_else(|| invalid("the last validator cannot be removed"))?;
            ctx.view.put(&StateKey::Validators, &set);
            Ok(())
        }
    }
}

/// Register a kind: the next number, under a name no kind has.
fn add_kind<S: TreeStore>(ctx: &mut Ctx<'_, '_, S>, policy: &KindPolicy) -> Result<(), Failure> {
    let registered: u16 = ctx.view.get(&StateKey::RegisteredKinds)?.unwrap_or(0);
    let next = registered
        .checked_add(1)
        .ok_or_else(|| invalid("no more kinds can be registered"))?;
    let kind = CertKind::Registered(registered);
    check_policy(ctx, kind, policy)?;
    let Some(definition) = &policy.definition else {
        return Err(invalid("a registered kind's policy needs a definition"));
    };
    let by_name = StateKey::KindByName(definition.name.clone());
    if ctx.view.exists(&by_name)? {
        return Err(TxError::KindNameTaken(definition.name.to_string()).into());
    }
    ctx.view.put(&StateKey::Policy(kind), policy);
    ctx.view.put(&by_name, &kind);
    ctx.view.put(&StateKey::RegisteredKinds, &next);
    ctx.emit(Event::KindAdded {
        kind,
        name: definition.name.clone(),
    });
    Ok(())
}

fn check_policy<S: TreeStore>(
    ctx: &Ctx<'_, '_, S>,
    kind: CertKind,
    policy: &KindPolicy,
) -> Result<(), Failure> {
    policy.check(kind).map_err(invalid)?;
    for a in policy.accreditors.iter().chain(policy.approvers.iter()) {
        ctx.agency(a)?;
    }
    Ok(())
}
