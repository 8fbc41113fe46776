# Shared by the benchmark scripts (sourced; they define `say` first):
#   install COMMAND PACKAGE   installs PACKAGE with apt-get when COMMAND is missing; returns 1
#                             (and says why) when it cannot. NO_INSTALL=1 never installs.
SUDO=""
[ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && SUDO="sudo -n"; }
APT_UPDATED=""
install() { # command package
  command -v "$1" >/dev/null && return 0
  [ -n "${NO_INSTALL:-}" ] && { say "$1 is missing (NO_INSTALL set): skipped"; return 1; }
  command -v apt-get >/dev/null || { say "$1 is missing and there is no apt-get: skipped"; return 1; }
  if [ -z "$APT_UPDATED" ]; then
    $SUDO apt-get update -qq >/dev/null 2>&1 || say "apt-get update failed"
    APT_UPDATED=1
  fi
  say "installing $2"
  if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >/dev/null 2>&1 && command -v "$1" >/dev/null; then
    return 0
  fi
  say "could not install $2: $1 skipped"
  return 1
}
