//! Any bytes as a transaction against the example consortium: the rules never panic, and a
//! refused transaction leaves the state root unchanged. Signatures are skipped
//! (`AlreadyVerified`) so the fuzzer reaches the rules behind them.
#![no_main]
use cachet_chain::tx::Transaction;
use cachet_contracts::{Executor, Failure, LocalChain, Signatures, example};
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
        Ok(_) => {}
        Err(Failure::Rejected(_)) => {
            let done = exec.finish().expect("in memory");
            assert_eq!(done.state_root, head.state_root, "a refused transaction changed the state");
        }
        Err(Failure::Store(e)) => panic!("storage error in memory: {e}"),
    }
});
