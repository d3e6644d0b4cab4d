{
  description = "BitNet-rs: fast, correct CPU inference for ternary BitNet b1.58 language models";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";
    crane.url = "github:ipetkov/crane";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # RustSec advisories for the `audit` check (not a flake, just the database).
    advisory-db = {
      url = "github:rustsec/advisory-db";
      flake = false;
    };
  };

  outputs =
    { nixpkgs, crane, rust-overlay, advisory-db, ... }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];

      # Everything per system comes from nix/: the crane setup (lib.nix), then
      # the packages, checks and shells built on it. Evaluated once per system
      # and shared by all outputs. The source is ./. filtered in nix/lib.nix.
      bySystem = nixpkgs.lib.genAttrs systems (
        system:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
          };
          bitnet = import ./nix/lib.nix { inherit pkgs crane advisory-db; };
          packages = import ./nix/packages { inherit pkgs bitnet; };
        in
        {
          inherit packages;
          checks = import ./nix/checks { inherit pkgs bitnet packages; };
          apps = import ./nix/apps.nix { inherit pkgs packages; };
          devShells = import ./nix/devshells.nix { inherit pkgs bitnet; };
          formatter = pkgs.nixpkgs-fmt;
        }
      );
      output = name: builtins.mapAttrs (_: outputs: outputs.${name}) bySystem;
    in
    {
      packages = output "packages";
      checks = output "checks";
      apps = output "apps";
      devShells = output "devShells";
      formatter = output "formatter";
    };
}
