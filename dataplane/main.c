/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream: the dataplane process.
 *
 * UNFINISHED: the broker (request path, storage writers, transports) is the
 * subject of later issues. Until it lands this entry point initialises DPDK's
 * EAL as the broker will (hugepage memory, lcores), reports what the protocol
 * layer in this build serves, and exits. It does not accept connections.
 */
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_version.h>

#include "kp_error.h"

int
main(int argc, char **argv)
{
	int rc = rte_eal_init(argc, argv);

	if (rc < 0) {
		fprintf(stderr, "slipstream: DPDK EAL did not start (%s); "
				"run ./hugepage-setup as root, or pass --no-huge\n",
			strerror(-rc));
		return 1;
	}
	printf("slipstream 0.1.0 on %s: EAL up, %u lcore(s)\n", rte_version(), rte_lcore_count());
	printf("slipstream: the broker itself is not built yet (see docs/gaps.md)\n");
	rte_eal_cleanup();
	return 0;
}
