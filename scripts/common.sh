# Shared by scripts/demo and scripts/test: install, build, private PostgreSQL.
# Sourced, not run. Every step is idempotent: a second run reuses what the first one made.
set -euo pipefail

OBMEN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OBMEN_LOCAL="$OBMEN_ROOT/.local"            # private, git-ignored state: PostgreSQL cluster, spool, logs
OBMEN_BUILD="${OBMEN_BUILD:-$OBMEN_ROOT/build}"
OBMEN_PG_PORT="${OBMEN_PG_PORT:-55432}"
PG_BIN=/usr/lib/postgresql/15/bin

# Debian 12 packages obmen builds and runs with (README "Dependencies").
OBMEN_PACKAGES=(
  g++ cmake make pkg-config
  libboost1.74-dev libboost-system1.74-dev
  libpugixml-dev libpqxx-dev libyaml-cpp-dev libspdlog-dev libfmt-dev doctest-dev
  libzip-dev zip libssl-dev zlib1g-dev nlohmann-json3-dev libcli11-dev libsystemd-dev
  postgresql-15 postgresql-client-15
  python3 curl ca-certificates libxml2-utils time openssl
  dpkg-dev                                # dpkg-shlibdeps: the .deb's Depends (packaging/)
)

# Only scripts/fuzz needs these (clang's libFuzzer and sanitizer runtimes); not in the default
# list, so CI and a plain build never install them.
OBMEN_FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_deps() { install_packages "${OBMEN_PACKAGES[@]}"; }

# install_packages <debian package…>: apt-get installs the ones missing.
install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    say "dependencies: all $# Debian packages present"
    return
  fi
  say "dependencies: installing ${missing[*]}"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  # The postgresql package would create and start a system cluster; obmen runs its own.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# build [extra cmake args…]
build() {
  say "build: $OBMEN_BUILD"
  cmake -S "$OBMEN_ROOT" -B "$OBMEN_BUILD" -DCMAKE_BUILD_TYPE="${OBMEN_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
  cmake --build "$OBMEN_BUILD" -j"${OBMEN_JOBS:-2}"
}

# The user PostgreSQL runs as: postgres refuses to run as root.
pg_user() {
  if [[ $(id -u) -ne 0 ]]; then id -un; return; fi
  id -u postgres >/dev/null 2>&1 || useradd --system --home-dir "$OBMEN_LOCAL" --shell /usr/sbin/nologin postgres
  echo postgres
}

as_pg() {
  local u; u=$(pg_user)
  if [[ $(id -un) == "$u" ]]; then "$@"; else runuser -u "$u" -- "$@"; fi
}

# pg_up: exports OBMEN_DATABASE_URL. Uses it unchanged when already set; otherwise starts (or
# reuses) a private cluster in .local/pg listening on 127.0.0.1:$OBMEN_PG_PORT with a database "obmen".
pg_up() {
  if [[ -n "${OBMEN_DATABASE_URL:-}" ]]; then
    say "database: using OBMEN_DATABASE_URL"
    return
  fi
  local data="$OBMEN_LOCAL/pg/data" u
  u=$(pg_user)
  mkdir -p "$OBMEN_LOCAL/pg"
  chown "$u" "$OBMEN_LOCAL/pg"
  # The cluster's user must be able to reach the folder.
  chmod o+x "$OBMEN_LOCAL" 2>/dev/null || true
  local p="$OBMEN_ROOT"
  while [[ "$p" != / ]]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
  if [[ ! -s "$data/PG_VERSION" ]]; then
    say "database: initdb $data"
    as_pg "$PG_BIN/initdb" -D "$data" -U obmen --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $OBMEN_PG_PORT
unix_socket_directories = '$OBMEN_LOCAL/pg'
fsync = on
max_connections = 200
CONF
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "database: starting private PostgreSQL on 127.0.0.1:$OBMEN_PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$OBMEN_LOCAL/pg/server.log" -w -t 60 start >/dev/null
  fi
  export OBMEN_DATABASE_URL="postgresql://obmen@127.0.0.1:$OBMEN_PG_PORT/obmen"
  if ! psql "postgresql://obmen@127.0.0.1:$OBMEN_PG_PORT/postgres" -Atqc "select 1 from pg_database where datname='obmen'" | grep -q 1; then
    psql "postgresql://obmen@127.0.0.1:$OBMEN_PG_PORT/postgres" -qc "create database obmen" >/dev/null
  fi
  say "database: $OBMEN_DATABASE_URL"
}

pg_down() {
  local data="$OBMEN_LOCAL/pg/data"
  [[ -s "$data/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
}
