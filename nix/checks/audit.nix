# cargo-audit against the RustSec advisory database pinned in flake.lock.
#
# The ignore policy is deny.toml's [[advisories.ignore]] (id, why it does not apply,
# "Expires YYYY-MM-DD"); cargo-audit reads the same ids from .cargo/audit.toml. Evaluation
# fails when the two lists differ, and this check fails once the pinned database is newer
# than an ignore's expiry: bumping the database then forces the ignore to be argued again.
{ pkgs, bitnet }:
let
  inherit (pkgs) lib;
  denyIgnores = (lib.importTOML ../../deny.toml).advisories.ignore or [ ];
  auditIgnores = (lib.importTOML ../../.cargo/audit.toml).advisories.ignore or [ ];
  ids = map (ignore: ignore.id) denyIgnores;
  expiry =
    ignore:
    let
      m = builtins.match ".*Expires ([0-9]{4})-([0-9]{2})-([0-9]{2}).*" (ignore.reason or "");
    in
    if m == null then
      throw "deny.toml: the ignore of ${ignore.id} has no \"Expires YYYY-MM-DD\" in its reason"
    else
      lib.concatStrings m;
  # YYYYMMDD of the pinned database's last commit.
  dbDate = builtins.substring 0 8 (bitnet.advisory-db.lastModifiedDate or "00000000");
  expired = builtins.filter (ignore: expiry ignore < dbDate) denyIgnores;
in
assert lib.assertMsg (builtins.sort builtins.lessThan ids == builtins.sort builtins.lessThan auditIgnores) ''
  The ignored advisories differ: deny.toml has [${toString ids}], .cargo/audit.toml has [${toString auditIgnores}].'';
bitnet.craneLib.cargoAudit {
  inherit (bitnet.commonArgs) pname version;
  inherit (bitnet) advisory-db;
  src = bitnet.cargoSrc;
  preBuild = lib.concatMapStrings
    (ignore: ''
      echo "deny.toml: the ignore of ${ignore.id} expired on ${expiry ignore}, before the advisory database's ${dbDate}: upgrade away from the crate or argue the ignore again" >&2
      exit 1
    '')
    expired;
}
