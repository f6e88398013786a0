#!/usr/bin/env bash
# The offline plan of a pull request, as Markdown for the job summary and the PR comment: every stack
# (Pulumi.*.yaml) in both modes, compared with the base branch's plan (`--against`), and what flipping
# the mode changes (`--diff`). No cloud account, no secrets.
#
# usage: [HEAD_SHA=...] [BASE_SHA=...] plan-report.sh BASE_DIR REPORT_FILE
#   run from the pull request's checkout, after `make setup`; BASE_DIR is the base branch's checkout;
#   the commits are only named in the report.
# Exits 1 when a plan of the pull request fails (the report says which and why), 0 otherwise.
set -uo pipefail

base_dir=$(cd "$1" && pwd)
report=$2
marker='<!-- mana-infra-plan -->'
plans=$(mktemp -d)
failed=0
# Wide enough that the plan's tables are not wrapped.
export COLUMNS=200 TERM=dumb NO_COLOR=1

# The base branch runs in this venv when its dependencies are the same; otherwise in a venv of its own.
if cmp -s requirements.txt "$base_dir/requirements.txt"; then
    base_python=$PWD/venv/bin/python
else
    echo "the base branch pins other dependencies: making its own venv" >&2
    make -C "$base_dir" setup >&2
    base_python=$base_dir/venv/bin/python
fi
# `python -m` from the base folder imports the base's mana_infra, not this checkout's (installed editable).
base_module=$(cd "$base_dir" && PYTHONPATH=$base_dir "$base_python" -c 'import mana_infra; print(mana_infra.__file__)')
case "$base_module" in
    "$base_dir"/*) ;;
    *) echo "the base plan would import $base_module, not the base branch's code" >&2; exit 1 ;;
esac

# section TITLE COMMAND...: the command's output (and exit status, when not 0) in a folded block.
section() {
    local title=$1 output status
    shift
    output=$("$@" 2>&1)
    status=$?
    printf '<details%s><summary>%s</summary>\n\n' "$([ "$status" = 0 ] || echo ' open')" "$title"
    # shellcheck disable=SC2016  # the backticks are Markdown, not a command
    printf '```text\n$ %s\n%s\n```\n' "$*" "$output"
    if [ "$status" != 0 ]; then
        printf '\n**exit status %s**\n' "$status"
        failed=1
    fi
    printf '\n</details>\n\n'
}

{
    echo "$marker"
    echo "## Offline plan"
    echo
    echo "\`mana-infra plan\` of this pull request (${HEAD_SHA:-this checkout}) against its base" \
         "(${BASE_SHA:-$base_dir}): every stack in both modes, then what the flip changes."
    echo "Documentation addresses and placeholder keys stand in for what only the clouds know."
    echo
    for file in Pulumi.*.yaml; do
        stack=${file#Pulumi.}
        stack=${stack%.yaml}
        echo "### Stack \`$stack\`"
        echo
        for mode in tunnel failover; do
            base_plan=$plans/base-$stack-$mode.json
            against=()
            if [ ! -f "$base_dir/$file" ]; then
                echo "- $mode: new stack, no base plan to compare with."
            elif (cd "$base_dir" && PYTHONPATH=$base_dir "$base_python" -m mana_infra plan --json --stack "$stack" \
                    --mode "$mode") >"$base_plan" 2>"$plans/base-error"; then
                against=(--against "$base_plan")
            else
                echo "- $mode: the base branch cannot plan it ($(tail -n 1 "$plans/base-error")): shown without comparison."
            fi
            section "$stack, mode $mode${against[*]:+, against the base branch}" \
                venv/bin/mana-infra plan --stack "$stack" --mode "$mode" "${against[@]}"
        done
        section "$stack: what flipping the mode changes (<code>--diff</code>)" venv/bin/mana-infra plan --stack "$stack" --diff
    done
} >"$report"

exit "$failed"
