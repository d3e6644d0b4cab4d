# rustfmt --check over the workspace.
{ bitnet, ... }:
bitnet.craneLib.cargoFmt {
  inherit (bitnet.commonArgs) pname version;
  src = bitnet.cargoSrc;
}
