#!/bin/sh
# Installs a Caddy configuration file on the standby VPS and makes Caddy serve it, or changes nothing.
#
# Pulumi's remote Command runs this text as its SSH command with the new file on stdin; the lab runs
# the very same text over its own sshd. Steps: wait for cloud-init's bootstrap, write the new file
# beside the live one, `caddy validate`, swap it in, reload. A configuration that fails validation is
# never put live: the running configuration keeps serving and this script fails with Caddy's message.
#
# Settings, as shell variables set on lines before this text (SSH passes no environment):
#   CADDY_TARGET  the file, relative to /etc/caddy: Caddyfile (default), a certificate with its key
#                 such as certs/public.pem, a site file such as sites.d/rehearsal.caddy that the
#                 Caddyfile imports, or macmini/Caddyfile (the Mac Mini's, which it fetches: Plan C)
#   CADDY_ACTION  install (default: the file comes on stdin) or remove (the file goes away)
#
# The standby's Caddyfile command has no delete step: when the Caddyfile changes, Pulumi creates the
# new command before it deletes the old one, so anything a delete did would undo the new configuration.
# A site file's own stack removes it with CADDY_ACTION=remove when that stack is destroyed.
set -eu

caddy_dir=/etc/caddy
target="$caddy_dir/${CADDY_TARGET:-Caddyfile}"
action="${CADDY_ACTION:-install}"
live="$caddy_dir/Caddyfile"
# Neither name matches the *.caddy globs the Caddyfile imports.
next="$target.next"
previous="$target.previous"

fail() {
    echo "apply-caddyfile: $*" >&2
    exit 1
}

# Bootstrap first: Caddy, WireGuard and the folders come from cloud-init; wait for it to finish. Its
# verdict is final for the life of the server (one apt mirror glitch at first boot and it says error
# forever), so it does not decide here: what this script needs does, and the rest is said, loudly.
if command -v cloud-init >/dev/null 2>&1 && [ -d /var/lib/cloud/instance ]; then
    status=0
    cloud-init status --wait >/dev/null || status=$?
    if [ "$status" != 0 ]; then
        echo "apply-caddyfile: warning: cloud-init finished with errors (exit $status); what it reports:" >&2
        cloud-init status --long >&2 || true
    fi
fi

command -v caddy >/dev/null 2>&1 || fail "caddy is not installed (cloud-init's packages step; apt-get install caddy)"
if ! wg show wg0 >/dev/null 2>&1; then
    echo "apply-caddyfile: warning: WireGuard wg0 is not up, so Caddy cannot reach the Mac Mini" \
        "(systemctl enable --now wg-quick@wg0; journalctl -u wg-quick@wg0)" >&2
fi
mkdir -p "$caddy_dir/sites.d" "$caddy_dir/global.d" "$caddy_dir/certs" "$caddy_dir/macmini"

validate() {
    if ! report=$(caddy validate --config "$1" --adapter caddyfile 2>&1); then
        # Caddy logs JSON lines; the reason is on the lines that are not info-level chatter.
        printf '%s\n' "$report" | grep -v '"level":"info"' >&2 || true
        return 1
    fi
}

# Puts the file as it was back in place, so disk and the running configuration agree.
restore() {
    if [ "$unchanged" = 1 ]; then
        return
    elif [ -f "$previous" ]; then
        mv -f "$previous" "$target"
    else
        rm -f "$target"
    fi
}

case "$action" in
    install)
        case "$target" in
            "$caddy_dir"/certs/*)
                # A certificate and its key: readable by root and Caddy's group alone, from the start; a
                # file that is not both is refused here, whether or not the live Caddyfile uses it yet.
                (umask 077 && cat >"$next")
                chgrp caddy "$next" 2>/dev/null && chmod 0640 "$next"
                if command -v openssl >/dev/null 2>&1 && ! { openssl x509 -noout -in "$next" 2>/dev/null \
                        && openssl pkey -noout -in "$next" 2>/dev/null; }; then
                    rm -f "$next"
                    fail "$target is not a certificate with its key: not installed"
                fi ;;
            *) cat >"$next" ;;
        esac ;;
    remove) [ -f "$target" ] || { echo "apply-caddyfile: $target is already gone"; exit 0; } ;;
    *) fail "CADDY_ACTION must be install or remove, not $action" ;;
esac

unchanged=0
if [ "$action" = install ] && [ -f "$target" ] && cmp -s "$next" "$target"; then
    rm -f "$next"
    unchanged=1
elif [ "$target" = "$live" ]; then
    # The Caddyfile itself: validated beside the live one, swapped in only when Caddy accepts it.
    validate "$next" || { rm -f "$next"; fail "the new Caddyfile is invalid: not installed, the running configuration keeps serving"; }
    rm -f "$previous"
    [ -f "$live" ] && cp -p "$live" "$previous"
    mv -f "$next" "$live"
elif [ ! -f "$live" ]; then
    # A new server's certificates come before its first Caddyfile: in place, for it to refer to.
    case "$target" in
        "$caddy_dir"/certs/*) ;;
        *) rm -f "$next"; fail "$live is missing: the standby's Caddyfile must be installed first" ;;
    esac
    [ "$action" = install ] && mv -f "$next" "$target"
    echo "apply-caddyfile: $target is in place, for the Caddyfile to come"
    exit 0
else
    # A file the Caddyfile imports or refers to can only be validated as part of it: swap it in (Caddy
    # is not reloaded yet), validate the whole, and put the old file back if Caddy refuses.
    rm -f "$previous"
    [ -f "$target" ] && cp -p "$target" "$previous"
    if [ "$action" = install ]; then mv -f "$next" "$target"; else rm -f "$target"; fi
    validate "$live" || { restore; fail "the configuration with this change is invalid: not installed, the running configuration keeps serving"; }
fi

# Reloaded even when unchanged: that also starts a Caddy that is not running, and a renewed
# certificate is served at once.
if [ ! -f "$live" ]; then
    :  # nothing to serve yet (an unchanged certificate of a new server)
elif systemctl is-active --quiet caddy; then
    systemctl reload caddy || { restore; fail "caddy refused the reload: the previous configuration keeps serving (journalctl -u caddy)"; }
else
    systemctl enable --now caddy || { restore; fail "caddy did not start (journalctl -u caddy)"; }
fi

if [ "$action" = remove ]; then
    echo "apply-caddyfile: $target removed"
else
    echo "apply-caddyfile: $target is live$( [ "$unchanged" = 1 ] && echo ' (unchanged)')"
fi
