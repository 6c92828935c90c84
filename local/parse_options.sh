#!/usr/bin/env bash
# Kaldi-style option parsing: for every "--name value" on the command line, set the shell variable
# "name" (dashes become underscores) if the calling script defined it. Source it after the defaults:
#   stage=1; nj=2; . local/parse_options.sh
# Unknown options are an error, so a typo never passes silently.

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then echo -e "$help_message"; else echo "No help found." 1>&2; fi
      exit 0 ;;
    --) break ;;  # the rest is for the called program (finetune.sh passes it to training)
    --*=*)
      name=$(echo "${1%%=*}" | sed 's/^--//; s/-/_/g')
      value="${1#*=}"
      shift ;;
    --*)
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" 1>&2; exit 1; fi
      name=$(echo "$1" | sed 's/^--//; s/-/_/g')
      value="$2"
      shift 2 ;;
    *) break ;;
  esac
  if ! declare -p "$name" >/dev/null 2>&1; then
    echo "$0: unknown option --$name" 1>&2
    exit 1
  fi
  printf -v "$name" '%s' "$value"
done
