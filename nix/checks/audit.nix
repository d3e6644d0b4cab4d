# cargo-audit against the RustSec advisory database pinned in flake.lock.
{ bitnet, ... }:
bitnet.craneLib.cargoAudit {
  inherit (bitnet.commonArgs) pname version;
  inherit (bitnet) advisory-db;
  src = bitnet.cargoSrc;
}
