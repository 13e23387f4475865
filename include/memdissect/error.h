/* One error type for all of memdissect (after drgn's libdrgn/error.h).
 * Every call that can fail returns struct md_error *, NULL on success. */
#ifndef MEMDISSECT_ERROR_H
#define MEMDISSECT_ERROR_H

#include <stdint.h>

enum md_error_code {
	MD_ERR_NOMEM = 1,     /* out of memory (static object, never freed) */
	MD_ERR_OS,            /* a system call failed: errnum holds errno */
	MD_ERR_FAULT,         /* target memory not readable: address holds where */
	MD_ERR_NOT_RESIDENT,  /* target page swapped out: not read on purpose */
	MD_ERR_BAD_DATA,      /* input (target memory, /proc text, core) is malformed */
	MD_ERR_NOT_FOUND,     /* symbol, module, structure not found */
	MD_ERR_NO_PROCESS,    /* no such process */
	MD_ERR_ZOMBIE,        /* target is a zombie */
	MD_ERR_PERMISSION,    /* not allowed to trace / read the target */
	MD_ERR_EXITED,        /* target exited while being inspected */
	MD_ERR_USAGE,         /* bad command line */
	MD_ERR_UNSUPPORTED,   /* unknown version / architecture / format */
	MD_ERR_BAD_FILE,      /* truncated, foreign or corrupt input file */
	MD_ERR_INTERRUPTED,   /* SIGINT/SIGTERM/SIGHUP arrived */
	MD_ERR_EXECED,        /* the target called execve during the attach (the attach is retried) */
};

struct md_error {
	enum md_error_code code;
	int errnum;        /* MD_ERR_OS: errno */
	uint64_t address;  /* MD_ERR_FAULT / MD_ERR_NOT_RESIDENT: first bad address */
	char *message;     /* one line, no trailing newline */
};

/* The static out-of-memory error: returned without allocating; destroy ignores it. */
extern struct md_error md_error_nomem;

struct md_error *md_error_create(enum md_error_code code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* MD_ERR_OS with errno; message becomes "<fmt>: <strerror(errnum)>". */
struct md_error *md_error_os(int errnum, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
struct md_error *md_error_fault(enum md_error_code code, uint64_t address, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix an existing error's message with context ("reading maps: ..."). Returns err. */
struct md_error *md_error_wrap(struct md_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void md_error_destroy(struct md_error *err);

#endif
