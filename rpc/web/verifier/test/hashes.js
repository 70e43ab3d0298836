// Checks the verifier's hash functions (hash.js) on inputs of many lengths — across BLAKE3's
// 64-byte blocks and 1,024-byte chunks and SHA-2's padding boundaries — against BLAKE3 and
// SHA-256 digests computed by the Rust crates (given in the file named on the command line,
// written by tests/tests/verifier.rs) and against Node.js's own SHA-256 and SHA-512.
// Input of length n: bytes i % 251 for i < n (as in BLAKE3's published test vectors).
"use strict";
require(require("path").join(__dirname, "..", "hash.js"));
const crypto = require("crypto");
const H = globalThis.cachet.hash;
const hex = (b) => Buffer.from(b).toString("hex");
const expected = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
let bad = 0;
for (const c of expected) {
  const input = Uint8Array.from({ length: c.len }, (_, i) => i % 251);
  const got = {
    blake3: hex(H.blake3(input)),
    sha256: hex(H.sha256(input)),
    sha512: hex(H.sha512(input)),
  };
  const want = {
    blake3: c.blake3,
    sha256: c.sha256,
    sha512: crypto.createHash("sha512").update(input).digest("hex"),
  };
  if (crypto.createHash("sha256").update(input).digest("hex") !== c.sha256) {
    console.log("the Rust SHA-256 and Node's differ at length " + c.len);
    bad++;
  }
  for (const k of Object.keys(want)) {
    if (got[k] !== want[k]) {
      console.log("DIFFER " + k + " at length " + c.len + ": " + got[k] + " != " + want[k]);
      bad++;
    }
  }
}
console.log("checked " + expected.length + " lengths, " + bad + " differences");
process.exit(bad === 0 ? 0 : 1);
