#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/error.h"

struct md_error md_error_nomem = {
	.code = MD_ERR_NOMEM,
	.message = (char *)"out of memory",
};

__attribute__((format(printf, 4, 0)))
static struct md_error *error_vcreate(enum md_error_code code, int errnum, uint64_t address,
				      const char *fmt, va_list ap)
{
	struct md_error *err = calloc(1, sizeof(*err));
	if (!err)
		return &md_error_nomem;
	err->code = code;
	err->errnum = errnum;
	err->address = address;
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0) {
		free(err);
		return &md_error_nomem;
	}
	if (code == MD_ERR_OS && errnum) {
		char *full = NULL;
		if (asprintf(&full, "%s: %s", msg, strerror(errnum)) >= 0) {
			free(msg);
			msg = full;
		}
	}
	err->message = msg;
	return err;
}

struct md_error *md_error_create(enum md_error_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct md_error *err = error_vcreate(code, 0, 0, fmt, ap);
	va_end(ap);
	return err;
}

struct md_error *md_error_os(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct md_error *err = error_vcreate(MD_ERR_OS, errnum, 0, fmt, ap);
	va_end(ap);
	return err;
}

struct md_error *md_error_fault(enum md_error_code code, uint64_t address, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct md_error *err = error_vcreate(code, 0, address, fmt, ap);
	va_end(ap);
	return err;
}

struct md_error *md_error_wrap(struct md_error *err, const char *fmt, ...)
{
	if (!err || err == &md_error_nomem)
		return err;
	char *prefix = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&prefix, fmt, ap);
	va_end(ap);
	if (n < 0)
		return err;
	char *full = NULL;
	if (asprintf(&full, "%s: %s", prefix, err->message ? err->message : "") >= 0) {
		free(err->message);
		err->message = full;
	}
	free(prefix);
	return err;
}

void md_error_destroy(struct md_error *err)
{
	if (!err || err == &md_error_nomem)
		return;
	free(err->message);
	free(err);
}
