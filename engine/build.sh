#!/usr/bin/env bash
# The real Pulumi engine for this project, in .engine/ of the repository (git-ignored):
#   .engine/bin/   the CLI (built from the Go modules pinned in engine/pulumi/go.mod), the Python
#                  language host and its pulumi-language-python-exec beside it (the CLI finds them there)
#   .engine/home/  PULUMI_HOME: the six provider plugins at exactly the versions requirements.txt pins
#                  (the SDKs ask for those); never the operator's ~/.pulumi
#
# Where the language host and the plugins come from, first that applies:
#   1. MANA_ENGINE_OFFLINE=DIR, a folder laid out as bin/pulumi-language-python-vX-linux-amd64.xz,
#      bin/pulumi-language-python-exec, plugins/pulumi-resource-NAME-vVERSION-linux-amd64.xz and
#      SHA256SUMS (of the uncompressed files); each file is checked against it. CI points it at the
#      engine folder beside the checkout (.ci/run).
#   2. the Pulumi CLI's own folder (an operator's CLI from Pulumi's release carries the language host),
#      and `pulumi plugin install resource NAME VERSION` from Pulumi's plugin servers (internet).
# The CLI: built with Go when Go is there; otherwise a `pulumi` on PATH is used as it is.
# Nothing is done when .engine/stamp records the same inputs (about 0.05 s). A part that cannot be
# had is said on stderr and left out: the tests that need it skip with that reason (fail in CI).
set -euo pipefail

ENGINE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$ENGINE_DIR")
OUT_DIR="$REPO_DIR/.engine"
BIN_DIR="$OUT_DIR/bin"
export PULUMI_HOME="$OUT_DIR/home"
STAMP="$OUT_DIR/stamp"
OFFLINE="${MANA_ENGINE_OFFLINE:-}"
export PULUMI_SKIP_UPDATE_CHECK=true

# name | wrapper module dir | main package | version variable | version
CLI="pulumi|pulumi|github.com/pulumi/pulumi/pkg/v3/cmd/pulumi|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version|v3.274.1"
LANGUAGE_HOST=pulumi-language-python

# The plugins the program's SDKs ask for: NAME VERSION, from the pins in requirements.txt.
pinned_plugins() {
	sed -n -E 's/^pulumi(verse)?-([a-z]+)==([0-9.]+).*/\2 \3/p' "$REPO_DIR/requirements.txt"
}

say() { echo "engine/build.sh: $*" >&2; }

# What the stamp records: every input that changes what is installed.
inputs() {
	find "$ENGINE_DIR" \( -name go.mod -o -name go.sum -o -name build.sh \) -print0 | sort -z | xargs -0 sha256sum
	pinned_plugins
	if [ -n "$OFFLINE" ] && [ -f "$OFFLINE/SHA256SUMS" ]; then sha256sum "$OFFLINE/SHA256SUMS" | cut -d' ' -f1; fi
	command -v go >/dev/null || command -v pulumi || true
}

if [ -f "$STAMP" ] && [ "$(inputs)" = "$(cat "$STAMP")" ]; then
	exit 0
fi
mkdir -p "$BIN_DIR" "$PULUMI_HOME"
rm -f "$STAMP"

# ---------------------------------------------------------------------------------------------- the CLI
IFS='|' read -r name module package version_var version <<<"$CLI"
if command -v go >/dev/null; then
	start=$SECONDS
	# As in Pulumi's release builds: static, pure-Go os/user, gRPC without x/net/trace.
	(
		cd "$ENGINE_DIR/$module"
		CGO_ENABLED=0 go build -mod=readonly -trimpath -tags osusergo,grpcnotrace \
			-ldflags "-s -w -X $version_var=$version" -o "$BIN_DIR/$name.tmp" "$package"
	)
	mv -f "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
	printf '%-28s %-10s built in %4ds\n' "$name" "$version" $((SECONDS - start))
elif command -v pulumi >/dev/null; then
	# An operator's own CLI: used where it is (its folder also holds its language hosts).
	ln -sfn "$(command -v pulumi)" "$BIN_DIR/$name"
	say "no Go here; using the Pulumi CLI on PATH ($(command -v pulumi), $(pulumi version))"
else
	say "neither Go (1.26 or newer) nor a Pulumi CLI: the tests that run the real engine will skip"
	exit 0
fi
pulumi_cli="$BIN_DIR/$name"

# Decompresses NAME's newest matching file from the offline folder to DEST and checks it against
# SHA256SUMS; fails loudly on a mismatch (a corrupt or substituted binary must not run).
from_offline() { # glob-under-offline dest checksum-name
	local source="$OFFLINE/$1" dest=$2 sum_name=$3 expected actual
	[ -f "$source" ] || return 1
	expected=$(awk -v n="$sum_name" '$2 == n {print $1}' "$OFFLINE/SHA256SUMS")
	[ -n "$expected" ] || { say "$OFFLINE/SHA256SUMS has no line for $sum_name"; exit 1; }
	case "$source" in
		*.xz) xz -T0 -dc "$source" >"$dest.tmp" ;;
		*) cp "$source" "$dest.tmp" ;;
	esac
	actual=$(sha256sum "$dest.tmp" | cut -d' ' -f1)
	if [ "$actual" != "$expected" ]; then
		rm -f "$dest.tmp"
		say "$source: checksum $actual, SHA256SUMS says $expected: not installed"
		exit 1
	fi
	chmod +x "$dest.tmp"
	mv -f "$dest.tmp" "$dest"
}

arch=$(uname -m)
if [ -n "$OFFLINE" ] && [ "$arch" != x86_64 ]; then
	say "$OFFLINE holds linux-amd64 binaries; this machine is $arch: not using it"
	OFFLINE=""
fi

# ----------------------------------------------------------------------------------- the language host
complete=1
language_version=${version}
if [ -n "$OFFLINE" ]; then
	from_offline "bin/$LANGUAGE_HOST-$language_version-linux-amd64.xz" "$BIN_DIR/$LANGUAGE_HOST" \
		"$LANGUAGE_HOST-$language_version-linux-amd64"
	from_offline "bin/$LANGUAGE_HOST-exec" "$BIN_DIR/$LANGUAGE_HOST-exec" "$LANGUAGE_HOST-exec"
	printf '%-28s %-10s from %s\n' "$LANGUAGE_HOST" "$language_version" "$OFFLINE"
elif [ -x "$(dirname "$(readlink -f "$pulumi_cli")")/$LANGUAGE_HOST" ]; then
	printf '%-28s %-10s beside the CLI\n' "$LANGUAGE_HOST" "$(pulumi version 2>/dev/null || echo '?')"
else
	say "no $LANGUAGE_HOST (set MANA_ENGINE_OFFLINE, or install Pulumi's release, which carries it):" \
		"\`pulumi up\` of a Python program cannot run here"
	complete=0
fi

# --------------------------------------------------------------------------------------------- plugins
present=$("$pulumi_cli" plugin ls --json 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin) or []:
    if p.get("kind") == "resource":
        print(p["name"], p["version"])' || true)
installed() { # name version
	grep -qx "$1 $2" <<<"$present"
}
missing=()
while read -r plugin plugin_version; do
	if installed "$plugin" "$plugin_version"; then
		continue
	fi
	start=$SECONDS
	file_name="pulumi-resource-$plugin-v$plugin_version-linux-amd64"
	if [ -n "$OFFLINE" ] && [ -f "$OFFLINE/plugins/$file_name.xz" ]; then
		tmp=$(mktemp -d)
		from_offline "plugins/$file_name.xz" "$tmp/pulumi-resource-$plugin" "$file_name"
		"$pulumi_cli" plugin install resource "$plugin" "$plugin_version" -f "$tmp/pulumi-resource-$plugin" >/dev/null
		rm -rf "$tmp"
		origin="from $OFFLINE"
	else
		# pulumiverse's plugins are released on GitHub under their own organisation.
		server=()
		[ "$plugin" = acme ] && server=(--server github://api.github.com/pulumiverse)
		if ! "$pulumi_cli" plugin install resource "$plugin" "$plugin_version" "${server[@]}" >/dev/null 2>&1; then
			missing+=("$plugin $plugin_version")
			continue
		fi
		origin="downloaded"
	fi
	printf '%-28s %-10s %s in %ds\n' "pulumi-resource-$plugin" "$plugin_version" "$origin" $((SECONDS - start))
done < <(pinned_plugins)

if [ ${#missing[@]} -gt 0 ]; then
	say "could not install the plugins ${missing[*]} (no MANA_ENGINE_OFFLINE folder, no download):" \
		"the end-to-end runs will skip"
	exit 0
fi
[ "$complete" = 1 ] && inputs >"$STAMP"
exit 0
