//! `cachet-rpc`: the JSON-RPC 2.0 server and the verify page a node serves.
//!
//! What it will be: jsonrpsee over HTTP and WebSocket, stable error codes, the OpenRPC
//! document, and the `/verify` page, against a narrow trait the node implements. It is filled
//! by the node and verification issues; until then it is empty on purpose and exports nothing.
//!
//! What it is not: consensus, storage or rules.
