//! The certificate lifecycle every kind shares: issue, batch issue, supersede, revoke, approve,
//! record an event, accredit. Kind-specific rules are called from here (see [`crate::kinds`]).

use crate::ctx::Ctx;
use crate::error::{Failure, TxError};
use crate::events::Event;
use crate::kinds;
use cachet_chain::document::CertId;
use cachet_chain::ids::{AgencyId, CertKind, Timestamp};
use cachet_chain::state::{
    Accreditation, AgencyRecord, Approval, ApprovalList, BatchRecord, CertStatus,
    CertificateRecord, KeyEpoch, KeyHistory, KindPolicy, MortgageList, RevocationRecord, StateKey,
};
use cachet_chain::state_tree::TreeStore;
use cachet_chain::tx::{
    AgencyRegistration, BatchEntry, BatchIssuance, CertEvent, Issuance, RevocationReason,
    batch_leaf,
};

/// Check a validity window against the kind's policy and the block time.
fn check_validity(
    policy: &KindPolicy,
    now: Timestamp,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<(), TxError> {
    let bad = |m: &str| Err(TxError::InvalidValidity(m.into()));
    if policy.requires_validity && (from.is_none() || until.is_none()) {
        return bad("this kind needs valid_from and valid_until");
    }
    match until {
        Some(until) => {
            if until <= now {
                return bad("valid_until is not after the block time");
            }
            if from.is_some_and(|f| f >= until) {
                return bad("valid_from is not before valid_until");
            }
            let start = from.unwrap_or(now);
            if policy.max_validity_ms > 0
                && until.0.saturating_sub(start.0) > policy.max_validity_ms
            {
                return bad("validity window is longer than the kind allows");
            }
        }
        None if policy.max_validity_ms > 0 => {
            return bad("this kind limits validity, so valid_until is required");
        }
        None => {}
    }
    Ok(())
}

/// Why a certificate in `status` cannot be acted on as active.
pub(crate) fn require_active(record: &CertificateRecord) -> Result<(), TxError> {
    match record.status {
        CertStatus::Active => Ok(()),
        CertStatus::Pending => Err(TxError::PendingApproval),
        CertStatus::Revoked { .. } => Err(TxError::AlreadyRevoked),
        CertStatus::Superseded { .. } => Err(TxError::AlreadySuperseded),
    }
}

/// Issue one certificate, as a successor of `supersedes` when given.
pub(crate) fn issue<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    issuance: &Issuance,
    supersedes: Option<&CertificateRecord>,
) -> Result<(), Failure> {
    let policy = ctx.policy(issuance.kind)?;
    ctx.require_accredited(issuance.kind)?;
    check_validity(&policy, ctx.time, issuance.valid_from, issuance.valid_until)?;
    let id = issuance.cert_id();
    if ctx.view.exists(&StateKey::Certificate(id))? {
        return Err(TxError::AlreadyExists(format!("certificate {id}")).into());
    }
    let terms = kinds::check_issue(ctx, &policy, issuance)?;
    let pending = policy.approvals_required > 0;
    let record = CertificateRecord {
        kind: issuance.kind,
        issuer: ctx.signer.clone(),
        commitment: issuance.commitment,
        issued_at: ctx.height,
        issued_time: ctx.time,
        valid_from: issuance.valid_from,
        valid_until: issuance.valid_until,
        terms,
        status: if pending {
            CertStatus::Pending
        } else {
            CertStatus::Active
        },
        supersedes: supersedes.map(|p| p.id()),
        approvals: ApprovalList::default(),
        mortgages: MortgageList::default(),
        updated_at: ctx.height,
    };
    ctx.view.put(&StateKey::Certificate(id), &record);
    ctx.emit(Event::Issued {
        id,
        kind: issuance.kind,
        issuer: ctx.signer.clone(),
        pending,
    });
    if let (Some(previous), false) = (supersedes, pending) {
        mark_superseded(ctx, previous.clone(), id);
    }
    Ok(())
}

fn mark_superseded<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    mut previous: CertificateRecord,
    by: CertId,
) {
    previous.status = CertStatus::Superseded {
        by,
        at: ctx.height,
        time: ctx.time,
    };
    previous.updated_at = ctx.height;
    let id = previous.id();
    ctx.view.put(&StateKey::Certificate(id), &previous);
    ctx.emit(Event::Superseded {
        previous: id,
        next: by,
    });
}

/// Replace an active certificate with `next`.
pub(crate) fn supersede<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    previous: &CertId,
    next: &Issuance,
) -> Result<(), Failure> {
    let prev = ctx.certificate(previous)?;
    if prev.kind != next.kind {
        return Err(TxError::KindMismatch {
            expected: prev.kind,
            actual: next.kind,
        }
        .into());
    }
    require_active(&prev)?;
    let policy = ctx.policy(prev.kind)?;
    kinds::check_supersede(ctx, &policy, &prev, next)?;
    issue(ctx, next, Some(&prev))
}

/// Revoke a certificate.
pub(crate) fn revoke<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    id: &CertId,
    reason: RevocationReason,
) -> Result<(), Failure> {
    let mut record = ctx.certificate(id)?;
    let policy = ctx.policy(record.kind)?;
    ctx.require_issuer_or_accreditor(&record.issuer, &policy)?;
    match record.status {
        CertStatus::Active | CertStatus::Pending => {}
        CertStatus::Revoked { .. } => return Err(TxError::AlreadyRevoked.into()),
        CertStatus::Superseded { .. } => return Err(TxError::AlreadySuperseded.into()),
    }
    record.status = CertStatus::Revoked {
        at: ctx.height,
        time: ctx.time,
        by: ctx.signer.clone(),
        reason,
    };
    record.updated_at = ctx.height;
    ctx.view.put(&StateKey::Certificate(*id), &record);
    ctx.emit(Event::Revoked { id: *id });
    Ok(())
}

/// Approve a pending certificate; the last needed approval activates it.
pub(crate) fn approve<S: TreeStore>(ctx: &mut Ctx<'_, '_, S>, id: &CertId) -> Result<(), Failure> {
    let mut record = ctx.certificate(id)?;
    let policy = ctx.policy(record.kind)?;
    if !policy.approvers.contains(&ctx.signer) {
        return Err(TxError::NotApprover(ctx.signer.clone()).into());
    }
    if record.status != CertStatus::Pending {
        return Err(TxError::NotPending.into());
    }
    if record.approvals.iter().any(|a| a.agency == ctx.signer) {
        return Err(TxError::AlreadyApproved(ctx.signer.clone()).into());
    }
    let mut approvals = record.approvals.clone().into_vec();
    approvals.push(Approval {
        agency: ctx.signer.clone(),
        at: ctx.height,
    });
    // Approvers that have since left the policy do not count.
    let counted = approvals
        .iter()
        .filter(|a| policy.approvers.contains(&a.agency))
        .count();
    record.approvals =
        ApprovalList::new(approvals).map_err(|e| TxError::InvalidChange(e.to_string()))?;
    record.updated_at = ctx.height;
    ctx.emit(Event::Approved {
        id: *id,
        agency: ctx.signer.clone(),
    });
    if counted >= policy.approvals_required as usize {
        let previous = match record.supersedes {
            Some(prev_id) => {
                let prev = ctx.certificate(&prev_id)?;
                require_active(&prev)?;
                Some(prev)
            }
            None => None,
        };
        record.status = CertStatus::Active;
        ctx.emit(Event::Activated { id: *id });
        if let Some(prev) = previous {
            mark_superseded(ctx, prev, *id);
        }
    }
    ctx.view.put(&StateKey::Certificate(*id), &record);
    Ok(())
}

/// Record a lifecycle event on an active certificate.
pub(crate) fn record_event<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    id: &CertId,
    event: &CertEvent,
) -> Result<(), Failure> {
    let mut record = ctx.certificate(id)?;
    require_active(&record)?;
    let policy = ctx.policy(record.kind)?;
    kinds::record_event(ctx, &policy, &mut record, event)?;
    record.updated_at = ctx.height;
    ctx.view.put(&StateKey::Certificate(*id), &record);
    ctx.emit(Event::EventRecorded { id: *id });
    Ok(())
}

/// Issue a Merkle batch.
pub(crate) fn issue_batch<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    batch: &BatchIssuance,
) -> Result<(), Failure> {
    let policy = ctx.policy(batch.kind)?;
    if policy.max_batch_leaves == 0 {
        return Err(TxError::BatchNotAllowed(batch.kind).into());
    }
    if batch.leaf_count == 0 || batch.leaf_count > policy.max_batch_leaves {
        return Err(TxError::BatchSize {
            count: batch.leaf_count,
            max: policy.max_batch_leaves,
        }
        .into());
    }
    ctx.require_accredited(batch.kind)?;
    check_validity(&policy, ctx.time, batch.valid_from, batch.valid_until)?;
    if policy.approvals_required > 0 {
        // Batch entries have no record of their own to collect approvals on.
        return Err(TxError::BatchNotAllowed(batch.kind).into());
    }
    let id = batch.batch_id();
    if ctx.view.exists(&StateKey::Batch(id))? {
        return Err(TxError::AlreadyExists(format!("batch {id}")).into());
    }
    let record = BatchRecord {
        kind: batch.kind,
        issuer: ctx.signer.clone(),
        root: batch.root,
        leaf_count: batch.leaf_count,
        revoked: 0,
        issued_at: ctx.height,
        issued_time: ctx.time,
        valid_from: batch.valid_from,
        valid_until: batch.valid_until,
    };
    ctx.view.put(&StateKey::Batch(id), &record);
    ctx.emit(Event::BatchIssued {
        batch: id,
        kind: batch.kind,
        issuer: ctx.signer.clone(),
        leaf_count: batch.leaf_count,
    });
    Ok(())
}

/// Revoke one entry of a batch.
pub(crate) fn revoke_batch_entry<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    entry: &BatchEntry,
    reason: RevocationReason,
) -> Result<(), Failure> {
    let mut batch: BatchRecord = ctx
        .view
        .get(&StateKey::Batch(entry.batch))?
        .ok_or_else(|| TxError::UnknownBatch(entry.batch.to_string()))?;
    let policy = ctx.policy(batch.kind)?;
    ctx.require_issuer_or_accreditor(&batch.issuer, &policy)?;
    if !entry.proof.verify(
        &batch.root,
        batch.leaf_count,
        &batch_leaf(&entry.commitment),
    ) {
        return Err(TxError::BadBatchProof.into());
    }
    let key = StateKey::BatchRevocation(entry.batch, entry.proof.index);
    if ctx.view.exists(&key)? {
        return Err(TxError::AlreadyRevoked.into());
    }
    ctx.view.put(
        &key,
        &RevocationRecord {
            commitment: entry.commitment,
            at: ctx.height,
            time: ctx.time,
            by: ctx.signer.clone(),
            reason,
        },
    );
    // Counted on the batch, so that receipts of its other entries need no proof while it
    // has none.
    batch.revoked += 1;
    ctx.view.put(&StateKey::Batch(entry.batch), &batch);
    ctx.emit(Event::BatchEntryRevoked {
        batch: entry.batch,
        index: entry.proof.index,
    });
    Ok(())
}

/// Create an agency record (registration by an accreditor or by governance).
pub(crate) fn register_agency<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    id: &AgencyId,
    registration: &AgencyRegistration,
) -> Result<(), Failure> {
    if ctx.view.exists(&StateKey::Agency(id.clone()))? {
        return Err(TxError::AlreadyExists(format!("agency {id}")).into());
    }
    registration
        .key
        .check_acceptable()
        .map_err(|_| TxError::WeakKey)?;
    let keys = KeyHistory::new(vec![KeyEpoch {
        key: registration.key,
        from: ctx.height,
        until: None,
    }])
    .map_err(|e| TxError::InvalidChange(e.to_string()))?;
    let record = AgencyRecord {
        id: id.clone(),
        name: registration.name.clone(),
        keys,
        next_nonce: 0,
        registered_at: ctx.height,
        removed_at: None,
    };
    ctx.view.put(&StateKey::Agency(id.clone()), &record);
    ctx.emit(Event::AgencyRegistered { agency: id.clone() });
    Ok(())
}

/// Accredit an agency for a kind, registering it first when asked.
pub(crate) fn accredit<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    kind: CertKind,
    agency: &AgencyId,
    registration: Option<&AgencyRegistration>,
) -> Result<(), Failure> {
    let policy = ctx.policy(kind)?;
    if !policy.accreditors.contains(&ctx.signer) {
        return Err(TxError::NotAccreditor(ctx.signer.clone()).into());
    }
    match registration {
        Some(reg) => register_agency(ctx, agency, reg)?,
        None => {
            if ctx.agency(agency)?.removed_at.is_some() {
                return Err(TxError::AgencyRemoved(agency.clone()).into());
            }
        }
    }
    let key = StateKey::Accreditation(kind, agency.clone());
    if ctx.view.exists(&key)? {
        return Err(TxError::AlreadyExists(format!("accreditation of {agency} for {kind}")).into());
    }
    ctx.view.put(
        &key,
        &Accreditation {
            since: ctx.height,
            by: Some(ctx.signer.clone()),
        },
    );
    ctx.emit(Event::Accredited {
        kind,
        agency: agency.clone(),
    });
    Ok(())
}

/// Withdraw an accreditation.
pub(crate) fn unaccredit<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    kind: CertKind,
    agency: &AgencyId,
) -> Result<(), Failure> {
    let policy = ctx.policy(kind)?;
    if !policy.accreditors.contains(&ctx.signer) {
        return Err(TxError::NotAccreditor(ctx.signer.clone()).into());
    }
    let key = StateKey::Accreditation(kind, agency.clone());
    if !ctx.view.exists(&key)? {
        return Err(TxError::NotAccredited {
            agency: agency.clone(),
            kind,
        }
        .into());
    }
    ctx.view.delete(&key);
    ctx.emit(Event::Unaccredited {
        kind,
        agency: agency.clone(),
    });
    Ok(())
}
