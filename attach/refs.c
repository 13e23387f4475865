/* Reference bits through /proc: clear_refs and smaps' Referenced (Documentation/admin-guide/
 * mm/soft-dirty.rst and proc.rst: writing 1 to clear_refs clears the PG_Referenced and accessed
 * bits of all pages of the process). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "procfs.h"
#include "refs.h"

static struct md_error *gone_or(struct md_error *err, pid_t pid)
{
	if (err && err->code == MD_ERR_OS && (err->errnum == ENOENT || err->errnum == ESRCH)) {
		md_error_destroy(err);
		return md_error_create(MD_ERR_EXITED, "process %d exited during the working-set window", (int)pid);
	}
	return err;
}

struct md_error *md_refs_clear(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == EACCES || e == EPERM)
			return md_error_create(MD_ERR_PERMISSION, "cannot write %s (the working set needs the "
					       "rights of ptrace over the process)", path);
		return gone_or(md_error_os(e, "cannot open %s", path), pid);
	}
	ssize_t w = write(fd, "1", 1);
	int e = errno;
	close(fd);
	if (w != 1)
		return gone_or(md_error_os(w < 0 ? e : EIO, "writing %s", path), pid);
	return NULL;
}

struct md_error *md_refs_read(pid_t pid, struct md_mapping **maps_ret, size_t *n_ret)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	char *buf;
	size_t len;
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err)
		return gone_or(err, pid);
	err = md_parse_maps(buf, len, maps_ret, n_ret);
	free(buf);
	return err ? md_error_wrap(err, "%s", path) : NULL;
}

bool md_refs_have_idle_bitmap(void)
{
	return access("/sys/kernel/mm/page_idle/bitmap", F_OK) == 0;
}
