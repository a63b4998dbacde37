/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-portcaps: prints what each DPDK port made from the EAL
 * options offers (rte_eth_dev_info: offload capabilities, MTU and frame
 * limits, RSS, descriptor and segment limits), one block per port. Used to
 * record which of the ports testable without a NIC (net_tap, net_af_packet
 * on a veth, net_memif, net_ring) have checksum offloads, TSO or LRO
 * (docs/net-stack.md, "Offloads by port").
 *
 *	slipstream-portcaps <EAL options with --vdev ...>
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ethdev.h>

/* Print the names of the bits of capa that name() knows, space separated. */
static void
print_bits(const char *title, uint64_t capa, const char *(*name)(uint64_t))
{
	printf("  %s:", title);
	if (capa == 0)
		printf(" (none)");
	for (unsigned int b = 0; b < 64; b++) {
		uint64_t bit = UINT64_C(1) << b;

		if (capa & bit)
			printf(" %s", name(bit));
	}
	printf("\n");
}

int
main(int argc, char **argv)
{
	uint16_t port_id;

	if (rte_eal_init(argc, argv) < 0) {
		fprintf(stderr, "slipstream-portcaps: EAL init failed\n");
		return 1;
	}
	RTE_ETH_FOREACH_DEV(port_id) {
		struct rte_eth_dev_info di;
		char name[RTE_ETH_NAME_MAX_LEN];

		if (rte_eth_dev_info_get(port_id, &di) != 0)
			continue;
		if (rte_eth_dev_get_name_by_port(port_id, name) != 0)
			strcpy(name, "?");
		printf("port %u %s driver %s\n", port_id, name, di.driver_name);
		printf("  mtu: min %u max %u; max_rx_pktlen %u; max_lro_pkt_size %u\n",
			di.min_mtu, di.max_mtu, di.max_rx_pktlen, di.max_lro_pkt_size);
		printf("  queues: rx %u tx %u; rss key %u bytes, reta %u, hash functions 0x%"
			PRIx64 "\n", di.max_rx_queues, di.max_tx_queues, di.hash_key_size,
			di.reta_size, di.flow_type_rss_offloads);
		printf("  tx segments: per packet %u, per MTU packet %u\n",
			di.tx_desc_lim.nb_seg_max, di.tx_desc_lim.nb_mtu_seg_max);
		print_bits("rx offloads", di.rx_offload_capa, rte_eth_dev_rx_offload_name);
		print_bits("rx queue offloads", di.rx_queue_offload_capa,
			rte_eth_dev_rx_offload_name);
		print_bits("tx offloads", di.tx_offload_capa, rte_eth_dev_tx_offload_name);
		print_bits("tx queue offloads", di.tx_queue_offload_capa,
			rte_eth_dev_tx_offload_name);
	}
	rte_eal_cleanup();
	return 0;
}
