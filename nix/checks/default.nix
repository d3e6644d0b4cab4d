# `nix flake check`: each check is its own derivation, all on the shared
# dependency layer, plus the packages themselves.
{ pkgs, bitnet, packages }:
let
  check = file: import file { inherit pkgs bitnet; };
  ciLocal = import ./ci-local.nix { inherit pkgs bitnet; };

  checks = {
    clippy = check ./clippy.nix;
    fmt = check ./fmt.nix;
    doc = check ./doc.nix;
    nextest = check ./nextest.nix;
    deny = check ./deny.nix;
    audit = check ./audit.nix;
    msrv = check ./msrv.nix;
    # The scripts/ci-local.sh modes, run hermetically on the vendored dependencies.
    workspace = ciLocal "workspace";
    bitnet-server-receipts = ciLocal "bitnet-server-receipts";
  };

  # The packages build as part of the checks too (`default` is only an alias).
  packageChecks = builtins.removeAttrs packages [ "default" ];
in
checks // packageChecks
