#!/bin/sh
# Installs a new Caddyfile on the standby VPS and makes Caddy serve it, or changes nothing.
#
# Pulumi's remote Command runs this text as its SSH command with the new Caddyfile on stdin; the lab
# runs the very same text over its own sshd. Steps: wait for cloud-init's bootstrap, write the new
# file beside the live one, `caddy validate` it, swap it in, reload. A file that fails validation is
# never swapped in: the running configuration keeps serving and this script fails with Caddy's message.
#
# No delete step belongs with this script: when the Caddyfile changes, Pulumi creates the new command
# before it deletes the old one, so anything a delete did would undo the new configuration.
#
# CADDY_DIR (default /etc/caddy) is the configuration folder; the lab sets it through its sshd.
set -eu

caddy_dir="${CADDY_DIR:-/etc/caddy}"
live="$caddy_dir/Caddyfile"
next="$caddy_dir/Caddyfile.next"
previous="$caddy_dir/Caddyfile.previous"

fail() {
    echo "apply-caddyfile: $*" >&2
    exit 1
}

# Bootstrap first: Caddy and the sites.d folder come from cloud-init. Exit 2 means it finished with
# recoverable errors (deprecated keys, for one): carry on, but say so.
if command -v cloud-init >/dev/null 2>&1 && [ -d /var/lib/cloud/instance ]; then
    status=0
    cloud-init status --wait >/dev/null || status=$?
    case "$status" in
        0) ;;
        2) echo "apply-caddyfile: cloud-init finished with recoverable errors (cloud-init status --long)" >&2 ;;
        *) cloud-init status --long >&2 || true
           fail "cloud-init failed (exit $status); the server is not bootstrapped" ;;
    esac
fi

command -v caddy >/dev/null 2>&1 || fail "caddy is not installed"
mkdir -p "$caddy_dir/sites.d" "$caddy_dir/global.d"

cat >"$next"
if ! report=$(caddy validate --config "$next" --adapter caddyfile 2>&1); then
    rm -f "$next"
    # Caddy logs JSON lines; the reason is on the lines that are not info-level chatter.
    printf '%s\n' "$report" | grep -v '"level":"info"' >&2 || true
    fail "the new Caddyfile is invalid: not installed, the running configuration keeps serving"
fi

if [ -f "$live" ] && cmp -s "$next" "$live"; then
    rm -f "$next"
    unchanged=1
else
    [ -f "$live" ] && cp -p "$live" "$previous"
    mv -f "$next" "$live"
    unchanged=0
fi

# A reload that Caddy refuses (a port in use, say) leaves the old configuration running; put the old
# file back too, so disk and memory agree.
restore_and_fail() {
    if [ "$unchanged" = 0 ] && [ -f "$previous" ]; then
        mv -f "$previous" "$live"
    fi
    fail "$1"
}

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet caddy; then
        systemctl reload caddy || restore_and_fail "systemctl reload caddy failed (journalctl -u caddy)"
    else
        systemctl enable --now caddy || restore_and_fail "caddy did not start (journalctl -u caddy)"
    fi
elif report=$(caddy reload --config "$live" --adapter caddyfile 2>&1); then
    :
elif printf '%s' "$report" | grep -q "connection refused\|connect: no such file"; then
    # No Caddy running (no systemd here, the lab for one): start it in the background.
    caddy start --config "$live" --adapter caddyfile --pidfile "$caddy_dir/caddy.pid" >"$caddy_dir/caddy-start.log" 2>&1 \
        || { cat "$caddy_dir/caddy-start.log" >&2; restore_and_fail "caddy did not start"; }
else
    printf '%s\n' "$report" | grep -v '"level":"info"' >&2 || true
    restore_and_fail "caddy refused the reload: the previous configuration keeps serving"
fi

echo "apply-caddyfile: $live is live$( [ "$unchanged" = 1 ] && echo ' (unchanged)')"
