#!/usr/bin/env bash
# META.json (PGXN Meta Spec 1.0.0) and make dist: META.json parses, has
# every key the spec requires, names the control file's default_version as
# the release and the extension version, provides a file that exists, and
# make dist writes a zip (git archive of HEAD) with one top directory
# mana_ai-VERSION/ holding META.json, the control file, the Makefile and
# the install fragments, no build output, that builds on its own; the
# checkout is left exactly as it was.
set -euo pipefail
source tests/lib/common.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" mana_ai.control)
[ -n "$version" ] || fail "no default_version in mana_ai.control"

check_meta() {   # check_meta FILE [DIR holding the files it names]
    python3 - "$1" "$version" "${2:-.}" <<'PY'
import json, os, re, sys
path, version, root = sys.argv[1:]
meta = json.load(open(path))
problems = []
for key in ("name", "abstract", "maintainer", "license", "provides", "meta-spec", "version"):
    if key not in meta:
        problems.append("required key missing: " + key)
if meta.get("name") != "mana_ai":
    problems.append("name is %r" % meta.get("name"))
if meta.get("version") != version:
    problems.append("version %r is not the control file's %r" % (meta.get("version"), version))
if not re.fullmatch(r"\d+\.\d+\.\d+", str(meta.get("version"))):
    problems.append("version is not semantic")
spec = meta.get("meta-spec", {})
if spec.get("version") != "1.0.0" or not str(spec.get("url", "")).startswith("https://pgxn.org/meta/spec"):
    problems.append("meta-spec %r" % spec)
m = meta.get("maintainer")
if not (isinstance(m, str) and m) and not (isinstance(m, list) and m and all(isinstance(x, str) and x for x in m)):
    problems.append("maintainer must be a string or a list of strings")
licenses = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd", "gfdl_1_2",
            "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1",
            "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source",
            "restricted", "unrestricted", "unknown"}
lic = meta.get("license")
names = [lic] if isinstance(lic, str) else list(lic) if isinstance(lic, (list, dict)) else []
if not names or any(isinstance(lic, (str, list)) and n not in licenses for n in names):
    problems.append("license %r is not a spec value" % lic)
if lic == "postgresql":
    try:
        text = open("LICENSE").read()
    except OSError:
        text = ""
    if "Permission to use, copy, modify, and distribute this software" not in text or "mana_ai" not in text:
        problems.append("license postgresql without the PostgreSQL License text in LICENSE")
prov = meta.get("provides", {}).get("mana_ai")
if not prov:
    problems.append("provides has no mana_ai")
else:
    if prov.get("version") != version:
        problems.append("provides.mana_ai.version %r is not %r" % (prov.get("version"), version))
    if not prov.get("file") or not os.path.isfile(os.path.join(root, prov["file"])):
        problems.append("provides.mana_ai.file %r does not exist" % prov.get("file"))
    if "docfile" in prov and not os.path.isfile(os.path.join(root, prov["docfile"])):
        problems.append("provides.mana_ai.docfile does not exist")
# every extension of the repository, each at its control file's version
for ctl in sorted(f for f in os.listdir(root) if f.endswith(".control")):
    ext = ctl[:-len(".control")]
    want = re.search(r"^default_version\s*=\s*'([^']*)'", open(os.path.join(root, ctl)).read(), re.M).group(1)
    got = meta.get("provides", {}).get(ext, {})
    if got.get("version") != want or got.get("file") != ctl:
        problems.append("provides.%s is %r, wanted file %s version %s" % (ext, got, ctl, want))
if meta.get("prereqs", {}).get("runtime", {}).get("requires", {}).get("PostgreSQL") != "15.0.0":
    problems.append("prereqs.runtime.requires.PostgreSQL is not 15.0.0")
for k in meta:
    if k not in ("name", "abstract", "description", "version", "maintainer", "license", "provides",
                 "prereqs", "resources", "tags", "meta-spec", "generated_by", "no_index", "release_status") \
            and not k.lower().startswith("x_"):
        problems.append("key %r is neither in the spec nor an x_ key" % k)
for lib in ("libcurl", "OpenSSL", "json-c"):
    if lib not in meta.get("x_requires_libraries", {}):
        problems.append("runtime library %s not listed" % lib)
if meta.get("release_status", "stable") not in ("stable", "testing", "unstable"):
    problems.append("release_status")
if problems:
    sys.exit(path + ": " + "; ".join(problems))
PY
}
check_meta META.json || fail "META.json"
echo "ok - META.json is a PGXN 1.0.0 document for mana_ai $version"

# make dist, written outside the checkout.
before=$(git status --porcelain --untracked-files=all)
make -s dist DISTFILE="$tmp/dist.zip" >/dev/null || fail "make dist"
[ "$(git status --porcelain --untracked-files=all)" = "$before" ] || fail "make dist changed the checkout"
[ -s "$tmp/dist.zip" ] || fail "make dist wrote no zip"
unzip -Z1 "$tmp/dist.zip" > "$tmp/list"
top="mana_ai-$version/"
! grep -v "^$top" "$tmp/list" || fail "an entry outside $top"
for f in META.json LICENSE mana_ai.control Makefile README.md sql/install/00_schema.sql sql/mana_ai--0.1.0.sql; do
    grep -qxF "$top$f" "$tmp/list" || fail "the zip lacks $f"
done
! grep -E '\.(o|so|bc|zip)$|/tests/\.out/|mana_ai--'"$version"'\.sql$' "$tmp/list" || fail "build output in the zip"
[ "$(git ls-tree -r --name-only HEAD | sed "s|^|$top|" | sort)" = "$(grep -v '/$' "$tmp/list" | sort)" ] \
    || fail "the zip is not exactly the files of HEAD"
echo "ok - make dist: $(grep -vc '/$' "$tmp/list") files of HEAD under $top"

# The unpacked release carries a valid META.json of the same version and builds by itself.
(cd "$tmp" && unzip -q dist.zip)
check_meta "$tmp/$top/META.json" "$tmp/$top" || fail "META.json in the zip"
timeout 300 make -s -C "$tmp/$top" -j2 WERROR= > "$tmp/build.log" 2>&1 || { tail -20 "$tmp/build.log"; fail "the release does not build"; }
[ -f "$tmp/$top/mana_ai.so" ] && [ -f "$tmp/$top/sql/mana_ai--$version.sql" ] || fail "the release build made no library or install script"
echo "PASS meta"
