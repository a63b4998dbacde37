# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# The lcores row of scripts/bench (sourced by it): how produce throughput scales
# with the broker's lcores (issue 7: "on larger machines also report how
# throughput scales with lcores"). Step k runs a broker on lcores 0..k-1, each
# hosting a net worker and a storage writer (the one-lcore layout of the other
# rows, k times), 8 partitions per lcore on a tmpfs ring (buffered, 16 MiB
# segments, 32 MiB retention, recycled), and slipstream-load over kernel sockets
# (its memif transport has one queue) with a thread and 2 connections per CPU
# left, 1 KiB records in 16 KiB batches, acks=1. Each step is a row: MB/s, and
# its ratio to k times the one-lcore step of the same run.
#
# Steps: 1, 2, 4, 8 up to half of the CPUs (the load generator gets the other
# half); on fewer than 4 CPUs the row says it did not run. BENCH_LCORES=1,2
# sets the steps (on 2 CPUs the load generator then shares the broker's CPUs:
# it checks that the sweep works, its figures say nothing about scaling).
#
# Known: whole requests hop to writer 0's lcore, which decodes and encodes every
# request (docs/dataplane.md "Several storage writers"), so writer 0 is
# expected to bound the sweep; the rows measure how much.

bench_add_row lcores

row_lcores() {
	local steps=() k base= mb name
	if [ -n "${BENCH_LCORES:-}" ]; then
		IFS=, read -r -a steps <<<"$BENCH_LCORES"
	elif [ "$ncpu" -ge 4 ]; then
		for ((k = 1; k <= ncpu / 2 && k <= 8; k *= 2)); do steps+=("$k"); done
	fi
	if [ ${#steps[@]} -eq 0 ]; then
		emit group=scale name="produce by broker lcores, tmpfs, kernel sockets" verdict=REPORTED \
			note="not run: $ncpu CPUs (each step puts the broker on k lcores and the load generator on the other CPUs, k up to half of them: it needs 4; BENCH_LCORES=1,2 forces it)"
		return
	fi
	for k in "${steps[@]}"; do
		name="produce by broker lcores: $k lcore(s), 1 KiB, 16 KiB batches, acks=1, tmpfs, kernel sockets"
		lcores_run "$k" || { emit group=scale name="$name" verdict=MISSED note="the broker did not start"; continue; }
		mb=$(tj "$work/lcores-$k.json" result/mb_per_s 0)
		[ -z "$base" ] && [ "$k" = 1 ] && base=$mb
		emit group=scale name="$name" value="$(fmt "$mb" .0f) MB/s" \
			limit="${base:+$k x the 1-lcore step: $(fmt "$(calc "$k * $base")" .0f) MB/s}" \
			ratio="${base:+$(fmt "$(calc "$mb / max($k * $base, 0.001)")" .2f)}" \
			target="reported" verdict=REPORTED \
			note="$(lg_failed "lcores-$k")$((8 * k)) partitions, $k net worker(s) and $k storage writer(s) on lcores 0-$((k - 1)); load generator: $lc_threads thread(s) on CPUs $lc_cpus, $((2 * lc_threads)) connections x $pd_inflight in flight; reactors busy ${lc_busy:-?} s per second of the run (all lcores)"
	done
}

# lcores_run K: one step; JSON in $work/lcores-K.json; sets lc_threads, lc_cpus, lc_busy.
lcores_run() {
	local k=$1 last=$(($1 - 1)) m0=$work/lc-$1-m0 m1=$work/lc-$1-m1 list
	list=$(seq -s, 0 "$last")
	if [ "$ncpu" -gt "$k" ]; then
		lc_cpus=$(seq -s, "$k" $((ncpu - 1)))
		lc_threads=$((ncpu - k))
	else
		lc_cpus=$(seq -s, 0 $((ncpu - 1)))
		lc_threads=$ncpu
	fi
	rm -rf "$ram/lcores"
	broker_start "lcores-$k" "$ram/lcores" kernel $ram_conf \
		"dataplane.lcores=$list" "dataplane.net.lcores=$list" \
		"dataplane.storage.lcores=$list" "dataplane.net.workers=$k" \
		"dataplane.storage.writers=$k" log.segment.bytes=16777216 \
		log.retention.bytes=33554432 log.retention.check.interval.ms=100 \
		storage.segment.recycle=1 "dpdk.memory.mb=$((512 * k))" || return 1
	scrape "$m0"
	"$load" "${load_net[@]}" --mode produce -t lc -s 1024 --batch-size 16384 -a 1 \
		-p $((8 * k)) -c $((2 * lc_threads)) -T "$lc_threads" -i "$pd_inflight" -d "$secs" \
		-q --cpus "$lc_cpus" --request-timeout-ms 20000 --json "$work/lcores-$k.json" \
		>"$work/lcores-$k.txt" 2>&1 ||
		log "slipstream-load lcores-$k: exit $? ($(grep -m1 -i error "$work/lcores-$k.txt" || true))"
	scrape "$m1"
	lc_busy=$(fmt "$(calc "($(busy_s "$m1") - $(busy_s "$m0")) / $secs")" .2f)
	broker_stop
	rm -rf "$ram/lcores"
}
