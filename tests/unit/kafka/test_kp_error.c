/* SPDX-License-Identifier: Apache-2.0 */
/* The errno to Kafka error mapping that every response relies on. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "kp_error.h"

static void
test_errno_mapping(void **state)
{
	(void)state;
	assert_int_equal(kp_error_from_errno(0), KP_ERR_NONE);
	assert_int_equal(kp_error_from_errno(-EBADMSG), KP_ERR_CORRUPT_MESSAGE);
	assert_int_equal(kp_error_from_errno(-EPROTO), KP_ERR_INVALID_REQUEST);
	assert_int_equal(kp_error_from_errno(-EPROTONOSUPPORT), KP_ERR_UNSUPPORTED_VERSION);
	assert_int_equal(kp_error_from_errno(-ENOTSUP), KP_ERR_UNSUPPORTED_COMPRESSION_TYPE);
	assert_int_equal(kp_error_from_errno(-EILSEQ), KP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);
	assert_int_equal(kp_error_from_errno(-EMSGSIZE), KP_ERR_MESSAGE_TOO_LARGE);
	assert_int_equal(kp_error_from_errno(-E2BIG), KP_ERR_RECORD_LIST_TOO_LARGE);
	assert_int_equal(kp_error_from_errno(-ENXIO), KP_ERR_OFFSET_OUT_OF_RANGE);
	assert_int_equal(kp_error_from_errno(-EIO), KP_ERR_KAFKA_STORAGE_ERROR);
	assert_int_equal(kp_error_from_errno(-ENOMEM), KP_ERR_UNKNOWN_SERVER_ERROR);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(kp_error_name(KP_ERR_CORRUPT_MESSAGE), "CORRUPT_MESSAGE");
	assert_string_equal(kp_error_name(KP_ERR_TRANSACTION_ABORTABLE), "TRANSACTION_ABORTABLE");
	assert_string_equal(kp_error_name(KP_ERR_UNKNOWN_SERVER_ERROR), "UNKNOWN_SERVER_ERROR");
	assert_string_equal(kp_error_name(12345), "UNKNOWN");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errno_mapping),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
