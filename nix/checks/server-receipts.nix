# `scripts/ci-local.sh bitnet-server-receipts` in the sandbox: clippy on the server's
# feature sets, its docs with every feature, the receipt and tuning tests, and the
# official OpenAI Python client (from nixpkgs, nix/lib.nix) against the real binary on
# 127.0.0.1. It runs on the shared dependency layer, which ran these same invocations
# (nix/lib.nix), and with crane's profile, handed to the script as CI_CARGO_PROFILE.
# Nothing gets installed: there is no rustup, apt or pip here, and the script needs none.
{ bitnet, ... }:
bitnet.craneLib.mkCargoDerivation (bitnet.commonArgs // {
  pname = "bitnet-rs-server-receipts";
  inherit (bitnet) cargoArtifacts;
  doInstallCargoArtifacts = false;
  nativeBuildInputs = [ bitnet.python ];
  env = bitnet.commonArgs.env // {
    BITNET_PYTHON_MODULES = toString bitnet.pythonModules;
  };
  # The server listens on 127.0.0.1 for the client; Darwin's sandbox refuses that unless asked.
  __darwinAllowLocalNetworking = true;
  buildPhaseCargoCommand = "CI_CARGO_PROFILE=\"$CARGO_PROFILE\" bash scripts/ci-local.sh bitnet-server-receipts";
})
