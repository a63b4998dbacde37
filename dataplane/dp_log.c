/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_log: one-line log records on stderr (see dp_log.h).
 *
 * The line is built in a stack buffer and written with a single write(2) so
 * lines from several lcores do not interleave. The lcore id comes from DPDK
 * when the EAL is up (LCORE_ID_ANY, printed as "-", before and outside it).
 */
#include "dp_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <rte_lcore.h>

enum dp_log_level dp_log_threshold = DP_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int
dp_log_set_level(const char *name)
{
	for (unsigned int i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			dp_log_threshold = (enum dp_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void
dp_log(enum dp_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	unsigned int lcore = rte_lcore_id();
	char lc[16];
	va_list ap;
	int n;
	int m;

	if (!DP_LOG_ENABLED(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (lcore == LCORE_ID_ANY)
		snprintf(lc, sizeof(lc), "-");
	else
		snprintf(lc, sizeof(lc), "%u", lcore);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ slipstream %s [%s] ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, level_names[level], lc);
	if (n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line; a short write to stderr is not worth retrying. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
