#!/usr/bin/env bash
# Builds the Pulumi engine binaries pinned by the wrapper modules in engine/*/go.mod into
# .engine/bin/ of the repository. Go's default module and build caches are used, so a rebuild after a
# version bump only compiles what changed. Does nothing when .engine/stamp is newer than every
# go.mod, go.sum, *.go file under engine/ and this script. See engine/README.md.
set -euo pipefail

ENGINE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$ENGINE_DIR")
OUT_DIR="$REPO_DIR/.engine"
BIN_DIR="$OUT_DIR/bin"
STAMP="$OUT_DIR/stamp"

# name | wrapper module dir | main package | version variable | version
BINARIES=(
	"pulumi|pulumi|github.com/pulumi/pulumi/pkg/v3/cmd/pulumi|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version|v3.274.1"
)

binaries_present() {
	local entry name
	for entry in "${BINARIES[@]}"; do
		name=${entry%%|*}
		[ -x "$BIN_DIR/$name" ] || return 1
	done
}

if [ -f "$STAMP" ] && binaries_present &&
	[ -z "$(find "$ENGINE_DIR" \( -name go.mod -o -name go.sum -o -name '*.go' -o -name build.sh \) \
		-newer "$STAMP" -print -quit)" ]; then
	exit 0
fi

if ! command -v go >/dev/null; then
	# An operator's machine with a Pulumi CLI of its own needs no build: the tests use that one.
	if command -v pulumi >/dev/null; then
		echo "engine/build.sh: no Go here; the tests use the Pulumi CLI on PATH ($(command -v pulumi))"
		exit 0
	fi
	echo "engine/build.sh: Go (1.26 or newer) is needed to build the Pulumi CLI; the tests that run it will skip" >&2
	exit 0
fi
mkdir -p "$BIN_DIR"
rm -f "$STAMP"

# As in Pulumi's release builds: static, pure-Go os/user, gRPC without x/net/trace.
export CGO_ENABLED=0
TAGS=osusergo,grpcnotrace

stamp_lines=()
for entry in "${BINARIES[@]}"; do
	IFS='|' read -r name module package version_var version <<<"$entry"
	start=$SECONDS
	(
		cd "$ENGINE_DIR/$module"
		go build -mod=readonly -trimpath -tags "$TAGS" \
			-ldflags "-s -w -X $version_var=$version" \
			-o "$BIN_DIR/$name.tmp" "$package"
	)
	mv -f "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
	printf '%-28s %-10s built in %4ds\n' "$name" "$version" $((SECONDS - start))
	stamp_lines+=("$name $version $package")
done

printf '%s\n' "${stamp_lines[@]}" >"$STAMP"
