/* Stand-ins for the no-debug-info locator (locate_heuristic.c, written separately). They are
 * weak: when locate_heuristic.c defines the real functions, the linker takes those and these
 * are ignored. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "glibc_internal.h"
#include "glibc_locate.h"

__attribute__((weak)) struct md_error *glibc_locate_heuristic(struct md_target *t, const struct md_module *mod,
							     struct glibc_roots *roots_ret)
{
	(void)t;
	(void)mod;
	(void)roots_ret;
	return md_error_create(MD_ERR_NOT_FOUND,
			       "no glibc symbols (main_arena, mp_) and no heuristic locator built in");
}

/* The banner "... release version 2.NN." of version.c, searched in the file. */
static struct md_error *version_from_banner(const char *path, int *major_ret, int *minor_ret)
{
	static const char needle[] = "release version ";
	const size_t nl = sizeof(needle) - 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return md_error_os(errno, "open %s", path);
	static char buf[65536 + 32];
	size_t keep = 0;
	struct md_error *err = md_error_create(MD_ERR_NOT_FOUND, "no glibc banner in %s", path);
	for (unsigned rounds = 0; rounds < 4096; rounds++) { /* 256 MiB at most */
		ssize_t n = read(fd, buf + keep, sizeof(buf) - 32 - keep);
		if (n <= 0)
			break;
		size_t len = keep + (size_t)n;
		for (size_t i = 0; i + nl + 8 <= len; i++) {
			if (buf[i] == 'r' && memcmp(buf + i, needle, nl) == 0 &&
			    glibc_parse_version(buf + i + nl, 8, major_ret, minor_ret)) {
				md_error_destroy(err);
				close(fd);
				return NULL;
			}
		}
		keep = len < nl + 8 ? len : nl + 8;
		memmove(buf, buf + len - keep, keep);
	}
	close(fd);
	return err;
}

__attribute__((weak)) struct md_error *glibc_detect_version(struct md_target *t, const struct md_module *mod,
							   int *major_ret, int *minor_ret)
{
	struct md_error *err = glibc_version_from_symbols(t, mod, major_ret, minor_ret);
	if (!err)
		return NULL;
	md_error_destroy(err);
	const char *path = md_target_module_file(t, mod);
	if (!path)
		return md_error_create(MD_ERR_NOT_FOUND, "glibc version: no file for the module");
	return version_from_banner(path, major_ret, minor_ret);
}
