#!/usr/bin/env bash
# Install what the services the tests start need, on a Debian machine: redis-server, the PostgreSQL
# server, a Java runtime and Maven for Kafka, Chromium for the dashboard's browser test, then the
# Kafka jars themselves, so that no test downloads anything mid-run. As root it installs what is
# missing; otherwise it says what to install.
# Run by `make services` (and so by `make test` and .ci/run); a second run only checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# Debian keeps PostgreSQL's server programs out of PATH, in one folder per major version.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null ||
  missing+=(postgresql)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
# The dashboard test drives whichever Chromium there is: GitHub's Ubuntu runners ship Google Chrome.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
  command -v google-chrome >/dev/null || missing+=(chromium)

if ((${#missing[@]})); then
  if ((EUID != 0)); then
    echo "install-services.sh: missing ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "install-services.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { echo "install-services.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi

scripts/kafka.sh fetch
