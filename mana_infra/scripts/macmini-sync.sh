# Fetches the Mac Mini's Caddyfile and the public certificate from the VPS through WireGuard, and makes
# the Mac Mini's Caddy serve them, or changes nothing (Plan C: the Mac Mini stays warm).
#
# launchd runs this every ten minutes and at boot (macminiSyncLaunchdPlist), as root; the stack renders
# it with its settings on the lines above this text (macminiSyncScript):
#   SOURCE  the VPS's file site on its WireGuard address (the Mac Mini alone may fetch there)
#   DIR     where the Mac Mini's Caddy reads its Caddyfile and public.pem
#   CADDY   Homebrew's caddy
# A renewed certificate reaches the VPS with the `pulumi up` that renews it, and the Mac Mini within ten
# minutes after that. A file Caddy refuses is never put live: the previous files keep serving. With the
# VPS gone, nothing changes here: the last files keep serving, which is what the direct way needs.
set -eu

incoming="$DIR/incoming"
mkdir -p "$incoming"
chmod 700 "$incoming"

fail() {
    echo "macmini-sync: $*" >&2
    exit 1
}

fetch() {
    (umask 077 && curl -fsS --max-time 20 -o "$incoming/$1" "$SOURCE/$2") \
        || fail "cannot fetch $SOURCE/$2 (is WireGuard up? ping the VPS's WireGuard address)"
}

fetch public.pem certs/public.pem
fetch Caddyfile macmini/Caddyfile
if ! grep -q "BEGIN CERTIFICATE" "$incoming/public.pem" || ! grep -q "PRIVATE KEY" "$incoming/public.pem"; then
    fail "what the VPS served as public.pem is not a certificate with its key: nothing changed"
fi

changed=0
for name in Caddyfile public.pem; do
    cmp -s "$incoming/$name" "$DIR/$name" || changed=1
done
if [ "$changed" = 0 ]; then
    echo "macmini-sync: unchanged"
    exit 0
fi

for name in Caddyfile public.pem; do
    rm -f "$DIR/$name.previous"
    if [ -f "$DIR/$name" ]; then cp -p "$DIR/$name" "$DIR/$name.previous"; fi
    mv -f "$incoming/$name" "$DIR/$name"
done

restore() {
    for name in Caddyfile public.pem; do
        if [ -f "$DIR/$name.previous" ]; then mv -f "$DIR/$name.previous" "$DIR/$name"; else rm -f "$DIR/$name"; fi
    done
}

if ! report=$("$CADDY" validate --config "$DIR/Caddyfile" --adapter caddyfile 2>&1); then
    printf '%s\n' "$report" | grep -v '"level":"info"' >&2 || true
    restore
    fail "Caddy refuses the new files: the previous ones keep serving"
fi
# --force: a renewed certificate under the same Caddyfile is a change Caddy would not see otherwise.
if "$CADDY" reload --config "$DIR/Caddyfile" --adapter caddyfile --force >/dev/null 2>&1; then
    echo "macmini-sync: new files are live"
else
    echo "macmini-sync: new files in place; Caddy is not running, its launchd daemon starts it with them"
fi
