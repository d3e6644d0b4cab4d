# rustdoc for the workspace crates; any warning (broken links too) fails.
{ bitnet, ... }:
bitnet.craneLib.cargoDoc (bitnet.commonArgs // {
  inherit (bitnet) cargoArtifacts;
  cargoDocExtraArgs = "--workspace --no-deps";
  env = bitnet.commonArgs.env // {
    RUSTDOCFLAGS = "--deny warnings";
  };
})
