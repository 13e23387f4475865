/* Common parts of the test targets: processes that build a known heap, print their allocator's
 * own figures as "key value" lines, print "ready" and wait to be inspected. Output goes through
 * write(2) from a static buffer so that printing never allocates (it would change the heap). */
#ifndef MD_TARGET_COMMON_H
#define MD_TARGET_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char md_out_buf[8192];

__attribute__((format(printf, 1, 2), unused)) static void md_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(md_out_buf, sizeof(md_out_buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(md_out_buf))
		n = sizeof(md_out_buf) - 1;
	size_t off = 0;
	while (off < (size_t)n) {
		ssize_t w = write(1, md_out_buf + off, (size_t)n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

/* A whole (small) file into buf, NUL-terminated, without stdio; false when it cannot be opened. */
__attribute__((unused)) static bool md_slurp(const char *file, char *buf, size_t len)
{
	int fd = open(file, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = 0, r;
	while ((r = read(fd, buf + n, len - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return true;
}

/* A field of /proc/self/status or smaps_rollup in bytes, read without stdio. */
__attribute__((unused)) static unsigned long long md_proc_field(const char *file, const char *field)
{
	static char buf[16384];
	if (!md_slurp(file, buf, sizeof(buf)))
		return 0;
	size_t fl = strlen(field);
	for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, field, fl) == 0 && p[fl] == ':')
			return strtoull(p + fl + 1, NULL, 10) * 1024ULL;
	}
	return 0;
}

/* Wait for one command line on stdin; returns 0 at EOF. */
__attribute__((unused)) static int md_read_command(char *cmd, size_t len)
{
	size_t n = 0;
	while (n + 1 < len) {
		char c;
		ssize_t r = read(0, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (c == '\n')
			break;
		cmd[n++] = c;
	}
	cmd[n] = 0;
	return n > 0 || n + 1 >= len;
}

/* "ready", then wait for "quit" or EOF on stdin (the end of most targets). */
__attribute__((unused)) static void md_ready_until_quit(void)
{
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd)))
		if (strcmp(cmd, "quit") == 0)
			break;
}

#endif
