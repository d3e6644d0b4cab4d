# The test suite with cargo-nextest's `ci` profile (.config/nextest.toml), the
# fixtures in the source; then the doc tests nextest does not run (as
# `scripts/ci-local.sh nextest` does). The JUnit report is kept in the output.
{ pkgs, bitnet }:
bitnet.craneLib.cargoNextest (bitnet.commonArgs // {
  inherit (bitnet) cargoArtifacts;
  # The server and end-to-end tests stop servers with `kill -TERM`; stdenv's coreutils has
  # no kill (procps has; Darwin's sandbox has /bin/kill).
  nativeBuildInputs = pkgs.lib.optionals pkgs.stdenv.isLinux [ pkgs.procps ];
  cargoExtraArgs = "--locked";
  cargoNextestExtraArgs = "--workspace --all-targets --profile ci";
  # Server and end-to-end tests talk to a server on 127.0.0.1.
  __darwinAllowLocalNetworking = true;
  postCheck = ''
    cp "''${CARGO_TARGET_DIR:-target}/nextest/ci/junit.xml" "$out/junit.xml"
    cargoWithProfile test --workspace --doc --locked
  '';
})
