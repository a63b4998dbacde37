/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_log: the dataplane's log lines.
 *
 * One line per event on stderr, prefixed with a UTC timestamp, the level and
 * the lcore. Logging is for rare events (start, stop, a connection refused for
 * a protocol violation); nothing logs per request at the default level. The
 * level is set once at start-up from `dataplane.log.level`.
 */
#ifndef SLP_DP_LOG_H
#define SLP_DP_LOG_H

enum dp_log_level {
	DP_LOG_ERROR = 0,
	DP_LOG_WARN = 1,
	DP_LOG_INFO = 2,
	DP_LOG_DEBUG = 3,
};

/** The current threshold; lines above it are dropped. */
extern enum dp_log_level dp_log_threshold;

/**
 * Set the threshold from a name ("error", "warn", "info", "debug").
 *
 * @return 0, or -EINVAL for an unknown name (the threshold is unchanged).
 */
int dp_log_set_level(const char *name);

/**
 * Write one log line (a newline is added). Safe from any lcore: the line is
 * formatted into a stack buffer and written with one write(2).
 */
void dp_log(enum dp_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define DP_LOG_ENABLED(lvl) ((lvl) <= dp_log_threshold)

#endif /* SLP_DP_LOG_H */
