# The workspace compiles with the MSRV (rust-version in Cargo.toml): every target, every
# feature, in check mode. A different compiler cannot reuse the shared dependency layer,
# so this check has its own (nix/lib.nix msrvArtifacts), which compiled the dependencies
# once, with this same command.
{ bitnet, ... }:
bitnet.craneLibMsrv.mkCargoDerivation (bitnet.msrvArgs // {
  cargoArtifacts = bitnet.msrvArtifacts;
  buildPhaseCargoCommand = bitnet.msrvCommand;
  doInstallCargoArtifacts = false;
})
