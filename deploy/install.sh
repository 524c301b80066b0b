#!/bin/sh
# Install or upgrade depline as a service on a Debian host, from this source tree:
#
#   sudo deploy/install.sh                 # Debian's /usr/bin/python3, packages from PyPI
#   sudo WHEELS=/media/wheels deploy/install.sh   # an offline site: wheels made with `pip wheel .`
#
# What it does (see deploy/README.md): a system user `depline`; a virtualenv of its own under
# /opt/depline/venvs/<time>, made by Debian's interpreter and holding depline installed (not linked to
# this tree), switched in through the symlink /opt/depline/venv only once the service user has run it
# (an upgrade that fails leaves the running version alone; the previous venv is kept for a rollback);
# the systemd unit depline@.service, the udev rules and /etc/depline. It starts nothing and never
# touches a line configuration, the database or the broker.
set -eu

PREFIX=${PREFIX:-/opt/depline}
PYTHON=${PYTHON:-/usr/bin/python3}
WHEELS=${WHEELS:-}
SERVICE_USER=depline
SRC=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it creates the service user and writes $PREFIX, /etc and udev rules"
[ -f "$SRC/pyproject.toml" ] || die "$SRC is not a depline source tree"

# The service runs as an unprivileged user, so the venv must not lean on an interpreter only root can
# reach (a pyenv or ~/.local under /root was the fault this script exists for). Debian's python3 is the
# default; whatever is given must live outside home directories.
interpreter=$(readlink -f "$(command -v "$PYTHON" || true)")
[ -n "$interpreter" ] || die "$PYTHON not found: apt-get install python3 python3-venv"
case "$interpreter" in
    /root/* | /home/*) die "$PYTHON is $interpreter, in a home directory: use Debian's /usr/bin/python3" ;;
esac
"$interpreter" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "depline needs Python >= 3.11"
"$interpreter" -c 'import ensurepip, venv' 2>/dev/null || die "python3-venv missing: apt-get install python3-venv"

# a running line service imports some modules late: it must not find a new version behind its venv
if [ -d /run/systemd/system ] && [ -n "$(systemctl list-units 'depline@*' --state=active --no-legend)" ]; then
    die "line services are running: systemctl stop 'depline@*' first (deploy/README.md, Upgrades)"
fi

# -- the service user -------------------------------------------------------------------------------
getent group "$SERVICE_USER" >/dev/null || groupadd --system "$SERVICE_USER"
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --gid "$SERVICE_USER" --home-dir /var/lib/depline --no-create-home \
        --shell /usr/sbin/nologin --comment "depline line services" "$SERVICE_USER"
    say "created system user $SERVICE_USER"
fi

# -- a new virtualenv, tried as the service user, then switched in ---------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
venv="$PREFIX/venvs/$stamp"
install -d -m 0755 "$PREFIX" "$PREFIX/venvs"
"$interpreter" -m venv "$venv"
if [ -n "$WHEELS" ]; then
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" "$SRC"
else
    "$venv/bin/python" -m pip install --quiet "$SRC"
fi
chmod -R go-w "$venv"
case "$(sed -n 's/^home = //p' "$venv/pyvenv.cfg")" in
    /root/* | /home/*) rm -rf "$venv"; die "the venv's interpreter is in a home directory" ;;
esac
if ! runuser -u "$SERVICE_USER" -- "$venv/bin/depline" --help >/dev/null; then
    rm -rf "$venv"
    die "the service user cannot run $venv/bin/depline: the running version is left as it was"
fi
previous=$(readlink "$PREFIX/venv" 2>/dev/null || true)
ln -sfn "$venv" "$PREFIX/venv.next" && mv -T "$PREFIX/venv.next" "$PREFIX/venv"
say "depline $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("depline"))') in $venv"
[ -n "$previous" ] && say "previous venv kept for a rollback: $previous"

# -- site files: the deploy/ folder for reference, the unit, udev rules, /etc/depline ---------------
rm -rf "$PREFIX/deploy" && cp -r "$SRC/deploy" "$PREFIX/deploy" && chmod -R go-w "$PREFIX/deploy"
install -m 0644 "$SRC/deploy/systemd/depline@.service" /etc/systemd/system/depline@.service
# the daily sample-partition upkeep (PostgreSQL sites): installed, enabled by the site (deploy/README.md)
install -m 0644 "$SRC/deploy/systemd/depline-retain.service" /etc/systemd/system/depline-retain.service
install -m 0644 "$SRC/deploy/systemd/depline-retain.timer" /etc/systemd/system/depline-retain.timer
install -m 0644 "$SRC/deploy/udev/70-depline-serial.rules" /etc/udev/rules.d/70-depline-serial.rules
install -d -m 0750 -o root -g "$SERVICE_USER" /etc/depline /etc/depline/credentials
install -m 0640 -o root -g "$SERVICE_USER" "$SRC/controller/config/standard_line.toml" \
    /etc/depline/line.toml.example

if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
if command -v udevadm >/dev/null 2>&1 && [ -d /run/udev ]; then
    udevadm control --reload && udevadm trigger --subsystem-match=tty --subsystem-match=usb-serial
fi
say "done. Next: /etc/depline/LINE.toml, \`depline db upgrade\`, then systemctl enable --now depline@LINE"
say "(deploy/README.md: database roles, broker, upgrades and backups)"
