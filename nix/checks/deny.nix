# cargo-deny: advisories, licences, bans and sources (deny.toml), offline. The advisories
# come from the RustSec database pinned in flake.lock; cargo-deny reads the date of the
# database's HEAD commit with git, so the pinned tree becomes a one-commit repository, dated
# as the pinned revision, where cargo-deny looks for the default database.
{ pkgs, bitnet }:
let
  db = bitnet.advisory-db;
in
bitnet.craneLib.cargoDeny {
  inherit (bitnet.commonArgs) pname version;
  src = bitnet.cargoSrc;
  cargoDenyChecks = "advisories bans licenses sources";
  cargoDenyExtraArgs = "--offline";
  nativeBuildInputs = [ pkgs.git ];
  preBuild = ''
    dbDir="$CARGO_HOME/advisory-dbs/advisory-db-3157b0e258782691"
    mkdir -p "$(dirname "$dbDir")"
    cp -r --no-preserve=mode ${db} "$dbDir"
    (
      cd "$dbDir"
      export GIT_CONFIG_NOSYSTEM=1 HOME="$TMPDIR"
      git init -q
      git add -A
      GIT_COMMITTER_DATE="@${toString (db.lastModified or 0)}" \
        git -c user.name=nix -c user.email=nix@localhost commit -q \
        --date="@${toString (db.lastModified or 0)}" -m "rustsec/advisory-db ${db.rev or "pinned"}"
    )
  '';
}
