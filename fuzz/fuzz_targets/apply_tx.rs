//! Any bytes as a transaction against the example consortium: the rules never panic, a
//! transaction that cannot be in the block leaves the state root unchanged, and one refused in
//! the block changes its signer's nonce and nothing else. Signatures are skipped
//! (`AlreadyVerified`) so the fuzzer reaches the rules behind them.
#![no_main]
use cachet_chain::codec;
use cachet_chain::state::{AgencyRecord, StateKey};
use cachet_chain::state_tree;
use cachet_chain::tx::Transaction;
use cachet_contracts::{Executor, Failure, LocalChain, Outcome, Signatures, example};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn chain() -> &'static LocalChain {
    static CHAIN: OnceLock<LocalChain> = OnceLock::new();
    CHAIN.get_or_init(|| LocalChain::new(&example::genesis()).expect("example genesis"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = Transaction::decode(data) else { return };
    let chain = chain();
    let head = chain.head();
    let mut exec = Executor::new(chain.store(), head.state_root, head.height.next(), head.time.plus_ms(1000))
        .expect("in memory");
    match exec.apply(&tx, Signatures::AlreadyVerified) {
        Ok(Outcome::Executed(_)) => {}
        Ok(Outcome::Refused(_)) => {
            let done = exec.finish().expect("in memory");
            let key = StateKey::Agency(tx.body.signer.clone());
            let mut agency: AgencyRecord = chain.get(&key).expect("in memory").expect("signer");
            agency.next_nonce += 1;
            let only_nonce = [(key.hash(), Some(codec::encode(&agency)))];
            let (expected, _) =
                state_tree::update(chain.store(), &head.state_root, &only_nonce).expect("in memory");
            assert_eq!(done.state_root, expected, "a refused transaction changed more than its nonce");
        }
        Err(Failure::Rejected(_)) => {
            let done = exec.finish().expect("in memory");
            assert_eq!(done.state_root, head.state_root, "a refused transaction changed the state");
        }
        Err(Failure::Store(e)) => panic!("storage error in memory: {e}"),
    }
});
