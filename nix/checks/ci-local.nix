# A `scripts/ci-local.sh MODE` run inside the Nix sandbox, on the vendored
# dependencies. The script installs tools only when they are missing, so
# everything it looks for is put on PATH here and nothing gets installed:
# cargo-nextest, the stable toolchain (with clippy and rustfmt), and the
# MSRV cargo via CARGO_MSRV (mode msrv uses it instead of `cargo +1.89.0`).
{ pkgs, bitnet }:
let
  inherit (pkgs) lib;
  # ci-local.sh asks rustup which components are installed before adding
  # them. There is no rustup in Nix: answer the question truthfully for this
  # toolchain and refuse anything that would install.
  rustupShim = pkgs.writeShellScriptBin "rustup" ''
    if [ "$*" = "component list --installed" ]; then
      printf '%s\n' clippy rustfmt cargo rustc rust-std
      exit 0
    fi
    echo "rustup $*: not available inside the Nix sandbox (toolchains come from rust-overlay)" >&2
    exit 1
  '';
in
mode:
bitnet.craneLib.mkCargoDerivation (bitnet.commonArgs // {
  pname = "bitnet-rs-ci-${mode}";
  # The modes start from `cargo clean`; nothing to inherit.
  cargoArtifacts = null;
  doInstallCargoArtifacts = false;
  nativeBuildInputs = [
    pkgs.cargo-nextest
    pkgs.curl
    pkgs.jq
    rustupShim
  ];
  env = bitnet.commonArgs.env // {
    CARGO_MSRV = lib.getExe' bitnet.msrvToolchain "cargo";
  };
  buildPhaseCargoCommand = ''
    bash scripts/ci-local.sh ${lib.escapeShellArg mode}
  '';
  installPhaseCommand = ''
    mkdir -p "$out"
    if [ -f target/nextest/ci/junit.xml ]; then cp target/nextest/ci/junit.xml "$out/"; fi
  '';
})
