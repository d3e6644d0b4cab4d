# OCI image of bitnet-server for replicas behind a load balancer
# (deploy/kubernetes/bitnet-server.yaml runs it). Only the server binary and
# its runtime closure: no shell, no package manager. Load it with
#   docker load < result     (or: skopeo copy docker-archive:result oci:bitnet-server)
{ pkgs, bitnet-server }:
pkgs.dockerTools.buildLayeredImage {
  name = "bitnet-server";
  tag = bitnet-server.version;
  # The binary is referenced from `config`, so its closure (glibc and all)
  # lands in the image without any `contents`.
  contents = [ ];
  # A writable /tmp for anything the server or its libraries create.
  extraCommands = ''
    mkdir -p tmp
    chmod 1777 tmp
  '';
  config = {
    Entrypoint = [ (pkgs.lib.getExe bitnet-server) ];
    # Flags (model path, bind address) come from the orchestrator; see deploy/.
    ExposedPorts = {
      "8080/tcp" = { };
    };
    Env = [ "RUST_LOG=info" ];
    # nobody:nogroup; numeric, so no /etc/passwd is needed.
    User = "65534:65534";
    Labels = {
      "org.opencontainers.image.title" = "bitnet-server";
      "org.opencontainers.image.description" = "OpenAI-compatible HTTP server for BitNet b1.58 models";
      "org.opencontainers.image.licenses" = "MIT OR Apache-2.0";
      "org.opencontainers.image.source" = "https://github.com/bitnet-rs/bitnet-rs";
    };
  };
}
