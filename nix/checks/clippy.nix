# Clippy on every target of the workspace; any warning fails.
{ bitnet, ... }:
bitnet.craneLib.cargoClippy (bitnet.commonArgs // {
  inherit (bitnet) cargoArtifacts;
  cargoClippyExtraArgs = "--workspace --all-targets -- --deny warnings";
})
