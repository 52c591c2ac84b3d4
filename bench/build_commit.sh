#!/bin/bash
# Prints the commit a build was configured from, for the bench's reports: the short hash of the source tree
# named in BUILD/CMakeCache.txt (CMAKE_HOME_DIRECTORY; without one, this repository's), "-dirty" when that tree
# has uncommitted changes to tracked files other than documentation (*.md) and bench/results/ (a report written,
# or a README edited, while a run goes on changes nothing it measures), "unknown" when it is no git checkout. So a
# --build of another worktree (an A/B run against an older commit) is named by its own commit, not by this
# repository's HEAD.
# Whether the build is up to date with its sources is not checked.
#
#   bench/build_commit.sh [BUILD]
set -u
src=""
[ -n "${1:-}" ] && src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null)
src=${src:-$(cd "$(dirname "$0")/.." && pwd)}
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null) || { echo unknown; exit 0; }
[ -z "$(git -C "$src" status --porcelain --untracked-files=no -- . ':(exclude)*.md' ':(exclude)bench/results' \
    2>/dev/null)" ] || commit="$commit-dirty"
echo "$commit"
