#!/usr/bin/env bash
# Unit test of ctl/completion/obmenctl.bash: feeds command lines to the completion function the
# way bash does and checks the candidates. Run by CTest (label unit).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/obmenctl.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/obmen.yaml" <<'YAML'
database:
  url: postgresql://x
sources:
  onec:
    type: onec
    username: u
  ms-main:
    type: moysklad
schedules: []
YAML
failures=0
check() {  # check "<command line up to the cursor>" "<expected candidates, sorted, space-separated>"
  local line=$1 want=$2
  read -r -a COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _obmenctl
  local got
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
  if [[ $got == "$want" ]]; then
    echo "ok   '$line' → $got"
  else
    echo "FAIL '$line' → '$got', expected '$want'"
    failures=$((failures + 1))
  fi
}
check "obmenctl " "--config --help --version -c check import jobs migrate queue resync status"
check "obmenctl st" "status"
check "obmenctl -c $tmp/obmen.yaml resync --source " "ms-main onec"
check "obmenctl --config $tmp/obmen.yaml resync --source m" "ms-main"
check "obmenctl resync --entity c" "catalog counterparties"
check "obmenctl resync --" "--dry-run --entity --full --help --incremental --source --wait"
check "obmenctl queue " "--help drop list retry show"
check "obmenctl queue list --state d" "dead done"
check "obmenctl queue list --state a" "all"
check "obmenctl jobs list --state " "cancelled done failed queued running"
check "obmenctl status --" "--help --json"
((failures == 0)) || { echo "$failures failure(s)"; exit 1; }
