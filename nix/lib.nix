# The crane setup every package, check and shell shares: the toolchains, the source
# filesets, the common arguments and the dependency layers (cargoArtifacts).
#
# Two dependency layers, on purpose: `cargoArtifacts` (the pinned toolchain) under every
# check and package that compiles, and `msrvArtifacts` (the MSRV compiler, which cannot
# reuse another compiler's output) under the msrv check alone. scripts/ci-local.sh nix-rehearse runs each
# check's commands outside Nix and fails if one of them compiles a dependency again.
{ pkgs, crane, advisory-db }:
let
  inherit (pkgs) lib;

  root = ../.;
  cargoToml = lib.importTOML ../Cargo.toml;
  version = cargoToml.workspace.package.version;

  # --- toolchains ---

  # rust-toolchain.toml names the one toolchain (a fixed stable version with clippy,
  # rustfmt and rust-src); rustup reads the same file outside Nix.
  toolchainFile = ../rust-toolchain.toml;
  toolchain = pkgs.rust-bin.fromRustupToolchainFile toolchainFile;
  # The same version plus rust-analyzer, for `nix develop`.
  devToolchain = toolchain.override {
    extensions = (lib.importTOML toolchainFile).toolchain.components ++ [ "rust-analyzer" ];
  };

  # MSRV from the workspace manifest (rust-version = "1.89"), as the full version
  # rust-overlay names its toolchains by ("1.89.0"). It only needs to compile; its shell
  # gets clippy and rustfmt too.
  msrv =
    let
      v = cargoToml.workspace.package.rust-version;
    in
    if builtins.length (lib.splitVersion v) == 2 then "${v}.0" else v;
  msrvToolchain = pkgs.rust-bin.stable.${msrv}.minimal;
  msrvDevToolchain = pkgs.rust-bin.stable.${msrv}.default;

  craneLib = (crane.mkLib pkgs).overrideToolchain (_: toolchain);
  craneLibMsrv = (crane.mkLib pkgs).overrideToolchain (_: msrvToolchain);

  # --- sources ---

  crateNames = builtins.attrNames (
    lib.filterAttrs (_: type: type == "directory") (builtins.readDir ../crates)
  );
  crateDir = name: ../crates + "/${name}";
  # The cargo-fuzz project (fuzz/, its own workspace, nightly only) stays out of every
  # source: its targets compile nothing the checks build. The inputs kept from fuzzing live
  # in the crates' tests/ folders, which the test source has.
  fuzz = lib.fileset.maybeMissing ../fuzz;
  # Files a crate's code or tests compile in besides its Rust sources: include_bytes! and
  # include_str! data.
  embedded = {
    bitnet-default-model = [ ../crates/bitnet-default-model/model ];
    # The web chat page (src/webui.rs).
    bitnet-server = [ ../crates/bitnet-server/webui ];
  };
  # One crate's Rust and Cargo files (crane's commonCargoSources) and what it embeds.
  crateFiles =
    name:
    lib.fileset.unions (
      [ (craneLib.fileset.commonCargoSources (crateDir name)) ]
      ++ embedded.${name} or [ ]
    );

  # The workspace crates a crate's manifest names in any dependency table. Cargo loads the
  # manifests of dev-dependencies as well, even for `cargo build -p`, so they count.
  localDeps =
    name:
    let
      manifest = lib.importTOML (crateDir name + "/Cargo.toml");
      kinds = [ "dependencies" "dev-dependencies" "build-dependencies" ];
      tables =
        map (kind: manifest.${kind} or { }) kinds
        ++ lib.concatMap (target: map (kind: target.${kind} or { }) kinds) (
          builtins.attrValues (manifest.target or { })
        );
      named = lib.concatMap (lib.mapAttrsToList (key: spec: spec.package or key)) tables;
    in
    lib.unique (builtins.filter (dep: builtins.elem dep crateNames) named);
  # A crate and every workspace crate it reaches.
  crateClosure =
    name:
    map (item: item.key) (
      builtins.genericClosure {
        startSet = [{ key = name; }];
        operator = item: map (key: { inherit key; }) (localDeps item.key);
      }
    );

  # A binary package's source: the workspace manifest and lock and only the crates the
  # binary reaches (`members = ["crates/*"]` matches what is there), so an edit to
  # bitnet-cli does not rebuild bitnet-server and the other way round.
  crateSrc =
    name:
    lib.fileset.toSource {
      inherit root;
      fileset = lib.fileset.unions ([ ../Cargo.toml ../Cargo.lock ] ++ map crateFiles (crateClosure name));
    };

  # Rust sources and every *.toml (Cargo files, deny.toml, .cargo/audit.toml,
  # .config/nextest.toml): what the workspace-wide compiling checks, fmt, deny and audit
  # read, plus the default model that bitnet-default-model embeds.
  cargoFiles = lib.fileset.unions (
    [ (lib.fileset.difference (craneLib.fileset.commonCargoSources root) fuzz) ]
    ++ lib.concatLists (builtins.attrValues embedded)
  );
  cargoSrc = lib.fileset.toSource {
    inherit root;
    fileset = cargoFiles;
  };

  # What running the tests needs on top: the fixtures (models, tokenizers, reference
  # logits: .safetensors, .gguf, .npy, .json, .jsonl), every crate's tests/ data, the
  # scripts the receipts check runs. cleanCargoSource alone drops all of these.
  testFiles = lib.fileset.unions ([
    cargoFiles
    ../fixtures
    ../models
    ../scripts
  ] ++ map (name: lib.fileset.maybeMissing (crateDir name + "/tests")) crateNames);
  # Tests only run at build time, so a filter that loses a fixture would show up deep into
  # a build. Fail evaluation instead if any of these is missing.
  testNeeds = [
    ../fixtures
    ../models
    # Inputs kept from fuzzing, replayed by the GGUF reader's, the loaders' and the
    # server's regression tests.
    ../crates/bitnet-gguf/tests/regressions
    ../crates/bitnet-engine/tests/fuzz_harness/mod.rs
    ../crates/bitnet-engine/tests/fuzz_regressions
    ../crates/bitnet-server/tests/fuzz_regressions
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

  # --- what gets built ---

  # The binaries as packages, with the features each is built with.
  packageFeatures = {
    bitnet-cli = [ ];
    bitnet-server = [ "cpu" ];
    bitnet-st2gguf = [ ];
  };
  packageCargoArgs =
    name:
    "-p ${name}"
    + lib.optionalString (packageFeatures.${name} != [ ]) " --features ${lib.concatStringsSep "," packageFeatures.${name}}";

  # Python for the checks that drive our binaries from Python, from nixpkgs (nothing is
  # installed at build time). BITNET_PYTHON_MODULES names them for the scripts and for
  # nix-rehearse, which gives its stand-in interpreter the same modules.
  pythonModules = [
    "openai"
    "jsonschema"
  ];
  python = pkgs.python3.withPackages (ps: map (module: ps.${module}) pythonModules);

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

  # The dependency layer. Cargo resolves features per invocation: `-p bitnet-server`
  # turns on, in shared dependencies, only what bitnet-server's graph asks for; the whole
  # workspace unifies every member's requests; tests and --all-targets add what the
  # dev-dependencies ask for. Each combination is a different build of those
  # dependencies. So the layer runs, on crane's dummy source, every cargo invocation a
  # check or package below runs (profile from crane's cargoWithProfile, release), and
  # none of them compiles a dependency again.
  layerCommands = [
    # crane's default, for clippy, doc and nextest over the workspace.
    "check --locked --all-targets"
    "build --locked"
    "test --locked --no-run"
    # doc: the libraries without dev-dependencies.
    "check --locked --workspace"
    # bitnet-server-receipts (scripts/ci-local.sh): clippy on the server's feature sets,
    # its docs with every feature, the receipt tests and the binary the OpenAI client
    # talks to.
    "check --locked -p bitnet-server --all-targets"
    "check --locked -p bitnet-server --all-targets --no-default-features --features cpu,receipts,tuning"
    "check --locked -p bitnet-server --all-features"
    "test --locked -p bitnet-server --no-default-features --features cpu,receipts,tuning --no-run"
    "build --locked -p bitnet-server --features cpu,receipts,tuning"
  ]
  # The packages, as nix/packages/bin.nix builds them.
  ++ map (name: "build --locked ${packageCargoArgs name}") (builtins.attrNames packageFeatures);

  cargoArtifacts = craneLib.buildDepsOnly (commonArgs // {
    buildPhaseCargoCommand = lib.concatMapStrings (command: "cargoWithProfile ${command}\n") layerCommands;
    # Everything ran in the build phase (crane's default check phase would repeat
    # `test --no-run`).
    doCheck = false;
  });

  # The MSRV layer: one compile, of exactly what the msrv check compiles (check mode,
  # every target and feature; the check holds the source to Rust ${msrv}, codegen adds
  # nothing to that).
  msrvCommand = "cargoWithProfile check --locked --workspace --all-targets --all-features";
  msrvArgs = commonArgs // {
    pname = "bitnet-rs-msrv";
    src = cargoSrc;
  };
  msrvArtifacts = craneLibMsrv.buildDepsOnly (msrvArgs // {
    buildPhaseCargoCommand = msrvCommand;
    doCheck = false;
  });
in
{
  inherit
    advisory-db
    cargoArtifacts
    cargoSrc
    commonArgs
    craneLib
    craneLibMsrv
    crateSrc
    devToolchain
    msrv
    msrvArgs
    msrvArtifacts
    msrvCommand
    msrvDevToolchain
    msrvToolchain
    packageCargoArgs
    packageFeatures
    python
    pythonModules
    testSrc
    toolchain
    version
    ;
}
