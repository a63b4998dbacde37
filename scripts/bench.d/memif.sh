# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# The memif hook of scripts/bench (sourced by it): the broker serves on a
# net_memif port (DPDK transport, memif server) and slipstream-load reaches
# it with --transport memif (our TCP/IP stack, memif client), so the
# produce_ram, small_produce, fetch_tail and e2e rows run without the kernel
# on the path (small_produce also runs the same broker over kernel sockets
# for its 3x limit). Without this file every row uses kernel sockets.
#
# The socket is /tmp/memif-bench-PID.sock (PID of scripts/bench), the
# broker's address 198.18.48.2:9092 inside its own stack (no kernel
# interface, so nothing else on the machine sees it), the load generator's
# 198.18.48.1. memif copies between its shared rings and mbufs, so no DMA:
# hugepages when enough are free, else ordinary memory. DPDK's heap holds the
# tail cache and the connection buffers too: 2 GiB covers the largest row
# (fetch_tail's 512 cache chunks).
#
# BENCH_MEMIF_MTU=M sets the MTU of both stacks (dataplane.port.mtu and
# --memif-mtu; default 9000, 1500 for standard frames): DPDK 22.11's memif
# claims 1500 but carries longer frames as chained descriptors, and the load
# generator's ring buffers (bsize) hold a whole jumbo frame. A 9000-byte MTU
# carries a 16 KiB batch in 2 segments instead of 12, so the per-segment work
# of both stacks (receive, ACKs, timers) shrinks about 6x for bulk rows;
# bench_memif_note prints it for the rows' notes.
# BENCH_MEMIF_COPY=1 keeps the load generator off memif's zero-copy mode
# (used by default when it is on hugepages). BENCH_MEMIF_MB=N sets dpdk.memory.mb. BENCH_MEMIF_IDLE_US=U lets both sides
# sleep U us at a time once 1 ms passed without work (dataplane.poll.idle.sleep.us,
# --memif-idle-us): under a row's load they spin; default 20. Set 0 on a machine whose two cores are the benchmark's alone:
# both sides then busy-poll. On a shared VM busy polling loses: when one side
# is descheduled the other spins and the scheduler then penalises it (1 KiB
# produce over memif measured 21 MB/s busy-polling and 260 MB/s with 20 us
# sleeps at load average 12 on 2 vCPUs, docs/benchmarks.md).

bench_memif_sock=/tmp/memif-bench-$$.sock

bench_memif_broker_conf() {
	local mb=${BENCH_MEMIF_MB:-2048} free
	free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
	echo "dataplane.transport=dpdk"
	echo "listeners=PLAINTEXT://198.18.48.2:9092"
	echo "dataplane.port.device=net_memif0,role=server,socket=$bench_memif_sock,mac=02:73:6c:70:00:02"
	echo "dataplane.port.ipv4.address=198.18.48.2"
	echo "dataplane.port.ipv4.netmask=255.255.255.0"
	echo "dataplane.port.tap.address="
	echo "dataplane.port.mbufs=32768"
	echo "dataplane.port.rx.checksum.trusted=true"
	# The load generator trusts memif checksums too: the broker does not compute
	# the TCP checksums of what it sends (a pass over every Fetch byte).
	echo "dataplane.port.tx.checksum=skip"
	# A send queue as large as the load generator's receive buffer (--memif-bufs, 2 MiB):
	# with the default 256 KiB one Fetch connection moves 256 KiB per round trip
	# (fetch_tail, 8 interleaved pairs at load 10: median 421 against 754 MB/s).
	echo "dataplane.tcp.send.buffer.bytes=2097152"
	echo "dataplane.port.mtu=${BENCH_MEMIF_MTU:-9000}"
	echo "dataplane.poll.idle.sleep.us=${BENCH_MEMIF_IDLE_US:-20}"
	if [ -z "${BENCH_NO_HUGE:-}" ] && [ "$free" -ge $((mb / 2 + 64)) ]; then
		echo "dpdk.hugepages=on"
	else
		echo "dpdk.hugepages=off"
	fi
	echo "dpdk.memory.mb=$mb"
}

bench_memif_load_args() {
	# --memif-no-tx-cksum: the broker above trusts memif's checksums, so the load
	# generator does not compute TCP checksums it would never read.
	printf '%s\n' --transport memif --memif-socket "$bench_memif_sock" -b 198.18.48.2:9092 \
		--memif-idle-us "${BENCH_MEMIF_IDLE_US:-20}" --memif-no-tx-cksum \
		--memif-mtu "${BENCH_MEMIF_MTU:-9000}"
	# Its 512 MiB of EAL memory from hugepages too when enough are free (after the broker
	# took its own: this runs once the broker is up).
	local free
	free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
	if [ -z "${BENCH_NO_HUGE:-}" ] && [ "$free" -ge $((512 / 2 + 32)) ]; then
		echo --memif-huge
		# On hugepages, memif's zero-copy client (BENCH_MEMIF_COPY=1: not): the broker
		# copies frames straight into the load generator's mbufs and reads its frames from
		# them, one copy per frame instead of two. The broker's work is the same; the load
		# generator's consumer side lost its copy out of the ring (fetch_tail's consumer
		# 15-25% faster by hand, session 11).
		[ -z "${BENCH_MEMIF_COPY:-}" ] && echo --memif-zero-copy
	fi
}

bench_memif_note() {
	local lg="ordinary memory"
	[[ " ${load_net[*]:-} " == *" --memif-huge "* ]] && lg=hugepages
	[[ " ${load_net[*]:-} " == *" --memif-zero-copy "* ]] && lg="$lg, zero-copy"
	echo "over memif, MTU ${BENCH_MEMIF_MTU:-9000}, the load generator on $lg"
}
