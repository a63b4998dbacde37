# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# The clang libFuzzer build and one fuzz run, sourced by scripts/test (step 5,
# a short run of every target) and scripts/fuzz (the longer run), so both use
# one build recipe and one set of libFuzzer options. Run from the repo top.

fuzz_dir=build-fuzz

# fuzz_build JOBS [NINJA TARGET...]: configure build-fuzz once (clang,
# libFuzzer, ASan/UBSan, warnings are errors) and build it, or only the
# targets named. Logs in build-fuzz.{setup,build}.log, their tail printed on
# failure; returns non-zero when configuring or building failed.
fuzz_build() {
	local jobs=$1
	shift
	if [ ! -f "$fuzz_dir/build.ninja" ]; then
		CC=clang meson setup "$fuzz_dir" -Dwerror=true --buildtype=debugoptimized -Dfuzz=true \
			-Db_sanitize=address,undefined -Db_lundef=false >"$fuzz_dir.setup.log" 2>&1 ||
			{ tail -n 60 "$fuzz_dir.setup.log"; return 1; }
	fi
	ninja -C "$fuzz_dir" -j "$jobs" "$@" >"$fuzz_dir.build.log" 2>&1 ||
		{ tail -n 60 "$fuzz_dir.build.log"; return 1; }
}

# fuzz_targets: the name of every fuzz target (fuzz_<name>.c in tests/fuzz/).
fuzz_targets() {
	local f
	for f in tests/fuzz/fuzz_*.c; do
		f=${f##*/fuzz_}
		echo "${f%.c}"
	done
}

# fuzz_run NAME SECONDS WORK: fuzz target NAME for SECONDS on a copy of its
# committed corpus in the scratch directory WORK (WORK/corpus grows, crash,
# leak and timeout inputs land in WORK/crash/, the output in WORK/log), so the
# repo's corpus is left as it is. Returns libFuzzer's exit status: 0 when
# nothing was found. The time limit is kept even if libFuzzer does not stop.
# UBSan's reports halt (they only print by default), so undefined behaviour
# is a crash with an input kept, as in the ASan/UBSan corpus replay.
fuzz_run() {
	local name=$1 seconds=$2 work=$3
	cp -r "tests/fuzz/corpus/$name" "$work/corpus" && mkdir -p "$work/crash" || return 1
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		timeout -k 10 $((seconds + 120)) "$fuzz_dir/tests/fuzz/fuzz_$name" \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$work/crash/" -print_final_stats=1 "$work/corpus" >"$work/log" 2>&1
}
