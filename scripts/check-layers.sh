#!/usr/bin/env bash
# Fails when a source or header includes a header of a higher layer.
#
# The layers, lowest first (docs/ARCHITECTURE.md, "Layers"): a file in
# src/<layer>/ or include/ot/<layer>/ may include "ot/<same or lower>/x.h" only.
# Tests are exempt (they sit above everything they test).
#
# scripts/layers-allow.txt lists upward includes that existed when the rule was
# introduced, one "file -> header" per line; each is a debt to remove, and the
# list may only shrink: an entry that no longer occurs is reported too, so the
# file is kept honest. Usage: scripts/check-layers.sh [root]
set -euo pipefail

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$root"

layers=(core codec event http adapters app api cmd)
rank() {
  local i
  for i in "${!layers[@]}"; do
    [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }
  done
  echo -1
}

allow=scripts/layers-allow.txt
declare -A allowed=()
if [ -f "$allow" ]; then
  while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    allowed["$line"]=1
  done < "$allow"
fi

bad=0
declare -A seen=()
while IFS= read -r f; do
  case "$f" in
    src/*) own=$(echo "$f" | cut -d/ -f2) ;;
    include/ot/*) own=$(echo "$f" | cut -d/ -f3) ;;
    *) continue ;;
  esac
  r_own=$(rank "$own")
  if [ "$r_own" -lt 0 ]; then
    echo "check-layers: $f is in no known layer (${layers[*]})" >&2
    bad=1
    continue
  fi
  while IFS= read -r inc; do
    layer=${inc#ot/}
    layer=${layer%%/*}
    r_inc=$(rank "$layer")
    if [ "$r_inc" -lt 0 ]; then
      echo "check-layers: $f includes $inc, which is in no known layer" >&2
      bad=1
    elif [ "$r_inc" -gt "$r_own" ]; then
      key="$f -> $inc"
      if [ -n "${allowed[$key]:-}" ]; then
        seen["$key"]=1
      else
        echo "check-layers: $f ($own) includes $inc ($layer): a lower layer must not include a higher one" >&2
        bad=1
      fi
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\(ot\/[^"]*\)".*/\1/p' "$f")
done < <(find src include -name '*.[ch]' | sort)

for key in "${!allowed[@]}"; do
  if [ -z "${seen[$key]:-}" ]; then
    echo "check-layers: '$key' is listed in $allow but no longer occurs: remove it from the list" >&2
    bad=1
  fi
done

if [ "$bad" -ne 0 ]; then
  exit 1
fi
echo "check-layers: ok (${#allowed[@]} listed upward includes left to remove)"
