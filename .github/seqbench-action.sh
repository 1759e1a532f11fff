#!/usr/bin/env bash
# The shell side of action.yml (the repository's GitHub Action), kept here so that it can
# run, and be tested, outside GitHub: everything comes in through environment variables.
#
#   SEQBENCH      how to call seqbench (default: seqbench)
#   SUITE         the suite to measure (default: ci)
#   BASELINE      a baseline rows file (with its .samples.csv and .meta.json) or run folder;
#                 missing: nothing to compare against, the run becomes the next baseline
#   CANDIDATE     an already measured candidate to judge instead of running the suite
#   AB_BASELINE   a git ref: measure it side by side with AB_CANDIDATE (`seqbench ab`)
#   AB_CANDIDATE  the other ref (default: HEAD)
#   THRESHOLD     the smallest change that counts (default: 0.10)
#   ARGS          more arguments for `run` or `ab` (split on spaces)
#   RESULTS       where runs, run.csv and verdict.md go (default: seqbench-results)
#   GH_TOKEN, PR_NUMBER, GITHUB_REPOSITORY: with all three, post or update one comment
#   GITHUB_STEP_SUMMARY, GITHUB_OUTPUT: as GitHub sets them (optional here)
#
# Exit code: seqbench's. 0 no regression (or no baseline yet); 1 a regression; 2 bad
# input or a failed run; 3 too noisy to decide.
set -uo pipefail

SEQBENCH=${SEQBENCH:-seqbench}
SUITE=${SUITE:-ci}
THRESHOLD=${THRESHOLD:-0.10}
RESULTS=${RESULTS:-seqbench-results}
MARKER='<!-- seqbench-action -->'
read -r -a seqbench <<<"$SEQBENCH"
read -r -a extra <<<"${ARGS:-}"

mkdir -p "$RESULTS"
verdict="$RESULTS/verdict.md"
errors="$RESULTS/errors.txt"
: >"$verdict"
: >"$errors"

code=0
if [ -n "${AB_BASELINE:-}" ]; then
    title="seqbench ab: ${AB_BASELINE} -> ${AB_CANDIDATE:-HEAD}"
    "${seqbench[@]}" ab "$AB_BASELINE" "${AB_CANDIDATE:-HEAD}" --suite "$SUITE" \
        --threshold "$THRESHOLD" --out "$RESULTS/runs" --format markdown "${extra[@]}" \
        >"$verdict" 2>"$errors" || code=$?
else
    candidate=${CANDIDATE:-}
    if [ -z "$candidate" ]; then
        candidate="$RESULTS/run.csv"
        "${seqbench[@]}" run --suite "$SUITE" --root "$RESULTS/runs" --csv "$candidate" \
            --quiet "${extra[@]}" 2>"$errors" || code=$?
        if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
            title="seqbench run --suite $SUITE failed"
        fi
    fi
    if [ -z "${title:-}" ]; then
        if [ -n "${BASELINE:-}" ] && [ -e "$BASELINE" ]; then
            title="seqbench compare: $SUITE against the baseline"
            code=0
            "${seqbench[@]}" compare "$BASELINE" "$candidate" --threshold "$THRESHOLD" \
                --format markdown >"$verdict" 2>>"$errors" || code=$?
        else
            title="seqbench: no baseline yet"
            echo "No baseline to compare with (\`${BASELINE:-}\`): this run can become it." >"$verdict"
        fi
    fi
fi

case "$code" in
    0) status="no regression" ;;
    1) status="regression" ;;
    3) status="too noisy to decide: rerun" ;;
    *) status="error (exit $code)" ;;
esac

body="$RESULTS/comment.md"
{
    echo "$MARKER"
    echo "## $title: $status"
    echo
    cat "$verdict"
    if [ -s "$errors" ] && [ "$code" -ne 0 ] && [ "$code" -ne 1 ] && [ "$code" -ne 3 ]; then
        echo
        echo '```'
        tail -n 20 "$errors"
        echo '```'
    fi
} >"$body"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    tail -n +2 "$body" >>"$GITHUB_STEP_SUMMARY"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
    {
        echo "exit-code=$code"
        echo "verdict=$verdict"
        echo "rows=${candidate:-}"
    } >>"$GITHUB_OUTPUT"
fi

# One comment per pull request, found again by its hidden marker and edited in place.
if [ -n "${GH_TOKEN:-}" ] && [ -n "${PR_NUMBER:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
    comments="repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments"
    existing=$(gh api "$comments" --paginate \
        --jq ".[] | select(.body | contains(\"$MARKER\")) | .id" | head -n 1) || existing=""
    if [ -n "$existing" ]; then
        gh api -X PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$existing" -F "body=@$body" \
            >/dev/null || echo "warning: could not update comment $existing" >&2
    else
        gh api -X POST "$comments" -F "body=@$body" >/dev/null \
            || echo "warning: could not post the comment" >&2
    fi
fi

exit "$code"
