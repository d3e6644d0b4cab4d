# `nix develop`: rust-toolchain.toml's Rust (clippy, rustfmt, rust-src, plus
# rust-analyzer) and the tools the checks use. `nix develop .#msrv`: the MSRV toolchain.
{ pkgs, bitnet }:
let
  tools = [
    pkgs.cargo-nextest
    pkgs.cargo-deny
    pkgs.cargo-audit
    pkgs.pkg-config
    bitnet.python
    pkgs.jq
  ];
  # No sccache or other wrapper from the user's environment; no incremental
  # state (the same settings as scripts/ci-local.sh).
  env = {
    RUSTC_WRAPPER = "";
    CARGO_INCREMENTAL = "0";
  };
in
{
  default = pkgs.mkShell {
    packages = [ bitnet.devToolchain ] ++ tools;
    inherit env;
  };
  msrv = pkgs.mkShell {
    packages = [ bitnet.msrvDevToolchain ] ++ tools;
    inherit env;
  };
}
