# EVALUATION ONLY: an overlay adding to ../shared/nix-eval's nixpkgs stub the
# real nixpkgs attributes the flake reaches that the stub lacks
# (scripts/ci-local.sh nix-eval and nix-rehearse use it; the flake never does):
# - dockerTools (bitnet-server-image). The argument sets copy nixpkgs'
#   pkgs/build-support/docker/default.nix: streamLayeredImage takes a closed
#   set, so a misspelled argument fails evaluation here as with nixpkgs.
# - darwin.signingUtils (crane's removeReferencesToVendoredSources on
#   aarch64-darwin, where binaries must be re-signed).
# - procps (kill, for the nextest check's server tests).
# - python3.withPackages and the python3Packages the checks name (nix/lib.nix
#   pythonModules; nixpkgs has openai, jsonschema, gguf and numpy under these names). The
#   environment is named as nixpkgs names it, python3-<version>-env.
# The derivations come from the stub and cannot be built.
_final: prev:
let
  streamLayeredImage =
    { name
    , tag ? null
    , fromImage ? null
    , contents ? [ ]
    , config ? { }
    , architecture ? null
    , created ? "1970-01-01T00:00:01Z"
    , mtime ? "1970-01-01T00:00:01Z"
    , uid ? 0
    , gid ? 0
    , uname ? "root"
    , gname ? "root"
    , maxLayers ? 100
    , extraCommands ? ""
    , fakeRootCommands ? ""
    , enableFakechroot ? false
    , includeStorePaths ? true
    , includeNixDB ? false
    , passthru ? { }
    , meta ? { }
    , layeringPipeline ? null
    , debug ? false
    }:
    prev.runCommand "stream-${baseNameOf name}"
      {
        inherit passthru meta;
        imageName = name;
        imageTag = if tag == null then "" else tag;
        conf = builtins.toJSON {
          inherit
            fromImage
            contents
            config
            architecture
            created
            mtime
            uid
            gid
            uname
            gname
            maxLayers
            extraCommands
            fakeRootCommands
            enableFakechroot
            includeStorePaths
            includeNixDB
            layeringPipeline
            debug
            ;
        };
      } "";
  python3Packages = prev.lib.genAttrs [ "openai" "jsonschema" "gguf" "numpy" ] (
    name: prev.runCommand "python3.13-${name}-0-stub" { } ""
  );
in
{
  inherit python3Packages;
  procps = prev.runCommand "procps-0-stub" { } "";
  python3 = prev.python3 // {
    pkgs = python3Packages;
    withPackages = select: prev.runCommand "python3-3.13.0-env" { paths = select python3Packages; } "";
  };

  darwin = (prev.darwin or { }) // {
    signingUtils = prev.runCommand "signing-utils" { } "";
  };

  dockerTools = {
    inherit streamLayeredImage;
    buildLayeredImage =
      { name
      , compressor ? "gz"
      , ...
      }@args:
      let
        stream = streamLayeredImage (builtins.removeAttrs args [ "compressor" ]);
      in
      prev.runCommand "${baseNameOf name}.tar.${compressor}"
        {
          inherit (stream) imageName imageTag;
          inherit stream;
          passthru = stream.passthru or { };
          meta = stream.meta or { };
        } "";
  };
}
