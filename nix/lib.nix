# The crane setup every package, check and shell shares: toolchains, source
# filters, the common arguments and the one dependency layer (cargoArtifacts).
{ pkgs, crane, advisory-db }:
let
  inherit (pkgs) lib;

  root = ../.;
  cargoToml = lib.importTOML ../Cargo.toml;

  # MSRV from the workspace manifest (rust-version = "1.89"), as the full
  # version rust-overlay names its toolchains by ("1.89.0").
  msrv =
    let
      v = cargoToml.workspace.package.rust-version;
    in
    if builtins.length (lib.splitVersion v) == 2 then "${v}.0" else v;

  # Stable Rust for builds and checks: rustc, cargo, clippy, rustfmt, rust-docs.
  toolchain = pkgs.rust-bin.stable.latest.default;
  # The same toolchain plus what an editor wants, for `nix develop`.
  devToolchain = toolchain.override { extensions = [ "rust-src" "rust-analyzer" ]; };
  # The MSRV toolchain only needs to compile; its shell gets clippy and rustfmt too.
  msrvToolchain = pkgs.rust-bin.stable.${msrv}.minimal;
  msrvDevToolchain = pkgs.rust-bin.stable.${msrv}.default;

  craneLib = (crane.mkLib pkgs).overrideToolchain (_: toolchain);
  craneLibMsrv = (crane.mkLib pkgs).overrideToolchain (_: msrvToolchain);

  # Rust sources and every *.toml (Cargo files, .config/nextest.toml,
  # deny.toml): what compiling needs (cleanCargoSource's set), plus the
  # default model that bitnet-default-model embeds with include_bytes!.
  # The cargo-fuzz project (its own workspace, nightly only) stays out.
  cargoFiles = lib.fileset.difference
    (lib.fileset.unions [
      (craneLib.fileset.commonCargoSources root)
      ../crates/bitnet-default-model/model
    ])
    ../crates/bitnet-gguf/fuzz;
  cargoSrc = lib.fileset.toSource {
    inherit root;
    fileset = cargoFiles;
  };

  # What running the tests needs on top: the fixtures (models, tokenizers,
  # reference logits: .safetensors, .gguf, .npy, .json, .jsonl) and the
  # scripts the hermetic ci-local.sh checks run. cleanCargoSource alone
  # drops all of these.
  testFiles = lib.fileset.unions [
    cargoFiles
    ../fixtures
    ../models
    ../scripts
    # Fuzzing inputs kept as regression tests of the GGUF reader.
    ../crates/bitnet-gguf/tests/regressions
  ];
  # Tests only run at build time, so a filter that loses a fixture would show
  # up deep into a build. Fail evaluation instead if any of these is missing.
  testNeeds = [
    ../fixtures
    ../models
    ../crates/bitnet-gguf/tests/regressions
    ../scripts/ci-local.sh
    ../.config/nextest.toml
  ];
  missingTestFiles = lib.fileset.toList (
    lib.fileset.difference (lib.fileset.unions testNeeds) testFiles
  );
  missingNames = map (lib.path.removePrefix root) missingTestFiles;
  testSrc =
    assert lib.assertMsg (missingTestFiles == [ ]) ''
      nix/lib.nix: the test source filter drops ${toString (builtins.length missingNames)} file(s) the tests need, e.g. ${toString (lib.take 3 missingNames)}'';
    lib.fileset.toSource {
      inherit root;
      fileset = testFiles;
    };

  version = cargoToml.workspace.package.version;

  commonArgs = {
    pname = "bitnet-rs";
    inherit version;
    src = testSrc;
    strictDeps = true;
    buildInputs = lib.optionals pkgs.stdenv.isDarwin [ pkgs.libiconv ];
    env = {
      CARGO_INCREMENTAL = "0";
      RUSTC_WRAPPER = "";
    };
  };

  # Built once, reused by every check and package: a source change only
  # rebuilds the workspace crates. (mkDummySrc keeps only the Cargo files,
  # so fixtures and scripts do not invalidate it.)
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
in
{
  inherit
    advisory-db
    cargoArtifacts
    cargoSrc
    commonArgs
    craneLib
    craneLibMsrv
    devToolchain
    msrv
    msrvDevToolchain
    msrvToolchain
    testSrc
    toolchain
    version
    ;
}
