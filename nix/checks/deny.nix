# cargo-deny: licences, bans and sources (deny.toml). Advisories: see audit.nix.
{ bitnet, ... }:
bitnet.craneLib.cargoDeny {
  inherit (bitnet.commonArgs) pname version;
  src = bitnet.cargoSrc;
  cargoDenyChecks = "licenses bans sources";
}
