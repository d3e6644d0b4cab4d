# The workspace builds with the MSRV (rust-version in Cargo.toml, 1.89.0).
# A different compiler cannot reuse the stable dependency layer, so the MSRV
# gets its own, built with the same arguments.
{ bitnet, ... }:
let
  args = bitnet.commonArgs // {
    pname = "bitnet-rs-msrv";
    src = bitnet.cargoSrc;
    cargoExtraArgs = "--locked --workspace";
  };
in
bitnet.craneLibMsrv.cargoBuild (args // {
  cargoArtifacts = bitnet.craneLibMsrv.buildDepsOnly args;
})
