#!/usr/bin/env bash
# Installs golens for systemd: the binary, the unit, its environment file and
# an example configuration, in the usual places. Enables and starts nothing.
#
#   sudo make install                       # /usr/local/bin, /usr/local/lib/systemd/system, /etc/golens
#   make install PREFIX=/usr DESTDIR=/tmp/pkg   # staged, e.g. for a package
#
# Variables: PREFIX (/usr/local), DESTDIR (staging root, empty), BINDIR
# (PREFIX/bin), SYSCONFDIR (/etc), UNITDIR (PREFIX/lib/systemd/system; systemd
# reads /usr/local/lib/systemd/system too), GO (go), BINARY (install this
# golens instead of building one). Files already in SYSCONFDIR/golens are kept
# (the new example goes beside them as *.dist): they are the admin's.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BINDIR=${BINDIR:-$PREFIX/bin}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
GO=${GO:-go}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "${BINARY:-}" ]; then
	# Static, so that it runs on any distribution's glibc (or none).
	echo "install: building golens"
	CGO_ENABLED=0 "$GO" build -trimpath -o "$work/golens" ./cmd/golens
	BINARY=$work/golens
fi

confdir=$SYSCONFDIR/golens

# put SRC DEST MODE: installs SRC as DEST under DESTDIR.
put() {
	install -D -m "$3" "$1" "$DESTDIR$2"
	echo "  $2"
}

# put_config SRC DEST MODE: like put, but keeps an existing DEST.
put_config() {
	if [ -e "$DESTDIR$2" ] && ! cmp -s "$1" "$DESTDIR$2"; then
		put "$1" "$2.dist" "$3"
		echo "    (kept the existing $2)"
		return
	fi
	put "$1" "$2" "$3"
}

echo "install: into ${DESTDIR:-/}"
put "$BINARY" "$BINDIR/golens" 0755

# The unit names the binary and the config by path: follow BINDIR and
# SYSCONFDIR.
unit=$work/golens.service
sed -e "s|/usr/local/bin/golens|$BINDIR/golens|g" \
	-e "s|/etc/golens/|$confdir/|g" \
	deploy/systemd/golens.service >"$unit"
put "$unit" "$UNITDIR/golens.service" 0644

# The environment file may hold export credentials: root only.
put_config deploy/systemd/golens.env "$confdir/golens.env" 0600
put_config deploy/systemd/config.yaml "$confdir/config.yaml" 0644
put_config deploy/sampling/strategies.json "$confdir/sampling.json" 0644

if [ -z "$DESTDIR" ]; then
	cat <<MSG
install: done. Set the Collector in $confdir/golens.env and the services to
watch in $confdir/config.yaml, then:
  systemctl daemon-reload && systemctl enable --now golens
MSG
fi
