#!/usr/bin/env bash
# package_deb test: builds the obmen .deb from a build tree into a temporary directory and checks
# its metadata, contents, conffiles and maintainer scripts; extracts it into a clean temporary
# root and runs the binaries and systemd-analyze on the unit. Side-effect free: everything lives
# in a mktemp directory that is removed on exit; nothing is installed.
#   packaging/test_deb.sh <build dir>
set -euo pipefail

build=$(cd "${1:?usage: test_deb.sh <build dir>}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/obmen-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || fail "$tool not found (package dpkg-dev / cmake)"
done

# ─── build ───────────────────────────────────────────────────────────────────────────────────
# -B: the package and CPack's staging tree (_CPack_Packages) go into $tmp, not the build tree.
(cd "$build" && cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake") >"$tmp/cpack.log" 2>&1 \
  || { cat "$tmp/cpack.log" >&2; fail "cpack -G DEB"; }
shopt -s nullglob
debs=("$tmp"/out/*.deb)
((${#debs[@]} == 1)) || { cat "$tmp/cpack.log" >&2; fail "expected one .deb, got ${#debs[@]}"; }
deb=${debs[0]}
ok "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# ─── control ─────────────────────────────────────────────────────────────────────────────────
dpkg-deb --info "$deb" >"$tmp/info"
field() { dpkg-deb --field "$deb" "$1"; }
version=$(sed -n 's/^project(obmen VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../CMakeLists.txt")
[[ $(field Package) == obmen ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version), project: $version"
[[ $(field Architecture) == amd64 ]] || fail "Architecture: $(field Architecture)"
[[ $(field Section) == admin ]] || fail "Section: $(field Section)"
[[ -n $(field Description) ]] || fail "no Description"
depends=$(field Depends)
for lib in libc6 libstdc++6 libpqxx libyaml-cpp libsystemd0; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib (dpkg-shlibdeps): $depends"
done
ok "control: obmen $version amd64, Section admin; Depends: $depends"

dpkg-deb --ctrl-tarfile "$deb" | tar -t >"$tmp/control-files"
for f in control md5sums conffiles postinst prerm postrm; do
  grep -qx "./$f" "$tmp/control-files" || fail "control member $f missing"
done
mkdir "$tmp/control"
dpkg-deb --control "$deb" "$tmp/control"
diff <(sort "$tmp/control/conffiles") <(printf '/etc/obmen/mapping.yaml\n/etc/obmen/obmen.yaml\n') \
  || fail "conffiles must list exactly /etc/obmen/obmen.yaml and mapping.yaml"
for s in postinst prerm postrm; do
  [[ -x $tmp/control/$s ]] || fail "$s not executable"
  sh -n "$tmp/control/$s" || fail "$s: syntax error"
done
grep -q 'systemd-sysusers obmen.conf' "$tmp/control/postinst" || fail "postinst: no systemd-sysusers"
grep -q 'systemd-tmpfiles --create obmen.conf' "$tmp/control/postinst" || fail "postinst: no systemd-tmpfiles"
grep -q 'daemon-reload' "$tmp/control/postinst" || fail "postinst: no daemon-reload"
# The note tells the administrator to run `systemctl enable --now obmend`; postinst itself never does.
if grep -En '^[[:space:]]*(systemctl|deb-systemd-helper|deb-systemd-invoke)[^#]*[[:space:]](enable|start|restart)[[:space:]]' \
     "$tmp/control/postinst"; then
  fail "postinst must neither enable nor start obmend"
fi
grep -q 'systemctl enable --now obmend' "$tmp/control/postinst" || fail "postinst: no note on enabling obmend"
grep -q 'rm -rf /var/lib/obmen' "$tmp/control/postrm" || fail "postrm: no purge of /var/lib/obmen"
awk '/^ *purge\)/{p=1} /;;/{p=0} /rm -rf \/var\/lib\/obmen/ && !p {exit 1}' "$tmp/control/postrm" \
  || fail "postrm removes /var/lib/obmen outside purge"
ok "conffiles and maintainer scripts"

# ─── contents ────────────────────────────────────────────────────────────────────────────────
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/contents"
for f in /usr/bin/obmend /usr/bin/obmenctl \
         /etc/obmen/obmen.yaml /etc/obmen/mapping.yaml \
         /lib/systemd/system/obmend.service \
         /usr/lib/sysusers.d/obmen.conf /usr/lib/tmpfiles.d/obmen.conf \
         /usr/share/man/man8/obmend.8.gz /usr/share/man/man1/obmenctl.1.gz \
         /usr/share/bash-completion/completions/obmenctl \
         /usr/share/doc/obmen/README.md /usr/share/doc/obmen/install.md; do
  grep -qx "$f" "$tmp/contents" || fail "$f not in the package"
done
# Nothing from a /usr/local build prefix, nothing of the test suite.
if grep -E '^/usr/local|_test$|_pgtest$' "$tmp/contents"; then fail "unexpected files in the package"; fi
ok "contents: $(grep -vc '/$' "$tmp/contents") files"

# ─── extracted root ──────────────────────────────────────────────────────────────────────────
root="$tmp/root"
dpkg-deb -x "$deb" "$root"
out=$("$root/usr/bin/obmend" --version) || fail "obmend --version"
[[ $out == "obmend $version" ]] || fail "obmend --version: $out"
out=$("$root/usr/bin/obmenctl" --version) || fail "obmenctl --version"
[[ $out == "obmenctl $version" ]] || fail "obmenctl --version: $out"
"$root/usr/bin/obmend" --help >/dev/null || fail "obmend --help"
ok "obmend and obmenctl --version: $version"

if command -v man >/dev/null; then
  for page in man8/obmend.8.gz man1/obmenctl.1.gz; do
    warn=$(MANWIDTH=100 man -l -Tutf8 "$root/usr/share/man/$page" 2>&1 >/dev/null) || fail "man $page"
    [[ -z $warn ]] || fail "man $page: $warn"
  done
  ok "man pages render without warnings"
fi

unit="$root/lib/systemd/system/obmend.service"
cmp -s "$unit" "$(dirname "$0")/../systemd/obmend.service" || fail "unit differs from systemd/obmend.service"
if command -v systemd-analyze >/dev/null; then
  # --offline=true (systemd ≥ 252) scores the file without a running manager; --root= makes
  # ExecStart=/usr/bin/obmend resolve to the extracted binary.
  if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    systemd-analyze security --offline=true --root="$root" --no-pager "$unit" >"$tmp/security" 2>&1 \
      || { cat "$tmp/security" >&2; fail "systemd-analyze security"; }
    score=$(grep -Eo 'Overall exposure level for [^:]*: [0-9.]+ [A-Z]+' "$tmp/security" | tail -1)
    [[ -n $score ]] || { cat "$tmp/security" >&2; fail "no exposure score"; }
    echo "ok: systemd-analyze security: $score"
    level=$(grep -Eo '[0-9]+\.[0-9]+ [A-Z]+' <<<"$score" | awk '{print $1}')
    awk -v l="$level" 'BEGIN{exit !(l <= 3.0)}' || fail "exposure $level above 3.0 (1.4 when this test was written)"
  else
    systemd-analyze verify --root="$root" "$unit" || fail "systemd-analyze verify"
    ok "systemd-analyze verify"
  fi
fi

echo "PASS: $(basename "$deb")"
