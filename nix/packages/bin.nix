# One workspace binary as its own package (crane's build-workspace-subset FAQ):
# `cargo build -p NAME`, reusing the shared dependency layer. pname is the
# binary's name so `nix run` finds result/bin/NAME.
{ pkgs, bitnet }:
{ name
, description
, features ? [ ]
}:
let
  inherit (pkgs) lib;
  featureArgs = lib.optionalString (features != [ ]) " --features ${lib.concatStringsSep "," features}";
in
bitnet.craneLib.buildPackage (bitnet.commonArgs // {
  inherit (bitnet) cargoArtifacts;
  pname = name;
  # Only Rust and Cargo files: fixture or script edits do not rebuild binaries.
  src = bitnet.cargoSrc;
  cargoExtraArgs = "--locked -p ${name}${featureArgs}";
  # The tests run once, in the nextest check.
  doCheck = false;
  meta = {
    inherit description;
    mainProgram = name;
    license = [ lib.licenses.mit lib.licenses.asl20 ];
  };
})
