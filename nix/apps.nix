# `nix run .#NAME`: each binary's package, at result/bin/NAME. Default: the server.
{ pkgs, packages }:
let
  app = name: description: {
    type = "app";
    program = pkgs.lib.getExe' packages.${name} name;
    meta = { inherit description; };
  };
in
rec {
  bitnet-cli = app "bitnet-cli" "Run, chat with, inspect and benchmark BitNet b1.58 models";
  bitnet-server = app "bitnet-server" "OpenAI-compatible HTTP server for BitNet b1.58 models";
  bitnet-st2gguf = app "bitnet-st2gguf" "Convert Hugging Face BitNet safetensors to GGUF";
  default = bitnet-server;
}
