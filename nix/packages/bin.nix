# One workspace binary as its own package (crane's build-workspace-subset FAQ):
# `cargo build -p NAME` on a source holding only the crates NAME reaches, reusing the
# shared dependency layer, which ran this very invocation on its dummy source (nix/lib.nix,
# so no dependency is compiled here). pname is the binary's name so `nix run` finds
# result/bin/NAME.
{ pkgs, bitnet }:
{ name
, description
}:
let
  inherit (pkgs) lib;
in
bitnet.craneLib.buildPackage (bitnet.commonArgs // {
  inherit (bitnet) cargoArtifacts;
  pname = name;
  # Only the Rust and Cargo files of NAME's crates: fixture, script or other binaries'
  # edits do not rebuild it.
  src = bitnet.crateSrc name;
  # No --locked: with the other members' crates absent, Cargo drops their entries from
  # Cargo.lock, which --locked refuses. The versions still are the locked ones: the
  # sandbox has no network and the vendored sources hold exactly Cargo.lock's versions;
  # every check on the full source keeps --locked.
  cargoExtraArgs = bitnet.packageCargoArgs name;
  # The tests run once, in the nextest check.
  doCheck = false;
  meta = {
    inherit description;
    mainProgram = name;
    license = [ lib.licenses.mit lib.licenses.asl20 ];
  };
})
