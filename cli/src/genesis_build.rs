//! `cachet genesis build`: a genesis document from agency and validator key files.

use anyhow::{Context, Result, bail};
use cachet_chain::genesis::{GenesisAgency, GenesisDoc};
use cachet_chain::ids::{AgencyId, CertKind, ChainId, Timestamp};
use cachet_chain::state::{AgencyList, KindPolicy, Name, Validator};
use cachet_keys::file as keyfile;
use std::collections::BTreeMap;
use std::path::Path;

/// `ID=KEYFILE[:KIND,KIND...]`, e.g. `moi-land=keys/moi.key:land-title`.
pub fn parse_agency(spec: &str) -> Result<GenesisAgency> {
    let (id, rest) = spec
        .split_once('=')
        .context("expected ID=KEYFILE[:KINDS]")?;
    let (file, kinds) = match rest.split_once(':') {
        Some((f, k)) => (f, k),
        None => (rest, ""),
    };
    let key = keyfile::read(Path::new(file))?;
    let accredited = kinds
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| k.parse::<CertKind>().map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let id = AgencyId::new(id)?;
    Ok(GenesisAgency {
        name: Name::new(id.to_string())?,
        id,
        key: key.public(),
        accredited,
    })
}

/// `AGENCY=KEYFILE[:POWER]`.
pub fn parse_validator(spec: &str) -> Result<Validator> {
    let (agency, rest) = spec
        .split_once('=')
        .context("expected AGENCY=KEYFILE[:POWER]")?;
    let (file, power) = match rest.split_once(':') {
        Some((f, p)) => (f, p.parse().context("power must be a number")?),
        None => (rest, 1),
    };
    Ok(Validator {
        agency: AgencyId::new(agency)?,
        key: keyfile::read(Path::new(file))?.public(),
        power,
    })
}

/// The default policy of a kind: its accredited agencies accredit, no approvals, no oracles.
fn default_policy(kind: CertKind, agencies: &[GenesisAgency]) -> Result<KindPolicy> {
    let accreditors: Vec<AgencyId> = agencies
        .iter()
        .filter(|a| a.accredited.contains(&kind))
        .map(|a| a.id.clone())
        .collect();
    Ok(KindPolicy {
        max_batch_leaves: if kind == CertKind::RewardOrder {
            1 << 20
        } else {
            0
        },
        ..KindPolicy::open(AgencyList::new(accreditors)?)
    })
}

/// Build and validate a genesis document.
pub fn build(
    chain_id: &str,
    agencies: &[String],
    validators: &[String],
    policies: Option<&Path>,
    genesis_time: Option<u64>,
) -> Result<GenesisDoc> {
    let agencies: Vec<GenesisAgency> = agencies
        .iter()
        .map(|s| parse_agency(s))
        .collect::<Result<_>>()?;
    let validators: Vec<Validator> = validators
        .iter()
        .map(|s| parse_validator(s))
        .collect::<Result<_>>()?;
    if validators.is_empty() {
        bail!("a genesis needs at least one --validator");
    }
    let mut policy_map: BTreeMap<CertKind, KindPolicy> = match policies {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)
            .with_context(|| format!("{} is not a map of kind to policy", p.display()))?,
        None => BTreeMap::new(),
    };
    for kind in CertKind::ALL {
        if let std::collections::btree_map::Entry::Vacant(e) = policy_map.entry(kind) {
            e.insert(default_policy(kind, &agencies)?);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let doc = GenesisDoc {
        chain_id: ChainId::new(chain_id)?,
        genesis_time: Timestamp(genesis_time.unwrap_or(now)),
        proposal_ttl: 10_000,
        checkpoint_interval: cachet_chain::genesis::DEFAULT_CHECKPOINT_INTERVAL,
        agencies,
        validators,
        policies: policy_map,
    };
    doc.validate()?;
    Ok(doc)
}
