# The flake's packages: the three binaries (features: nix/lib.nix packageFeatures) and,
# on Linux, the server's OCI image.
{ pkgs, bitnet }:
let
  bin = import ./bin.nix { inherit pkgs bitnet; };

  bitnet-cli = bin {
    name = "bitnet-cli";
    description = "Run, chat with, inspect and benchmark BitNet b1.58 models on the CPU";
  };
  bitnet-st2gguf = bin {
    name = "bitnet-st2gguf";
    description = "Convert Hugging Face BitNet safetensors checkpoints to GGUF";
  };
  bitnet-server = bin {
    name = "bitnet-server";
    description = "OpenAI-compatible HTTP server for BitNet b1.58 models";
  };

  # dockerTools images hold Linux binaries: no image on Darwin.
  image = pkgs.lib.optionalAttrs pkgs.stdenv.isLinux {
    bitnet-server-image = import ./bitnet-server-image.nix { inherit pkgs bitnet-server; };
  };
in
{
  inherit bitnet-cli bitnet-server bitnet-st2gguf;
  default = bitnet-server;
}
  // image
