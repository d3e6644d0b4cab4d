# `nix flake check`: each check is its own derivation, and none repeats another's work:
# the compiling ones share the one dependency layer (the msrv check has its own, for its
# own compiler), fmt, deny and audit need no build. The packages build as checks too.
{ pkgs, bitnet, packages }:
let
  check = file: import file { inherit pkgs bitnet; };

  checks = {
    clippy = check ./clippy.nix;
    fmt = check ./fmt.nix;
    doc = check ./doc.nix;
    nextest = check ./nextest.nix;
    deny = check ./deny.nix;
    audit = check ./audit.nix;
    msrv = check ./msrv.nix;
    bitnet-server-receipts = check ./server-receipts.nix;
  };

  # `default` is only an alias.
  packageChecks = builtins.removeAttrs packages [ "default" ];
in
checks // packageChecks
