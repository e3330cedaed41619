# bash completion for obmenctl (installed to /usr/share/bash-completion/completions/obmenctl).
# Completes subcommands, their options and values; --source completes the source names of the
# configuration in use (-c/--config, else /etc/obmen/obmen.yaml), read from its `sources:` map.

_obmenctl_sources() {
  local config=$1
  [[ -r $config ]] || return 0
  # Keys indented under the top-level `sources:` map, up to the next top-level key.
  awk '
    /^sources:[[:space:]]*(#.*)?$/ { inside = 1; next }
    inside && /^[^[:space:]#]/ { inside = 0 }
    inside && match($0, /^  [a-z0-9_-]+:/) { name = substr($0, 3, RLENGTH - 3); print name }
  ' "$config" 2>/dev/null
}

_obmenctl() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then
    _init_completion || return
  else
    cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
  fi

  local config=/etc/obmen/obmen.yaml cmd="" sub="" i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      -c | --config) config=${words[i + 1]}; ((i++)) ;;
      --config=*) config=${words[i]#--config=} ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=${words[i]}; elif [[ -z $sub ]]; then sub=${words[i]}; fi ;;
    esac
  done

  case $prev in
    -c | --config) COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur") $(compgen -d -- "$cur")); return ;;
    --source) COMPREPLY=($(compgen -W "$(_obmenctl_sources "$config")" -- "$cur")); return ;;
    --entity) COMPREPLY=($(compgen -W "catalog prices stock counterparties orders all" -- "$cur")); return ;;
    --state)
      if [[ $cmd == jobs ]]; then COMPREPLY=($(compgen -W "queued running done failed cancelled" -- "$cur"))
      else COMPREPLY=($(compgen -W "pending in_flight done dead all" -- "$cur")); fi
      return ;;
    --target) COMPREPLY=($(compgen -W "$(_obmenctl_sources "$config")" -- "$cur")); return ;;
    --limit) return ;;
  esac

  local opts
  case $cmd in
    "") opts="check migrate import queue resync status jobs -c --config --help --version" ;;
    check | migrate) opts="--help" ;;
    import)
      opts="--source --json --help"
      if [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -X '!*.@(xml|zip|XML|ZIP)' -- "$cur") $(compgen -d -- "$cur")); return; fi ;;
    resync) opts="--source --entity --full --incremental --dry-run --wait --help" ;;
    status) opts="--json --help" ;;
    queue)
      case $sub in
        "") opts="list show retry drop --help" ;;
        list) opts="--state --target --limit --json --help" ;;
        *) opts="--json --help" ;;
      esac ;;
    jobs)
      case $sub in
        "") opts="list show cancel --help" ;;
        list) opts="--state --limit --json --help" ;;
        *) opts="--json --help" ;;
      esac ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}

complete -F _obmenctl obmenctl
